"""Runs: the queue and the record of every agent run.

Queries return :class:`~deckhand.store.records.Run` records. State changes
with their events live in :mod:`deckhand.engine.lifecycle`; this module only
reads and writes rows.
"""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import Update, and_, bindparam, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from deckhand.core.clock import utcnow
from deckhand.errors import NotFound
from deckhand.store.records import Run, from_row, maybe
from deckhand.store.tables import runs

TERMINAL = frozenset({"succeeded", "failed", "cancelled", "timed_out"})
ACTIVE = frozenset({"queued", "running", "awaiting_human"})

# The name the engine's lifecycle and worker modules import (being rewritten on
# another branch); new code names the record, Run.
RunRow = Run


async def insert(conn: AsyncConnection, values: dict[str, Any]) -> None:
    await conn.execute(runs.insert().values(**values))


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


async def claim(
    conn: AsyncConnection, worker_id: str, lease_until: datetime, exclude: set[str]
) -> str | None:
    """Take one claimable run: queued, or running with no live lease."""
    now = utcnow()
    q = (
        select(runs.c.id)
        .where(
            runs.c.status.in_(("queued", "running")),
            or_(runs.c.claimed_by.is_(None), runs.c.lease_expires_at < now),
        )
        .order_by(runs.c.created_at)
        .limit(1)
    )
    if exclude:
        q = q.where(runs.c.id.not_in(exclude))
    if conn.dialect.name == "postgresql":
        q = q.with_for_update(skip_locked=True)
    run_id = (await conn.execute(q)).scalar()
    if run_id is None:
        return None
    await conn.execute(
        update(runs).where(runs.c.id == run_id).values(
            claimed_by=worker_id, lease_expires_at=lease_until, attempts=runs.c.attempts + 1)
    )
    return str(run_id)


async def renew_leases(conn: AsyncConnection, worker_id: str, run_ids: list[str],
                       lease_until: datetime) -> set[str]:
    """Extend the leases this worker still holds; return the runs it holds."""
    if not run_ids:
        return set()
    await conn.execute(
        update(runs)
        .where(runs.c.id.in_(run_ids), runs.c.claimed_by == worker_id)
        .values(lease_expires_at=lease_until)
    )
    held = await conn.execute(
        select(runs.c.id).where(runs.c.id.in_(run_ids), runs.c.claimed_by == worker_id)
    )
    return {str(r) for r in held.scalars()}


async def cancel_requested_among(conn: AsyncConnection, run_ids: list[str]) -> set[str]:
    if not run_ids:
        return set()
    rows = await conn.execute(
        select(runs.c.id).where(runs.c.id.in_(run_ids), runs.c.cancel_requested.is_(True))
    )
    return {str(r) for r in rows.scalars()}


async def advance(conn: AsyncConnection, run_id: str, *, owner: str | None, seqs: int,
                  **values: Any) -> RunRow | None:
    """Reserve ``seqs`` event numbers and apply ``values`` in one statement
    (with ``owner``, only while that worker holds the lease). Returns the
    updated row, whose ``last_seq`` is the last number reserved; None when no
    row matched."""
    params = {f"v_{k}": v for k, v in values.items()}
    params.update(p_run=run_id, p_owner=owner, p_seqs=seqs)
    q = _advance_statement(owner is not None, tuple(sorted(values)))
    return maybe(Run, (await conn.execute(q, params)).first())


@lru_cache(maxsize=64)
def _advance_statement(owned: bool, columns: tuple[str, ...]) -> Update:
    """The UPDATE … RETURNING of :func:`advance` for one set of columns,
    built once: building it (40 returned columns) cost more than running it.
    The callers use a handful of column sets."""
    q = update(runs).where(runs.c.id == bindparam("p_run"))
    if owned:
        q = q.where(runs.c.claimed_by == bindparam("p_owner"))
    sets = {c: bindparam(f"v_{c}", type_=runs.c[c].type) for c in columns}
    return q.values(last_seq=runs.c.last_seq + bindparam("p_seqs"), **sets).returning(*runs.c)


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
