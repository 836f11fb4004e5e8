"""Retention and orphans: screens older than ``DECKHAND_ARTIFACTS_RETENTION_DAYS``
lose their rows, and bytes no row points at are deleted once older than a
grace period (a step writes its bytes before its transaction commits the
row, so fresh unreferenced bytes may be a step in flight; older ones are what
a crash between the two left). Swept like the machines' TTLs: a loop in the
API process, every ``DECKHAND_ARTIFACTS_SWEEP_SECONDS``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from deckhand.artifacts.base import ArtifactStore
from deckhand.core.clock import utcnow
from deckhand.errors import DeckhandError
from deckhand.store import artifacts as rows
from deckhand.store.db import Database

log = logging.getLogger("deckhand.artifacts")


@dataclass(frozen=True)
class Swept:
    expired_rows: int
    deleted_blobs: int
    deleted_bytes: int


class ArtifactSweeper:
    def __init__(self, db: Database, store: ArtifactStore, *, retention_days: int,
                 grace_seconds: float, every_seconds: float) -> None:
        self.db = db
        self.store = store
        self.retention = timedelta(days=retention_days)  # 0: keep forever
        self.grace = timedelta(seconds=grace_seconds)
        self.every = every_seconds
        self._task: asyncio.Task[None] | None = None

    async def sweep(self, now: datetime | None = None) -> Swept:
        now = now or utcnow()
        expired = 0
        if self.retention:
            async with self.db.write() as conn:
                expired = await rows.expire(conn, now - self.retention)
        old = [b for b in await self.store.scan() if b.modified_at < now - self.grace]
        keep: set[str] = set()
        if old:
            async with self.db.read() as conn:
                keep = await rows.referenced(conn, [b.key for b in old])
        orphans = [b for b in old if b.key not in keep]
        if orphans:
            await self.store.delete([b.key for b in orphans])
        if expired or orphans:
            log.info("artifacts: %d screens past retention, %d orphaned blobs deleted",
                     expired, len(orphans))
        return Swept(expired, len(orphans), sum(b.size for b in orphans))

    def start(self) -> None:
        self._task = asyncio.create_task(self._forever())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _forever(self) -> None:
        while True:
            try:
                await self.sweep()
            except (DeckhandError, OSError) as exc:
                log.warning("artifact sweep: %s", exc)
            except Exception:  # the sweeper must outlive one bad round
                log.exception("artifact sweep failed")
            await asyncio.sleep(self.every)
