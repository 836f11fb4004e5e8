"""The database: one async engine, read and write transactions, migrations.

SQLite runs in WAL mode with ``synchronous=NORMAL`` and a busy timeout,
through :mod:`deckhand.store.sqlite_inline` (statements on the event loop's
thread). Write transactions queue on this process's write gate, then start
with ``BEGIN IMMEDIATE`` so that a writer in another process makes them wait
on the busy timeout instead of failing on a lock upgrade. PostgreSQL is
reached through asyncpg.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import event, make_url
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from deckhand.store import sqlite_inline

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_AFTER_COMMIT = "deckhand_after_commit"
_ONCE = "deckhand_once"
SQLITE_BUSY_TIMEOUT_MS = 10_000


class Database:
    def __init__(self, url: str) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        self._write_gate: sqlite_inline.WriteGate | None = None
        self._checkpointer: sqlite_inline.Checkpointer | None = None
        if self.is_sqlite:
            busy_s = SQLITE_BUSY_TIMEOUT_MS / 1000
            path = make_url(url).database or ":memory:"
            self._checkpointer = sqlite_inline.Checkpointer(path)
            self.engine: AsyncEngine = create_async_engine(
                url, async_creator=sqlite_inline.creator(path, busy_s,
                                                         self._checkpointer.committed),
                pool_size=8, max_overflow=32, pool_reset_on_return=None,
            )
            self._write_gate = sqlite_inline.WriteGate(busy_s)
            _sqlite_setup(self.engine)
        else:
            self.engine = create_async_engine(url, pool_size=10, max_overflow=20,
                                              pool_pre_ping=True, pool_reset_on_return=None)
        # Every connection is used inside read() or write(), which always end
        # their transaction: the pool's reset on return (a ROLLBACK round trip)
        # would only add latency to every step.

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.connect() as conn:
            async with conn.begin():
                yield conn

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction. Callbacks registered with :func:`after_commit`
        run once it has committed (and not at all if it rolls back)."""
        hooks: list[Callable[[], None]] = []
        gate = await self._write_gate.acquire() if self._write_gate is not None else None
        try:
            async with self.engine.connect() as conn:
                await conn.execution_options(deckhand_immediate=True)
                # The dict itself: after a failure (a cancel mid-statement
                # invalidates the connection) reading conn.info would reconnect,
                # outside SQLAlchemy's greenlet, and hide the original error.
                info = conn.info
                info[_AFTER_COMMIT] = hooks
                info[_ONCE] = set()
                try:
                    async with conn.begin():
                        yield conn
                finally:
                    info.pop(_AFTER_COMMIT, None)
                    info.pop(_ONCE, None)
        finally:
            if gate is not None:
                gate.release()
        for hook in hooks:
            hook()

    async def migrate(self) -> None:
        """Apply every Alembic migration not yet applied."""
        async with self.engine.connect() as conn:
            await conn.execution_options(deckhand_immediate=True)  # it writes
            await conn.run_sync(_upgrade)
            await conn.commit()

    async def dispose(self) -> None:
        await self.engine.dispose()
        if self._checkpointer is not None:
            self._checkpointer.close()


def after_commit(conn: AsyncConnection, hook: Callable[[], None]) -> None:
    """Run ``hook`` after the write transaction of ``conn`` commits."""
    hooks = conn.info.get(_AFTER_COMMIT)
    if hooks is None:
        raise RuntimeError("after_commit needs a Database.write() transaction")
    hooks.append(hook)


def first_in_transaction(conn: AsyncConnection, token: object) -> bool:
    """True the first time ``token`` is named in this write transaction (a
    wake-up emitted a hundred times in one transaction is sent once)."""
    seen = conn.info.get(_ONCE)
    if seen is None:
        return True
    if token in seen:
        return False
    seen.add(token)
    return True


def _upgrade(sync_conn: Connection) -> None:
    cfg = alembic_config()
    cfg.attributes["connection"] = sync_conn
    command.upgrade(cfg, "head")


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


def _sqlite_setup(engine: AsyncEngine) -> None:
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
        # Let SQLAlchemy, not the driver, decide when transactions begin.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        if conn.get_execution_options().get("deckhand_immediate"):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")
