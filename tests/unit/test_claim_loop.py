"""The claim loop (engine/claim_loop.py) over a real queue (the runs table on
SQLite) with a trivial driver: it claims up to its slots, stops the task of a
lease it lost, interrupts a task its user cancels, and hands every item back
when it stops."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Collection, Sequence
from datetime import datetime, timedelta

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncConnection

from deckhand.core.clock import utcnow
from deckhand.engine.claim_loop import ClaimLoop
from deckhand.engine.notify import Notifier
from deckhand.store import accounts as accounts_store
from deckhand.store import runs as runs_store
from deckhand.store.db import Database
from deckhand.store.queue import QueueRow
from deckhand.store.tables import runs
from tests.support.deployment import poll
from tests.support.rows import new_run

pytestmark = pytest.mark.asyncio

QUEUE = runs_store.QUEUE


class Counting:
    """The runs queue, counting the claim loop's checks for cancel flags
    (one per round of its lease upkeep)."""

    def __init__(self) -> None:
        self.checks = 0

    async def claim(self, conn: AsyncConnection, worker_id: str, lease_until: datetime,
                    exclude: Collection[str], resume: Collection[str]) -> str | None:
        return await QUEUE.claim(conn, worker_id, lease_until, exclude, resume)

    async def held_by(self, conn: AsyncConnection, worker_id: str) -> set[str]:
        return await QUEUE.held_by(conn, worker_id)

    async def renew(self, conn: AsyncConnection, worker_id: str, ids: Sequence[str],
                    lease_until: datetime) -> set[str]:
        return await QUEUE.renew(conn, worker_id, ids, lease_until)

    async def cancel_requested_among(self, conn: AsyncConnection,
                                     ids: Sequence[str]) -> set[str]:
        self.checks += 1
        return await QUEUE.cancel_requested_among(conn, ids)


class Holder(ClaimLoop):
    """Drives an item by holding it until ``finish`` is set; records how each
    drive ended: ``done``, ``cancelled`` (by its user) or ``stopped`` (a lost
    lease or a shutdown, which hands the item back)."""

    kind = "item"
    claim_topic = "items"
    cancel_topic = "items_cancel"

    def __init__(self, db: Database, *, slots: int, lease_seconds: float = 30.0) -> None:
        self.queue: Counting = Counting()
        super().__init__(db, Notifier(db), self.queue, slots=slots,
                         lease_seconds=lease_seconds, poll_seconds=0.05, worker_id="w1")
        self.finish = asyncio.Event()
        self.started: list[str] = []
        self.ended: dict[str, str] = {}

    async def drive(self, item_id: str, cancel_requested: Callable[[], bool]) -> None:
        self.started.append(item_id)
        try:
            await self.finish.wait()
        except asyncio.CancelledError:
            self.ended[item_id] = "cancelled" if cancel_requested() else "stopped"
            async with self.db.write() as conn:
                if cancel_requested():
                    await QUEUE.advance(conn, item_id, owner=self.id, seqs=0,
                                        status="cancelled", claimed_by=None,
                                        lease_expires_at=None)
                else:
                    await QUEUE.release(conn, item_id, self.id)
            raise
        async with self.db.write() as conn:
            await QUEUE.advance(conn, item_id, owner=self.id, seqs=0, status="succeeded",
                                claimed_by=None, lease_expires_at=None)
        self.ended[item_id] = "done"

    async def crashed(self, item_id: str) -> None:
        self.ended[item_id] = "crashed"

    async def sweep(self) -> None:
        """Nothing to sweep here."""


@pytest.fixture
def db(sqlite_db: Database) -> Database:
    return sqlite_db


async def add(db: Database, count: int) -> list[str]:
    start = utcnow() - timedelta(minutes=1)
    async with db.write() as conn:
        account = await accounts_store.create(conn, "acme")
        return [await new_run(conn, account.id, start + timedelta(seconds=i))
                for i in range(count)]


async def row(db: Database, item_id: str) -> QueueRow:
    async with db.read() as conn:
        found = await runs_store.get(conn, item_id)
    assert found is not None
    return found


async def running(loop: Holder, count: int) -> None:
    async def check() -> bool:
        return len(loop.started) >= count
    await poll(check, timeout=10, what=f"{count} items driven")


async def ended(loop: Holder, item_id: str) -> str:
    async def check() -> str | None:
        return loop.ended.get(item_id)
    return await poll(check, timeout=10, what=f"the drive of {item_id} to end")


@pytest.fixture
async def stopping() -> AsyncIterator[list[Holder]]:
    """Loops to stop at the end of the test, whatever happened."""
    loops: list[Holder] = []
    yield loops
    for loop in loops:
        await loop.stop()


async def test_claims_up_to_its_slots(db: Database, stopping: list[Holder]) -> None:
    items = await add(db, 3)
    loop = Holder(db, slots=2)
    stopping.append(loop)
    loop.start()
    await running(loop, 2)
    assert loop.started == items[:2] and loop.active_runs == set(items[:2])
    # a few rounds of upkeep later (the loops poll every 0.05 s), still two
    seen = loop.queue.checks

    async def rounds() -> bool:
        return loop.queue.checks >= seen + 3
    await poll(rounds, timeout=10, what="three more rounds of lease upkeep")
    assert (await row(db, items[2])).claimed_by is None and len(loop.started) == 2
    loop.finish.set()
    await running(loop, 3)
    for item in items:
        assert await ended(loop, item) == "done"
        assert (await row(db, item)).status == "succeeded"


async def test_a_lost_lease_stops_the_task(db: Database, stopping: list[Holder]) -> None:
    (item,) = await add(db, 1)
    loop = Holder(db, slots=1, lease_seconds=0.6)  # renewed every 0.2 s
    stopping.append(loop)
    loop.start()
    await running(loop, 1)
    async with db.write() as conn:  # another worker took it over
        await conn.execute(update(runs).where(runs.c.id == item).values(
            claimed_by="w2", lease_expires_at=utcnow() + timedelta(minutes=5)))
    assert await ended(loop, item) == "stopped"
    assert (await row(db, item)).claimed_by == "w2"  # handing back did not touch it
    assert loop.started == [item]  # and it is not claimed again while w2 holds it


async def test_a_user_cancel_interrupts_the_task(db: Database,
                                                 stopping: list[Holder]) -> None:
    kept, cancelled = await add(db, 2)
    loop = Holder(db, slots=2)
    stopping.append(loop)
    loop.start()
    await running(loop, 2)
    async with db.write() as conn:
        await conn.execute(update(runs).where(runs.c.id == cancelled)
                           .values(cancel_requested=True))
    loop.notifier.wake_local("items_cancel", cancelled)
    assert await ended(loop, cancelled) == "cancelled"
    assert (await row(db, cancelled)).status == "cancelled"
    assert kept not in loop.ended and loop.active_runs == {kept}


async def test_stop_hands_every_item_back(db: Database) -> None:
    items = await add(db, 2)
    loop = Holder(db, slots=2)
    loop.start()
    await running(loop, 2)
    await loop.stop()
    assert loop.ended == {item: "stopped" for item in items}
    for item in items:
        fresh = await row(db, item)
        assert fresh.claimed_by is None and fresh.lease_expires_at is None
    other = Holder(db, slots=2)  # another worker takes them at once
    async with db.write() as conn:
        assert await QUEUE.claim(conn, "w2", utcnow() + other.lease, set()) == items[0]
