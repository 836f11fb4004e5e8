"""The leased queue (store/queue.py), on SQLite and PostgreSQL, for each of
its three tables: runs, workflow runs and webhook deliveries."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from deckhand import ids
from deckhand.core.clock import utcnow
from deckhand.store import accounts as accounts_store
from deckhand.store import runs as runs_store
from deckhand.store import webhooks as outbox
from deckhand.store import workflows as wf_store
from deckhand.store.db import Database
from deckhand.store.queue import LeasedQueue, QueueRow
from tests.support.rows import new_run, new_workflow_run

pytestmark = pytest.mark.asyncio

LEASE = timedelta(seconds=60)


async def _new_delivery(conn: AsyncConnection, account_id: str, created_at: datetime) -> str:
    delivery_id = await outbox.enqueue(
        conn, account_id=account_id, run_id=None, url="https://example.test/hook",
        event_type="run.succeeded", payload={}, secret_sealed="sealed")
    # due in creation order, so that the queue's order is the creation order
    await conn.execute(update(outbox.OUTBOX.table)
                       .where(outbox.OUTBOX.table.c.id == delivery_id)
                       .values(next_attempt_at=created_at))
    return delivery_id


@dataclass(frozen=True)
class Kind:
    name: str
    queue: LeasedQueue
    new: Callable[[AsyncConnection, str, datetime], Awaitable[str]]


KINDS = [
    Kind("runs", runs_store.QUEUE, new_run),
    Kind("workflow_runs", wf_store.QUEUE, new_workflow_run),
    Kind("webhook_deliveries", outbox.OUTBOX, _new_delivery),
]
OWNED = [k for k in KINDS if k.queue.owner is not None]


@pytest.fixture
def db(each_db: Database) -> Database:
    return each_db


async def add(db: Database, kind: Kind, count: int) -> list[str]:
    """``count`` claimable items, oldest first."""
    start = utcnow() - timedelta(minutes=10)
    async with db.write() as conn:
        account = await accounts_store.create(conn, f"acct-{ids.new_uuid()[:8]}")
        return [await kind.new(conn, account.id, start + timedelta(seconds=i))
                for i in range(count)]


async def row(db: Database, queue: LeasedQueue, item_id: str) -> QueueRow:
    async with db.read() as conn:
        found = (await conn.execute(
            select(queue.table).where(queue.table.c.id == item_id))).first()
    assert found is not None
    return found


async def claim(db: Database, queue: LeasedQueue, worker: str,
                exclude: set[str] | None = None) -> str | None:
    async with db.write() as conn:
        return await queue.claim(conn, worker, utcnow() + LEASE, exclude or set())


async def set_lease(db: Database, queue: LeasedQueue, item_id: str, until: datetime,
                    owner: str | None = None) -> None:
    values: dict[str, object] = {queue.lease_until: until}
    if queue.owner is not None:
        values[queue.owner] = owner
    async with db.write() as conn:
        await conn.execute(update(queue.table).where(queue.table.c.id == item_id)
                           .values(values))


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.name)
async def test_claim_takes_the_oldest_and_leases_it(db: Database, kind: Kind) -> None:
    first, second = await add(db, kind, 2)
    before = utcnow()
    assert await claim(db, kind.queue, "w1") == first
    taken = await row(db, kind.queue, first)
    assert getattr(taken, kind.queue.lease_until) >= before + LEASE - timedelta(seconds=1)
    if kind.queue.owner is not None:
        assert getattr(taken, kind.queue.owner) == "w1"
        assert taken.attempts == 1
    else:  # a delivery's attempts count deliveries tried, not claims
        assert taken.attempts == 0
    assert await claim(db, kind.queue, "w2") == second
    assert await claim(db, kind.queue, "w3") is None


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.name)
async def test_exclude_skips_the_items_named(db: Database, kind: Kind) -> None:
    first, second = await add(db, kind, 2)
    assert await claim(db, kind.queue, "w1", exclude={first}) == second
    assert await claim(db, kind.queue, "w1", exclude={first}) is None
    assert await claim(db, kind.queue, "w1") == first


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.name)
async def test_an_expired_lease_is_claimable_a_live_one_is_not(db: Database,
                                                               kind: Kind) -> None:
    expired, live = await add(db, kind, 2)
    now = utcnow()
    await set_lease(db, kind.queue, expired, now - timedelta(seconds=1), owner="gone")
    await set_lease(db, kind.queue, live, now + LEASE, owner="busy")
    assert await claim(db, kind.queue, "w1") == expired
    assert await claim(db, kind.queue, "w1") is None
    if kind.queue.owner is not None:
        assert getattr(await row(db, kind.queue, expired), kind.queue.owner) == "w1"
        assert getattr(await row(db, kind.queue, live), kind.queue.owner) == "busy"


@pytest.mark.parametrize("kind", OWNED, ids=lambda k: k.name)
async def test_resume_takes_the_owners_own_live_leases_only(db: Database, kind: Kind) -> None:
    """A restarted holder of an identity resumes the rows it owns under a live
    lease, and only those it names; a live lease of another owner, or one of
    its own it does not name, still waits."""
    own, named_but_other, own_unnamed = await add(db, kind, 3)
    until = utcnow() + LEASE
    await set_lease(db, kind.queue, own, until, owner="me")
    await set_lease(db, kind.queue, named_but_other, until, owner="someone")
    await set_lease(db, kind.queue, own_unnamed, until, owner="me")
    async with db.read() as conn:
        assert await kind.queue.held_by(conn, "me") == {own, own_unnamed}
    resume = {own, named_but_other}
    async with db.write() as conn:
        assert await kind.queue.claim(conn, "me", utcnow() + LEASE, set(), resume) == own
        assert await kind.queue.claim(conn, "me", utcnow() + LEASE, {own}, resume) is None
        assert await kind.queue.claim(conn, "other", utcnow() + LEASE, set(), resume) is None
    resumed = await row(db, kind.queue, own)
    assert getattr(resumed, kind.queue.owner or "") == "me" and resumed.attempts == 1
    ended = await add(db, kind, 1)
    await set_lease(db, kind.queue, ended[0], until, owner="me")
    async with db.write() as conn:
        await conn.execute(update(kind.queue.table).where(kind.queue.table.c.id == ended[0])
                           .values({kind.queue.status: "succeeded"}))
    async with db.read() as conn:
        assert ended[0] not in await kind.queue.held_by(conn, "me")


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.name)
async def test_concurrent_claimers_never_share_an_item(db: Database, kind: Kind) -> None:
    items = await add(db, kind, 4)
    claimed = await asyncio.gather(*(claim(db, kind.queue, f"w{i}") for i in range(8)))
    taken = [c for c in claimed if c is not None]
    assert sorted(taken) == sorted(items)  # each item once, and every one taken


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.name)
async def test_a_claim_skips_the_rows_an_open_claim_holds(db: Database, kind: Kind) -> None:
    """Two connections at once: the first claim's transaction stays open while
    the second claims; the second must take the next item, not wait for (or
    share) the first one's. SQLite has a single writer, so there the second
    claim can only begin once the first has committed."""
    first, second = await add(db, kind, 2)
    held = asyncio.Event()
    release = asyncio.Event()

    async def holder() -> str | None:
        async with db.write() as conn:
            got = await kind.queue.claim(conn, "w1", utcnow() + LEASE, set())
            held.set()
            if not db.is_sqlite:
                await release.wait()
            return got

    async def other() -> str | None:
        await held.wait()
        try:
            return await asyncio.wait_for(claim(db, kind.queue, "w2"), 10)
        finally:
            release.set()

    got = await asyncio.gather(holder(), other())
    assert list(got) == [first, second]


@pytest.mark.parametrize("kind", OWNED, ids=lambda k: k.name)
async def test_renew_keeps_only_the_leases_still_held(db: Database, kind: Kind) -> None:
    kept, stolen, never = await add(db, kind, 3)
    assert await claim(db, kind.queue, "w1") == kept
    assert await claim(db, kind.queue, "w1") == stolen
    stolen_until = utcnow() + timedelta(seconds=5)
    await set_lease(db, kind.queue, stolen, stolen_until, owner="w2")
    until = utcnow() + timedelta(minutes=5)
    async with db.write() as conn:
        held = await kind.queue.renew(conn, "w1", [kept, stolen, never], until)
    assert held == {kept}
    assert getattr(await row(db, kind.queue, kept), kind.queue.lease_until) == until
    assert getattr(await row(db, kind.queue, stolen), kind.queue.lease_until) == stolen_until
    async with db.write() as conn:
        assert await kind.queue.renew(conn, "w1", [], until) == set()


@pytest.mark.parametrize("kind", OWNED, ids=lambda k: k.name)
async def test_cancel_requested_among_names_the_flagged(db: Database, kind: Kind) -> None:
    flagged, plain, elsewhere = await add(db, kind, 3)
    assert kind.queue.cancel_flag is not None
    async with db.write() as conn:
        await conn.execute(update(kind.queue.table)
                           .where(kind.queue.table.c.id.in_([flagged, elsewhere]))
                           .values({kind.queue.cancel_flag: True}))
    async with db.read() as conn:
        assert await kind.queue.cancel_requested_among(conn, [flagged, plain]) == {flagged}
        assert await kind.queue.cancel_requested_among(conn, []) == set()


@pytest.mark.parametrize("kind", OWNED, ids=lambda k: k.name)
async def test_release_hands_back_only_the_holders_item(db: Database, kind: Kind) -> None:
    (item,) = await add(db, kind, 1)
    assert await claim(db, kind.queue, "w1") == item
    async with db.write() as conn:
        assert not await kind.queue.release(conn, item, "w2")
        assert await kind.queue.release(conn, item, "w1")
    assert await claim(db, kind.queue, "w2") == item


@pytest.mark.parametrize("kind", OWNED, ids=lambda k: k.name)
async def test_advance_reserves_seqs_only_for_the_holder(db: Database, kind: Kind) -> None:
    (item,) = await add(db, kind, 1)
    assert await claim(db, kind.queue, "w1") == item
    async with db.write() as conn:
        assert await kind.queue.advance(conn, item, owner="w2", seqs=2, status="running") \
            is None
        fresh = await kind.queue.advance(conn, item, owner="w1", seqs=2, status="running")
        assert fresh is not None and fresh.last_seq == 2 and fresh.status == "running"
        # a value computed in SQL next to plain ones
        fresh = await kind.queue.advance(conn, item, owner=None, seqs=1,
                                         attempts=kind.queue.table.c.attempts + 10)
        assert fresh is not None and fresh.last_seq == 3 and fresh.attempts == 11


async def test_deliveries_are_due_only_once_their_time_has_come(db: Database) -> None:
    kind = KINDS[2]
    due, later = await add(db, kind, 2)
    async with db.write() as conn:
        await conn.execute(update(outbox.OUTBOX.table)
                           .where(outbox.OUTBOX.table.c.id == later)
                           .values(next_attempt_at=utcnow() + timedelta(minutes=5)))
    async with db.write() as conn:
        claimed = await outbox.claim_due(conn, now=utcnow(), limit=10, lease_seconds=30)
    assert [d.id for d in claimed] == [due]
    async with db.write() as conn:
        again = await outbox.claim_due(conn, now=utcnow(), limit=10, lease_seconds=30)
    assert again == []


async def test_claim_due_returns_a_batch_in_due_order(db: Database) -> None:
    items = await add(db, KINDS[2], 3)
    async with db.write() as conn:
        claimed = await outbox.claim_due(conn, now=utcnow(), limit=2, lease_seconds=30)
    assert [d.id for d in claimed] == items[:2]
    assert all(d.claimed_until is not None for d in claimed)
