"""Schedules and their firings (tables ``schedules``, ``schedule_runs``).

A firing's status as clients see it comes from its run while it has one
(queued → running → completed / failed / cancelled), so it is never stale;
firings without a run keep their own (skipped, insufficient_credits, failed,
or pending: a chain firing the scheduler has yet to make).

Claiming due schedules and pending firings takes their rows with ``FOR
UPDATE SKIP LOCKED`` on PostgreSQL; on SQLite the caller's write
transaction (``BEGIN IMMEDIATE``) already excludes every other writer. The
caller fires and advances them in that same transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

from sqlalchemy import (
    Row,
    Select,
    Update,
    and_,
    bindparam,
    case,
    delete,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from deckhand.errors import NotFound
from deckhand.store.records import Schedule, ScheduleRun, from_row, maybe
from deckhand.store.tables import runs, schedule_runs, schedule_triggers, schedules
from deckhand.store.tables import webhook_receipts as receipts

FAILED_RUN = frozenset({"failed", "timed_out"})
# Firing statuses that count as a failure of the schedule (auto-pause).
FAILED_FIRING = frozenset({"skipped", "insufficient_credits", "failed"})
MAX_CHAIN_DEPTH = 5
_SHOWN = case(
    (schedule_runs.c.run_id.is_(None),
     case((schedule_runs.c.status == "pending", "queued"), else_=schedule_runs.c.status)),
    (runs.c.status == "succeeded", "completed"),
    (runs.c.status.in_(tuple(FAILED_RUN)), "failed"),
    (runs.c.status == "cancelled", "cancelled"),
    (runs.c.status.in_(("running", "awaiting_human")), "running"),
    else_="queued",
)


@dataclass(frozen=True, slots=True)
class Firing:
    """A firing as the contract's ScheduleRunRecord shows it."""

    record: ScheduleRun
    status: str
    duration_seconds: int | None
    credits_charged: int | None
    error: str | None


# -- schedules ----------------------------------------------------------------------


async def insert(conn: AsyncConnection, values: dict[str, object]) -> None:
    await conn.execute(schedules.insert(), values)


async def get(conn: AsyncConnection, schedule_id: str) -> Schedule | None:
    q = select(schedules).where(schedules.c.id == schedule_id)
    return maybe(Schedule, (await conn.execute(q)).first())


async def get_owned(conn: AsyncConnection, schedule_id: str, account_id: str,
                    mode: str) -> Schedule:
    q = select(schedules).where(schedules.c.id == schedule_id,
                                schedules.c.account_id == account_id, schedules.c.mode == mode)
    row = (await conn.execute(q)).first()
    if row is None:
        raise NotFound(f"Schedule {schedule_id} not found.")
    return from_row(Schedule, row)


async def list_owned(conn: AsyncConnection, account_id: str, mode: str,
                     limit: int) -> tuple[list[Schedule], bool]:
    q = (select(schedules).where(schedules.c.account_id == account_id, schedules.c.mode == mode)
         .order_by(schedules.c.created_at.desc(), schedules.c.id.desc()).limit(limit + 1))
    rows = [from_row(Schedule, r) for r in await conn.execute(q)]
    return rows[:limit], len(rows) > limit


async def update_schedule(conn: AsyncConnection, schedule_id: str,
                          increment: tuple[str, ...] = (), **values: object) -> Schedule:
    """Set ``values`` and add one to the ``increment`` columns; the schedule
    as updated. The statement is built once per set of columns (the
    scheduler runs it for every firing)."""
    q = _update_statement(tuple(sorted(values)), tuple(sorted(increment)))
    params = {f"v_{k}": v for k, v in values.items()}
    row = (await conn.execute(q, {"p_id": schedule_id, **params})).first()
    if row is None:
        raise NotFound(f"Schedule {schedule_id} not found.")
    return from_row(Schedule, row)


@lru_cache(maxsize=64)
def _update_statement(columns: tuple[str, ...], increment: tuple[str, ...]) -> Update:
    c = schedules.c
    sets: dict[str, object] = {k: bindparam(f"v_{k}", type_=c[k].type) for k in columns}
    sets.update({k: c[k] + 1 for k in increment})
    return (update(schedules).where(c.id == bindparam("p_id")).values(sets)
            .returning(*schedules.c))


async def remove(conn: AsyncConnection, schedule_id: str) -> None:
    """The schedule, its firings and triggers, and the chain triggers it is the source of."""
    trig = schedule_triggers.c
    mine = select(trig.id).where(or_(trig.schedule_id == schedule_id,
                                     trig.source_schedule_id == schedule_id))
    await conn.execute(delete(receipts).where(receipts.c.trigger_id.in_(mine)))
    await conn.execute(delete(schedule_triggers).where(
        or_(trig.schedule_id == schedule_id, trig.source_schedule_id == schedule_id)))
    await conn.execute(delete(schedule_runs).where(schedule_runs.c.schedule_id == schedule_id))
    await conn.execute(delete(schedules).where(schedules.c.id == schedule_id))


# -- the scheduler's queries ------------------------------------------------------------


async def next_work(conn: AsyncConnection) -> tuple[datetime | None, bool]:
    """The earliest due time of an enabled schedule, and whether a chain
    firing is pending: one statement (the scheduler's idle cost)."""
    due = select(func.min(schedules.c.next_run_at)).where(
        schedules.c.enabled.is_(True)).scalar_subquery()
    pending = select(func.count()).select_from(
        select(schedule_runs.c.id).where(schedule_runs.c.status == "pending").limit(1)
        .subquery()).scalar_subquery()
    row = (await conn.execute(select(due, pending))).one()
    at = row[0]
    return at, bool(row[1])


async def claim_due(conn: AsyncConnection, now: datetime, limit: int) -> list[Schedule]:
    q = (select(schedules).where(schedules.c.enabled.is_(True), schedules.c.next_run_at <= now)
         .order_by(schedules.c.next_run_at).limit(limit))
    if conn.dialect.name == "postgresql":
        q = q.with_for_update(skip_locked=True)
    return [from_row(Schedule, r) for r in await conn.execute(q)]


async def claim_pending(conn: AsyncConnection, limit: int) -> list[ScheduleRun]:
    q = (select(schedule_runs).where(schedule_runs.c.status == "pending")
         .order_by(schedule_runs.c.executed_at).limit(limit))
    if conn.dialect.name == "postgresql":
        q = q.with_for_update(skip_locked=True)
    return [from_row(ScheduleRun, r) for r in await conn.execute(q)]


# -- firings --------------------------------------------------------------------------


async def insert_firing(conn: AsyncConnection, values: dict[str, object]) -> None:
    await conn.execute(schedule_runs.insert(), values)


async def settle_firing(conn: AsyncConnection, firing_id: str, **values: object) -> None:
    await conn.execute(update(schedule_runs).where(schedule_runs.c.id == firing_id)
                       .values(**values))


async def count_firing(conn: AsyncConnection, schedule: Schedule, *, at: datetime,
                       started_run: bool, failed: bool, **advance: object) -> Schedule:
    """A firing's effect on the counters — ``run_count`` (firings that started
    a run), ``last_run_at``, a failure of the firing itself — and ``advance``
    (the next due time), in one statement."""
    increment = (("run_count",) if started_run else ()) + (
        ("consecutive_failures",) if failed else ())
    fresh = await update_schedule(conn, schedule.id, increment, last_run_at=at, **advance)
    return await _maybe_pause(conn, fresh) if failed else fresh


async def _maybe_pause(conn: AsyncConnection, s: Schedule) -> Schedule:
    if not s.enabled or s.consecutive_failures < s.max_consecutive_failures:
        return s
    return await update_schedule(
        conn, s.id, enabled=False, next_run_at=None,
        paused_reason=f"Paused after {s.consecutive_failures} consecutive failures "
                      f"(max_consecutive_failures={s.max_consecutive_failures}).")


def _firing_query() -> Select[tuple[object, ...]]:
    c = schedule_runs.c
    return select(schedule_runs, _SHOWN.label("shown"), runs.c.started_at, runs.c.finished_at,
                  runs.c.credits_charged, runs.c.error.label("run_error")).select_from(
        schedule_runs.outerjoin(runs, runs.c.id == c.run_id))


def _firing(row: Row[tuple[object, ...]]) -> Firing:
    m = row._mapping
    record = ScheduleRun(**{k: m[k] for k in ScheduleRun.__slots__})
    duration = None
    if m["started_at"] is not None and m["finished_at"] is not None:
        duration = int((m["finished_at"] - m["started_at"]).total_seconds())
    error = record.error
    if error is None and m["run_error"]:
        run_error = m["run_error"]
        error = f"{run_error.get('code')}: {run_error.get('message')}"
    return Firing(record=record, status=str(m["shown"]), duration_seconds=duration,
                  credits_charged=m["credits_charged"], error=error)


async def get_firing(conn: AsyncConnection, schedule_id: str, firing_id: str) -> Firing:
    q = _firing_query().where(schedule_runs.c.schedule_id == schedule_id,
                              schedule_runs.c.id == firing_id)
    row = (await conn.execute(q)).first()
    if row is None:
        raise NotFound(f"Schedule run {firing_id} not found.")
    return _firing(row)


async def list_firings(conn: AsyncConnection, schedule_id: str, *, status: str | None,
                       limit: int, cursor: str | None) -> tuple[list[Firing], bool]:
    c = schedule_runs.c
    q = _firing_query().where(c.schedule_id == schedule_id)
    if status is not None:
        q = q.where(_SHOWN == status)
    if cursor is not None:
        after = (await conn.execute(select(c.executed_at).where(
            c.schedule_id == schedule_id, c.id == cursor))).scalar_one_or_none()
        if after is None:
            raise NotFound(f"cursor {cursor!r} is not a run of this schedule.")
        q = q.where(or_(c.executed_at < after, and_(c.executed_at == after, c.id < cursor)))
    q = q.order_by(c.executed_at.desc(), c.id.desc()).limit(limit + 1)
    rows = [_firing(r) for r in await conn.execute(q)]
    return rows[:limit], len(rows) > limit


async def firing_of_run(conn: AsyncConnection, run_id: str) -> ScheduleRun | None:
    q = select(schedule_runs).where(schedule_runs.c.run_id == run_id)
    return maybe(ScheduleRun, (await conn.execute(q)).first())


async def run_ended(conn: AsyncConnection, firing: ScheduleRun, run_status: str) -> Schedule | None:
    """A run a schedule started ended: its failure streak (pausing the schedule
    at its limit) or the streak's reset. The schedule, or None if it is gone."""
    s = await get(conn, firing.schedule_id)
    if s is None:
        return None
    if run_status in FAILED_RUN:
        s = await update_schedule(conn, s.id, ("consecutive_failures",))
        return await _maybe_pause(conn, s)
    if run_status == "succeeded" and s.consecutive_failures:
        return await update_schedule(conn, s.id, consecutive_failures=0)
    return s
