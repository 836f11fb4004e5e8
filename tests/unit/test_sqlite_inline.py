"""The SQLite driver that runs statements on the event loop's thread: writers
of one process queue on the write gate, a writer of another process makes
``BEGIN IMMEDIATE`` wait off the loop, and the result is ordinary SQLite."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import text

from deckhand.store.db import Database
from deckhand.store.sqlite_inline import WriteGate, creator


async def _database(tmp_path: Path) -> Database:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'inline.db'}")
    async with db.write() as conn:
        await conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"))
    return db


async def test_concurrent_writers_of_one_process_all_commit(tmp_path: Path) -> None:
    db = await _database(tmp_path)
    order: list[int] = []

    async def writer(i: int) -> None:
        async with db.write() as conn:
            n = (await conn.execute(text("SELECT count(*) FROM t"))).scalar_one()
            await asyncio.sleep(0)  # another writer gets the loop mid-transaction
            await conn.execute(text("INSERT INTO t (id, v) VALUES (:i, :v)"),
                               {"i": i, "v": str(n)})
            order.append(i)

    try:
        await asyncio.gather(*(writer(i) for i in range(40)))
        async with db.read() as conn:
            rows = (await conn.execute(text("SELECT id, v FROM t ORDER BY id"))).all()
    finally:
        await db.dispose()
    assert order == list(range(40))  # the gate is first come, first served
    # each writer saw every earlier one: transactions did not interleave
    assert [(r.id, int(r.v)) for r in rows] == [(i, i) for i in range(40)]


async def test_writer_of_another_process_blocks_the_writer_not_the_loop(tmp_path: Path) -> None:
    db = await _database(tmp_path)
    other = sqlite3.connect(tmp_path / "inline.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # holds the write lock, as another process would
    ticks = 0
    started = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            started.set()
            await asyncio.sleep(0.001)

    async def write() -> None:
        async with db.write() as conn:
            await conn.execute(text("INSERT INTO t (id, v) VALUES (1, 'mine')"))

    tick_task = asyncio.create_task(ticker())
    await started.wait()
    writing = asyncio.create_task(write())
    try:
        before = ticks
        while ticks < before + 20:  # the loop keeps running while the writer waits
            assert not writing.done()
            await asyncio.sleep(0.001)
        other.execute("INSERT INTO t (id, v) VALUES (2, 'other')")
        other.execute("COMMIT")
        await asyncio.wait_for(writing, 10)
        async with db.read() as conn:
            got = (await conn.execute(text("SELECT v FROM t ORDER BY id"))).scalars().all()
    finally:
        tick_task.cancel()
        other.close()
        await db.dispose()
    assert got == ["mine", "other"]


async def test_a_rolled_back_write_leaves_nothing_and_frees_the_gate(tmp_path: Path) -> None:
    db = await _database(tmp_path)
    try:
        with pytest.raises(RuntimeError):
            async with db.write() as conn:
                await conn.execute(text("INSERT INTO t (id, v) VALUES (1, 'x')"))
                raise RuntimeError("changed my mind")
        async with db.write() as conn:  # would wait forever if the gate were still held
            await conn.execute(text("INSERT INTO t (id, v) VALUES (2, 'y')"))
        async with db.read() as conn:
            got = (await conn.execute(text("SELECT v FROM t"))).scalars().all()
    finally:
        await db.dispose()
    assert got == ["y"]


async def test_gate_gives_up_like_a_busy_database() -> None:
    gate = WriteGate(timeout_s=0.05)
    held = await gate.acquire()
    try:
        with pytest.raises(sqlite3.OperationalError, match="database is locked"):
            await gate.acquire()
    finally:
        held.release()
    (await gate.acquire()).release()


def test_one_database_serves_successive_event_loops(tmp_path: Path) -> None:
    db = asyncio.run(_database(tmp_path))

    async def write(i: int) -> None:
        async with db.write() as conn:
            await conn.execute(text("INSERT INTO t (id, v) VALUES (:i, 'x')"), {"i": i})

    asyncio.run(write(1))
    asyncio.run(write(2))  # the gate binds to the loop that is running now
    asyncio.run(db.dispose())
    assert sqlite3.connect(tmp_path / "inline.db").execute(
        "SELECT count(*) FROM t").fetchone() == (2,)


async def test_a_write_in_a_read_transaction_is_refused(tmp_path: Path) -> None:
    db = await _database(tmp_path)
    try:
        with pytest.raises(Exception, match="write in a read transaction"):
            async with db.read() as conn:
                await conn.execute(text("INSERT INTO t (id, v) VALUES (1, 'x')"))
        async with db.read() as conn:  # the connection went back to the pool usable
            assert (await conn.execute(text("SELECT count(*) FROM t"))).scalar_one() == 0
        async with db.write() as conn:
            await conn.execute(text("INSERT INTO t (id, v) VALUES (1, 'x')"))
    finally:
        await db.dispose()


async def test_checkpoints_run_every_so_many_commits(tmp_path: Path) -> None:
    path = tmp_path / "inline.db"
    db = await _database(tmp_path)
    assert db._checkpointer is not None
    db._checkpointer.every, db._checkpointer._commits = 20, 0
    blob = "x" * 20_000
    try:
        for i in range(19):  # the commits stay in the WAL: connections never checkpoint
            async with db.write() as conn:
                await conn.execute(text("INSERT INTO t (id, v) VALUES (:i, :v)"),
                                   {"i": i, "v": blob})
        before = path.stat().st_size
        assert before < 100_000
        assert db._checkpointer._running is None
        async with db.write() as conn:  # the 20th commit starts one
            await conn.execute(text("INSERT INTO t (id, v) VALUES (19, :v)"), {"v": blob})
        running = db._checkpointer._running
        assert running is not None
        await running
        assert path.stat().st_size > 19 * 20_000  # the rows are in the database file now
    finally:
        await db.dispose()


async def test_a_cancelled_wait_for_the_write_lock_returns_only_once_the_statement_has(
        tmp_path: Path) -> None:
    # SQLAlchemy closes a connection whose statement was cancelled; closing
    # it under the BEGIN still running in its worker thread crashed the
    # driver. The cancelled caller now returns once that statement has.
    db = await _database(tmp_path)
    other = sqlite3.connect(tmp_path / "inline.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        raw = await creator(str(tmp_path / "inline.db"), 10.0, lambda: None)()
        begin = asyncio.create_task(raw.execute("BEGIN IMMEDIATE"))
        await asyncio.wait({begin}, timeout=0.05)  # it waits on the lock, in its thread
        assert not begin.done()
        begin.cancel()
        await asyncio.wait({begin}, timeout=0.2)
        assert not begin.done()  # the statement still waits on the lock
        other.rollback()
        with pytest.raises(asyncio.CancelledError):
            await begin
        assert raw.in_transaction  # the BEGIN did finish, before the cancel came through
        await raw.close()
    finally:
        other.close()
        await db.dispose()
