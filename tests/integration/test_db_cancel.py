"""A write transaction on PostgreSQL cancelled in the middle of a statement
ends with the cancellation — not with another error raised while cleaning up
(which made a cancelled run look like a crashed one). On SQLite statements
run on the loop's thread: nothing is awaited mid-statement."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text

from deckhand.store.db import Database
from tests.conftest import _create_pg_database

pytestmark = pytest.mark.asyncio



async def test_cancel_mid_statement_raises_cancelled(pg_server: str) -> None:
    db = Database(await _create_pg_database(pg_server))
    started = asyncio.Event()

    async def write() -> None:
        async with db.write() as conn:
            started.set()
            await conn.execute(text("SELECT pg_sleep(5)"))

    task = asyncio.create_task(write())
    try:
        # set just before the statement: the writer yields only once it waits
        # for the server's answer
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        async with db.write() as conn:  # and the pool still serves
            assert (await conn.execute(text("SELECT 1"))).scalar_one() == 1
    finally:
        await db.dispose()
