"""Runs: the queue and the record of every agent run.

Queries return :class:`~deckhand.store.records.Run` records. State changes
with their events live in :mod:`deckhand.engine.lifecycle`; this module only
reads and writes rows.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from deckhand.errors import NotFound
from deckhand.store.queue import worker_queue
from deckhand.store.records import Run, from_row, maybe
from deckhand.store.tables import runs

TERMINAL = frozenset({"succeeded", "failed", "cancelled", "timed_out"})
ACTIVE = frozenset({"queued", "running", "awaiting_human"})


async def insert(conn: AsyncConnection, values: dict[str, Any]) -> Run:
    """Insert a run; the run as stored (one INSERT … RETURNING, its
    compiled form reused for every run with the same columns)."""
    return from_row(Run, (await conn.execute(_INSERT, values)).one())


_INSERT = runs.insert().returning(*runs.c)


async def get(conn: AsyncConnection, run_id: str) -> Run | None:
    return maybe(Run, (await conn.execute(select(runs).where(runs.c.id == run_id))).first())


async def get_owned(conn: AsyncConnection, run_id: str, account_id: str, mode: str) -> Run:
    row = (
        await conn.execute(
            select(runs).where(runs.c.id == run_id, runs.c.account_id == account_id,
                               runs.c.mode == mode)
        )
    ).first()
    if row is None:
        raise NotFound(f"Run {run_id} not found.")
    return from_row(Run, row)


async def list_owned(
    conn: AsyncConnection,
    account_id: str,
    mode: str,
    *,
    status: str | None,
    limit: int,
    starting_after: Run | None = None,
) -> tuple[list[Run], bool]:
    q = select(runs).where(runs.c.account_id == account_id, runs.c.mode == mode)
    if status:
        q = q.where(runs.c.status == status)
    if starting_after is not None:
        q = q.where(
            or_(
                runs.c.created_at < starting_after.created_at,
                and_(runs.c.created_at == starting_after.created_at,
                     runs.c.id < starting_after.id),
            )
        )
    q = q.order_by(runs.c.created_at.desc(), runs.c.id.desc()).limit(limit + 1)
    rows = [from_row(Run, r) for r in await conn.execute(q)]
    return rows[:limit], len(rows) > limit


async def update_run(conn: AsyncConnection, run_id: str, *, owner: str | None = None,
                     **values: Any) -> bool:
    """Update a run; with ``owner`` only while that worker holds its lease."""
    q = update(runs).where(runs.c.id == run_id)
    if owner is not None:
        q = q.where(runs.c.claimed_by == owner)
    return bool((await conn.execute(q.values(**values))).rowcount)


# The run queue: claim, renew, cancel flags, hand back (store/queue.py).
QUEUE = worker_queue(runs)


async def advance(conn: AsyncConnection, run_id: str, *, owner: str | None, seqs: int,
                  **values: object) -> Run | None:
    """Reserve ``seqs`` event numbers and apply ``values`` in one statement
    (:meth:`LeasedQueue.advance`); the run as updated, or None (lease lost)."""
    return maybe(Run, await QUEUE.advance(conn, run_id, owner=owner, seqs=seqs, **values))


async def next_seqs(conn: AsyncConnection, run_id: str, count: int) -> int:
    """Reserve ``count`` event sequence numbers; returns the first."""
    last = (
        await conn.execute(
            update(runs).where(runs.c.id == run_id)
            .values(last_seq=runs.c.last_seq + count)
            .returning(runs.c.last_seq)
        )
    ).scalar_one()
    return int(last) - count + 1


async def overdue(conn: AsyncConnection, now: datetime, limit: int = 100) -> list[Run]:
    """Runs nobody is driving whose deadline or human-wait has passed."""
    q = select(runs).where(
        or_(
            and_(runs.c.status.in_(("queued", "awaiting_human")), runs.c.deadline_at < now),
            and_(runs.c.status == "running", runs.c.deadline_at < now,
                 or_(runs.c.claimed_by.is_(None), runs.c.lease_expires_at < now)),
            and_(runs.c.status == "awaiting_human",
                 runs.c.awaiting_human_timeout_seconds.is_not(None)),
        )
    ).limit(limit)
    return [from_row(Run, r) for r in await conn.execute(q)]
