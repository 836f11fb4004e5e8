"""The leased queue: one table whose rows workers claim under a lease.

Runs, workflow runs and webhook deliveries are each such a queue. A row is
claimable while its status is one of the queue's claimable statuses, its
due time (if the table has one) has come, and nobody holds a live lease on
it; claiming sets the lease (and the owner, and counts the attempt, where the
table has those columns). A claimer may also name rows to *resume*: rows it
owns, left by an earlier process of the same worker identity (see
:mod:`deckhand.engine.identity`), are claimable at once, before their lease
runs out. Concurrent claimers never take the same row: on
PostgreSQL the rows are picked with ``FOR UPDATE SKIP LOCKED``, so each
claimer skips the rows another is taking; on SQLite every claim runs in a
write transaction (``BEGIN IMMEDIATE``, see :mod:`deckhand.store.db`), which
already excludes every other writer. That choice is made here and nowhere
else.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    ClauseElement,
    ColumnElement,
    Row,
    Table,
    Update,
    bindparam,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from deckhand.core.clock import utcnow

QueueRow = Row[Any]


@dataclass(frozen=True)
class LeasedQueue:
    """A table used as a leased queue, described by its column names.

    ``owner``, ``attempts``, ``cancel_flag``, ``due_at`` and ``seq`` are None
    for a table that lacks them (webhook deliveries have no owner: a lease
    there is only a time). Without an owner column, a row is free once its
    lease is empty or over; with one, once its owner is empty or its lease over.
    """

    table: Table
    status: str
    claimable_statuses: tuple[str, ...]
    lease_until: str
    order_by: tuple[str, ...]
    owner: str | None = None
    attempts: str | None = None  # counted up by every claim
    cancel_flag: str | None = None  # set when a user asks to cancel
    due_at: str | None = None  # claimable only once this time has come
    seq: str | None = None  # the last event number reserved (see advance)
    id: str = "id"

    # -- claiming ---------------------------------------------------------------------
    async def claim(self, conn: AsyncConnection, worker_id: str, lease_until: datetime,
                    exclude: Collection[str] = (), resume: Collection[str] = ()) -> str | None:
        """Take the first claimable row not in ``exclude`` for ``worker_id``;
        its id, or None when there is none. Rows in ``resume`` that
        ``worker_id`` owns are claimable even under a live lease: the caller
        knows the process that took them is gone (it held the identity)."""
        ids = await self._claim(conn, now=utcnow(), lease_until=lease_until, limit=1,
                                worker_id=worker_id, exclude=exclude, whole_rows=False,
                                resume=resume)
        return str(ids[0][0]) if ids else None

    async def held_by(self, conn: AsyncConnection, worker_id: str) -> set[str]:
        """The ids of unfinished rows whose owner is ``worker_id`` (at a
        start: what an earlier process of that identity left)."""
        c = self.table.c
        rows = await conn.execute(select(c[self.id]).where(
            c[self._owner()] == worker_id, c[self.status].in_(self.claimable_statuses)))
        return {str(i) for i in rows.scalars()}

    async def claim_many(self, conn: AsyncConnection, *, now: datetime, lease_until: datetime,
                         limit: int, worker_id: str | None = None,
                         exclude: Collection[str] = ()) -> list[QueueRow]:
        """Take up to ``limit`` claimable rows (as of ``now``); the rows as
        updated, in the queue's order."""
        rows = await self._claim(conn, now=now, lease_until=lease_until, limit=limit,
                                 worker_id=worker_id, exclude=exclude, whole_rows=True)
        return sorted(rows, key=lambda r: tuple(getattr(r, name) for name in self.order_by))

    async def _claim(self, conn: AsyncConnection, *, now: datetime, lease_until: datetime,
                     limit: int, worker_id: str | None, exclude: Collection[str],
                     whole_rows: bool, resume: Collection[str] = ()) -> list[QueueRow]:
        c = self.table.c
        mine = (worker_id, resume) if resume else None
        pick = (
            select(c[self.id]).where(self.claimable(now, mine))
            .order_by(*(c[name] for name in self.order_by)).limit(limit)
        )
        if exclude:
            pick = pick.where(c[self.id].not_in(list(exclude)))
        if conn.dialect.name == "postgresql":
            pick = pick.with_for_update(skip_locked=True)
        picked = list((await conn.execute(pick)).scalars())
        if not picked:
            return []
        values: dict[str, object] = {self.lease_until: lease_until}
        if self.owner is not None:
            if worker_id is None:
                raise ValueError(f"a claim on {self.table.name} needs the worker's id")
            values[self.owner] = worker_id
        if self.attempts is not None:
            values[self.attempts] = c[self.attempts] + 1
        # The claimable condition again: under the lock (or the write
        # transaction) it still holds, so this only guards the statement pair.
        q = (update(self.table).where(c[self.id].in_(picked), self.claimable(now, mine))
             .values(values).returning(*(c if whole_rows else (c[self.id],))))
        return list((await conn.execute(q)).all())

    def claimable(self, now: datetime,
                  mine: tuple[str | None, Collection[str]] | None = None) -> ColumnElement[bool]:
        """Rows a claim may take at ``now``; with ``mine`` (an owner and ids),
        also those of the ids that owner holds, whatever their lease."""
        c = self.table.c
        lease = c[self.lease_until]
        free = c[self.owner] if self.owner is not None else lease
        taken_over = [free.is_(None), lease < now]
        if mine is not None:
            owner, ids = mine
            if owner is None:
                raise ValueError(f"resuming rows of {self.table.name} needs the worker's id")
            taken_over.append((c[self._owner()] == owner) & c[self.id].in_(list(ids)))
        cond = c[self.status].in_(self.claimable_statuses) & or_(*taken_over)
        if self.due_at is not None:
            cond = cond & (c[self.due_at] <= now)
        return cond

    # -- while holding ----------------------------------------------------------------
    async def renew(self, conn: AsyncConnection, worker_id: str, ids: Sequence[str],
                    lease_until: datetime) -> set[str]:
        """Extend the leases ``worker_id`` still holds among ``ids``; return the
        ids it holds. One UPDATE … RETURNING, so the ids returned are exactly
        the rows whose lease was extended."""
        if not ids:
            return set()
        c = self.table.c
        held = await conn.execute(
            update(self.table).where(c[self.id].in_(ids), c[self._owner()] == worker_id)
            .values({self.lease_until: lease_until}).returning(c[self.id]))
        return {str(i) for i in held.scalars()}

    async def cancel_requested_among(self, conn: AsyncConnection,
                                     ids: Sequence[str]) -> set[str]:
        """The ids among ``ids`` that a user asked to cancel."""
        if not ids:
            return set()
        if self.cancel_flag is None:
            raise ValueError(f"{self.table.name} has no cancel flag")
        c = self.table.c
        rows = await conn.execute(
            select(c[self.id]).where(c[self.id].in_(ids), c[self.cancel_flag].is_(True)))
        return {str(i) for i in rows.scalars()}

    async def release(self, conn: AsyncConnection, item_id: str, worker_id: str) -> bool:
        """Hand the row back (no owner, no lease) if ``worker_id`` holds it, so
        that another worker can claim it at once; whether it did."""
        c = self.table.c
        q = (update(self.table).where(c[self.id] == item_id, c[self._owner()] == worker_id)
             .values({self._owner(): None, self.lease_until: None}))
        return bool((await conn.execute(q)).rowcount)

    async def advance(self, conn: AsyncConnection, item_id: str, *, owner: str | None,
                      seqs: int, **values: object) -> QueueRow | None:
        """Reserve ``seqs`` event numbers and apply ``values`` in one statement
        (with ``owner``, only while that worker holds the lease). Returns the
        updated row, whose seq column is the last number reserved; None when no
        row matched (with an owner: the lease is lost)."""
        # A value computed in SQL (``iterations_used + 1``) is no parameter.
        in_sql = {k: v for k, v in values.items() if isinstance(v, ClauseElement)}
        params = {f"v_{k}": v for k, v in values.items() if k not in in_sql}
        params.update(p_id=item_id, p_owner=owner, p_seqs=seqs)
        q = _advance_statement(self, owner is not None,
                               tuple(sorted(k for k in values if k not in in_sql)))
        if in_sql:
            q = q.values(in_sql)
        return (await conn.execute(q, params)).first()

    def _owner(self) -> str:
        if self.owner is None:
            raise ValueError(f"{self.table.name} has no owner column")
        return self.owner


@lru_cache(maxsize=128)
def _advance_statement(queue: LeasedQueue, owned: bool, columns: tuple[str, ...]) -> Update:
    """The UPDATE … RETURNING of :meth:`LeasedQueue.advance` for one set of
    columns, built once: building it (40 returned columns) cost more than
    running it. The callers use a handful of column sets."""
    if queue.seq is None:
        raise ValueError(f"{queue.table.name} has no event sequence column")
    t = queue.table
    q = update(t).where(t.c[queue.id] == bindparam("p_id"))
    if owned:
        q = q.where(t.c[queue._owner()] == bindparam("p_owner"))
    sets: dict[str, object] = {c: bindparam(f"v_{c}", type_=t.c[c].type) for c in columns}
    sets[queue.seq] = t.c[queue.seq] + bindparam("p_seqs")
    return q.values(sets).returning(*t.c)


def worker_queue(table: Table) -> LeasedQueue:
    """The queue of a table that workers drive items of (runs, workflow runs):
    claimable while queued, or running with no live lease, oldest first; a
    claim sets ``claimed_by`` and ``lease_expires_at`` and counts ``attempts``."""
    return LeasedQueue(
        table, status="status", claimable_statuses=("queued", "running"),
        lease_until="lease_expires_at", order_by=("created_at",), owner="claimed_by",
        attempts="attempts", cancel_flag="cancel_requested", seq="last_seq",
    )
