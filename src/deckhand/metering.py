"""Request metering: counts requests per account, mode and operation, and
marks keys as used. Counts are batched in memory and written at most once a
second (and on shutdown), so a request pays nothing for being counted."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter

from deckhand.auth import Principal
from deckhand.store import keys as keys_store
from deckhand.store import usage as usage_store
from deckhand.store.db import Database

log = logging.getLogger("deckhand.metering")


class UsageMeter:
    def __init__(self, db: Database, interval: float = 1.0) -> None:
        self.db = db
        self.interval = interval
        self._requests: Counter[tuple[str, str, str]] = Counter()
        self._keys: set[str] = set()
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    def count(self, principal: Principal, operation: str) -> None:
        self._requests[(principal.account_id, principal.mode, operation)] += 1
        self._keys.add(principal.key_id)

    async def flush(self) -> None:
        async with self._lock:
            requests, self._requests = self._requests, Counter()
            used, self._keys = self._keys, set()
            if not requests and not used:
                return
            async with self.db.write() as conn:
                for (account_id, mode, operation), n in sorted(requests.items()):
                    await usage_store.record(
                        conn, account_id=account_id, mode=mode, endpoint=operation, requests=n
                    )
                for key_id in sorted(used):
                    await keys_store.touch(conn, key_id)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.flush()
            except Exception:  # keep metering alive through a database hiccup
                log.exception("usage flush failed; will retry")

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="usage-meter")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush()
