"""Wake-ups between the parts of Deckhand, in one process or across many.

A wake-up is a (topic, key) pair: ``("runs", "*")`` tells workers a run is
claimable, ``("events", run_id)`` tells stream readers a run has new events,
``("cancel", run_id)`` tells the owning worker to interrupt. A wake-up is
emitted inside the write transaction that caused it and delivered when that
transaction commits: on PostgreSQL as ``pg_notify`` (every process LISTENs),
always also to waiters in this process. Wake-ups are hints; everyone also
polls at most a second apart, so a lost one costs latency, never correctness.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Callable, Iterator

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from deckhand.store.db import Database, after_commit, first_in_transaction

log = logging.getLogger("deckhand.notify")

CHANNEL = "deckhand"


class Waiter:
    """Set when a matching wake-up arrives. Subscribe *before* reading the
    database, then wait: nothing that commits after the read is missed."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def set(self) -> None:
        self._event.set()

    async def wait(self, timeout: float) -> bool:
        # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a
        # cancellation of the waiting task, which would hang a shutdown.
        try:
            async with asyncio.timeout(timeout):
                await self._event.wait()
        except TimeoutError:
            return False
        finally:
            self._event.clear()
        return True


class Notifier:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._waiters: dict[tuple[str, str], set[Waiter]] = defaultdict(set)
        self._listeners: dict[str, list[Callable[[str], None]]] = defaultdict(list)
        self._listener: object | None = None
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- emitting ---------------------------------------------------------
    async def emit(self, conn: AsyncConnection, topic: str, key: str) -> None:
        """Deliver (topic, key) when ``conn``'s write transaction commits
        (once, however often the transaction emits it)."""
        if not first_in_transaction(conn, ("emit", topic, key)):
            return
        if not self.db.is_sqlite:
            await conn.execute(text("SELECT pg_notify(:c, :p)"), {"c": CHANNEL,
                                                                   "p": f"{topic}:{key}"})
        after_commit(conn, lambda: self.wake_local(topic, key))

    def on(self, topic: str, listener: Callable[[str], None]) -> None:
        """Call ``listener(key)`` on every wake-up of ``topic`` (from any process)."""
        self._listeners[topic].append(listener)

    def wake_local(self, topic: str, key: str) -> None:
        for listener in self._listeners.get(topic, ()):
            listener(key)
        for w in list(self._waiters.get((topic, key), ())):
            w.set()
        if key != "*":
            for w in list(self._waiters.get((topic, "*"), ())):
                w.set()

    # -- waiting ----------------------------------------------------------
    @contextlib.contextmanager
    def subscribe(self, topic: str, key: str = "*") -> Iterator[Waiter]:
        w = Waiter()
        self._waiters[(topic, key)].add(w)
        try:
            yield w
        finally:
            bucket = self._waiters.get((topic, key))
            if bucket is not None:
                bucket.discard(w)
                if not bucket:
                    del self._waiters[(topic, key)]

    # -- PostgreSQL LISTEN --------------------------------------------------
    async def start(self) -> None:
        if self.db.is_sqlite:
            return
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.create_task(self._listen_forever(), name="pg-listen")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _listen_forever(self) -> None:
        import asyncpg

        dsn = self.db.url.replace("postgresql+asyncpg://", "postgresql://", 1)
        while True:
            conn = None
            try:
                conn = await asyncpg.connect(dsn)
                await conn.add_listener(CHANNEL, self._on_pg_notify)
                while not conn.is_closed():
                    await asyncio.sleep(5)  # liveness check of the LISTEN connection
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # lost the server: poll until it is back
                log.warning("LISTEN connection lost (%s); retrying", type(exc).__name__)
                await asyncio.sleep(1)
            finally:
                if conn is not None and not conn.is_closed():
                    with contextlib.suppress(Exception):
                        await conn.close()

    def _on_pg_notify(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        topic, _, key = payload.partition(":")
        self.wake_local(topic, key)
