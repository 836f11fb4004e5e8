"""SQLite for the async engine without a thread hop per driver call.

aiosqlite runs every driver call (create a cursor, execute, fetch, close) on
its own thread and hands the answer back to the event loop: three or four
hand-offs per statement, about 34 per agent step, and those hand-offs, not
SQLite, were most of a step's orchestration time.

This module is an aiosqlite-shaped connection (what SQLAlchemy's aiosqlite
dialect drives, given to it through ``async_creator``) that runs statements on
the event loop's own thread, where SQLite answers in microseconds. Only
``BEGIN IMMEDIATE`` goes to a worker thread: it can wait on the busy timeout
for a writer in another *process*. Writers of this process queue on
:class:`WriteGate` first, so they never wait inside SQLite. ``COMMIT`` stays
on the loop: with ``synchronous=NORMAL`` it only appends to the WAL, and the
checkpoints that write and sync the database run on a thread of their own
(:class:`Checkpointer`).

In WAL mode readers never wait for the writer, so reads stay on the loop. A
write inside a read transaction (one begun deferred) is refused: it would take
the write lock on the loop's thread, past the gate.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import threading
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any, Literal, TypeVar, cast

T = TypeVar("T")
log = logging.getLogger("deckhand.store")


_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE", "CREATE", "DROP", "ALTER")


async def _in_thread(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` in a worker thread. If the caller is cancelled meanwhile,
    the cancellation waits for the call to return: a statement goes on in its
    thread, and SQLAlchemy closes a connection whose statement was cancelled,
    which under a running statement is a use-after-free in the driver (a
    segfault, seen under load)."""
    work = asyncio.get_running_loop().run_in_executor(None, partial(fn, *args))
    try:
        return await asyncio.shield(work)
    except asyncio.CancelledError:
        while not work.done():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait({work})
        if not work.cancelled():
            work.exception()  # retrieved: the caller was cancelled, it did not fail
        raise


_IsolationLevel = Literal["DEFERRED", "EXCLUSIVE", "IMMEDIATE"] | None


class InlineCursor:
    def __init__(self, owner: InlineConnection) -> None:
        self._owner = owner
        self._cursor = owner._conn.cursor()

    async def __aenter__(self) -> InlineCursor:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._cursor.close()

    @property
    def description(self) -> Any:
        return self._cursor.description

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid

    @property
    def arraysize(self) -> int:
        return self._cursor.arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._cursor.arraysize = value

    async def execute(self, sql: str, parameters: Any = ()) -> InlineCursor:
        head = sql.lstrip()[:16].upper()
        if head.startswith("BEGIN"):
            if "IMMEDIATE" in head or "EXCLUSIVE" in head:
                # may wait on the busy timeout for another process's writer
                await _in_thread(self._cursor.execute, sql, parameters)
                self._owner.reading = False
            else:
                self._cursor.execute(sql, parameters)
                self._owner.reading = True
            return self
        self._check(head)
        self._cursor.execute(sql, parameters)
        return self

    async def executemany(self, sql: str, parameters: Iterable[Any]) -> InlineCursor:
        self._check(sql.lstrip()[:16].upper())
        self._cursor.executemany(sql, parameters)
        return self

    def _check(self, head: str) -> None:
        """A write in a deferred (read) transaction would take the write lock
        on the loop's thread, past the write gate: refuse it."""
        if self._owner.reading and head.startswith(_WRITES):
            raise sqlite3.OperationalError(
                "a write in a read transaction: write in Database.write()")

    async def fetchone(self) -> Any:
        return self._cursor.fetchone()

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        return self._cursor.fetchmany(size if size is not None else self._cursor.arraysize)

    async def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    async def close(self) -> None:
        self._cursor.close()


class _ImmediateQueue:
    """What SQLAlchemy's adapter puts work on to set ``isolation_level`` (it
    expects aiosqlite's queue of (future, function)): done at once here."""

    def put_nowait(self, item: tuple[asyncio.Future[Any], Callable[[], Any]]) -> None:
        future, function = item
        try:
            future.set_result(function())
        except Exception as exc:  # handed to the awaiting caller, as aiosqlite does
            future.set_exception(exc)


class InlineConnection:
    def __init__(self, conn: sqlite3.Connection, on_commit: Callable[[], None]) -> None:
        self._conn = conn
        self._on_commit = on_commit
        self._connection: sqlite3.Connection | None = conn  # None once closed
        self._tx = _ImmediateQueue()
        self.reading = False  # in a transaction begun deferred (Database.read())

    @property
    def isolation_level(self) -> str | None:
        return self._conn.isolation_level

    @isolation_level.setter
    def isolation_level(self, value: str | None) -> None:
        self._conn.isolation_level = cast(_IsolationLevel, value)

    @property
    def in_transaction(self) -> bool:
        return self._conn.in_transaction

    def cursor(self) -> InlineCursor:
        return InlineCursor(self)

    async def execute(self, sql: str, parameters: Any = ()) -> InlineCursor:
        return await self.cursor().execute(sql, parameters)

    async def commit(self) -> None:
        self.reading = False
        self._conn.commit()  # appends to the WAL; checkpoints are the Checkpointer's
        self._on_commit()

    async def rollback(self) -> None:
        self.reading = False
        self._conn.rollback()

    async def create_function(self, *args: Any, **kw: Any) -> None:
        self._conn.create_function(*args, **kw)

    async def close(self) -> None:
        if self._connection is not None:
            self._connection = None
            self._conn.close()

    def stop(self) -> None:
        """Terminate (SQLAlchemy's hard close): nothing runs in the background."""
        if self._connection is not None:
            self._connection = None
            self._conn.close()


def creator(path: str, busy_timeout_s: float,
            on_commit: Callable[[], None]) -> Callable[[], Any]:
    """``async_creator`` for :func:`sqlalchemy.ext.asyncio.create_async_engine`."""

    async def connect() -> InlineConnection:
        conn = await _in_thread(partial(
            sqlite3.connect, path, timeout=busy_timeout_s, isolation_level=None,
            check_same_thread=False))  # used from the loop and, for waits, one worker at a time
        conn.execute("PRAGMA wal_autocheckpoint=0")  # see Checkpointer
        return InlineConnection(conn, on_commit)

    return connect


class Checkpointer:
    """WAL checkpoints off the event loop. The pool's connections never
    checkpoint (``wal_autocheckpoint=0``), so a COMMIT only appends to the WAL
    (no sync with ``synchronous=NORMAL``) and stays on the loop; every
    ``every`` commits this runs a PASSIVE checkpoint, which waits for no
    reader or writer, on its own connection in a worker thread."""

    def __init__(self, path: str, every: int = 500) -> None:
        self.path = path
        self.every = every
        self._commits = 0
        self._running: asyncio.Future[None] | None = None
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()  # the checkpoint thread and close()

    def committed(self) -> None:
        self._commits += 1
        if self._commits >= self.every and (self._running is None or self._running.done()):
            self._commits = 0
            self._running = asyncio.get_running_loop().run_in_executor(None, self.checkpoint)

    def checkpoint(self) -> None:
        with self._lock:
            try:
                if self._conn is None:
                    self._conn = sqlite3.connect(self.path, isolation_level=None,
                                                 check_same_thread=False)
                self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
            except sqlite3.Error as exc:  # the next one tries again
                log.warning("WAL checkpoint failed: %s", exc)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


class WriteGate:
    """This process's SQLite writers, one at a time and in order, before any
    of them asks SQLite for the write lock. Bound to the running loop (a
    Database can outlive one ``asyncio.run``)."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = asyncio.Lock()

    def _current(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._loop, self._lock = loop, asyncio.Lock()
        return self._lock

    async def acquire(self) -> asyncio.Lock:
        lock = self._current()
        try:
            async with asyncio.timeout(self.timeout_s):
                await lock.acquire()
        except TimeoutError:
            raise sqlite3.OperationalError("database is locked") from None
        return lock
