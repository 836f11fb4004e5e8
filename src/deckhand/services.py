"""The application's services, built once in the app's lifespan (or by the
CLI) and handed to whoever needs them. No module-level state anywhere."""

from __future__ import annotations

from dataclasses import dataclass

from deckhand.auth import Principal
from deckhand.config import Settings
from deckhand.metering import UsageMeter
from deckhand.store import keys as keys_store
from deckhand.store.db import Database


@dataclass
class Services:
    settings: Settings
    db: Database
    secret: bytes
    usage: UsageMeter

    @classmethod
    async def build(cls, settings: Settings, *, migrate: bool = True) -> Services:
        settings.ensure_data_dir()
        db = Database(settings.resolved_database_url)
        if migrate:
            await db.migrate()
        return cls(settings=settings, db=db, secret=settings.secret(), usage=UsageMeter(db))

    async def start(self) -> None:
        self.usage.start()

    async def close(self) -> None:
        await self.usage.stop()
        await self.db.dispose()

    async def authenticate(self, raw_key: str) -> Principal | None:
        async with self.db.read() as conn:
            return await keys_store.authenticate(conn, secret=self.secret, raw_key=raw_key)
