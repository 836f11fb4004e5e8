"""Workflows, their versions, workflow runs (the workflow queue), their event
log and the interpreter's step states.

Queries return records (:mod:`deckhand.store.records`): ``Workflow``,
``WorkflowVersion``, ``WorkflowRun``, ``WorkflowStep``, and ``Run`` for task runs. State
changes with their events and webhooks live in
:mod:`deckhand.engine.workflow_lifecycle`; this module reads and writes rows.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Select, Table, and_, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from deckhand.core.clock import utcnow
from deckhand.errors import ErrorCode, InvalidState, NotFound
from deckhand.store.events import Event
from deckhand.store.queue import worker_queue
from deckhand.store.records import (
    Run,
    Workflow,
    WorkflowRun,
    WorkflowStep,
    WorkflowVersion,
    from_row,
    maybe,
)
from deckhand.store.runs import ACTIVE
from deckhand.store.tables import (
    accounts,
    runs,
    workflow_run_events,
    workflow_runs,
    workflow_steps,
    workflow_versions,
    workflows,
)

TERMINAL = frozenset({"succeeded", "failed", "cancelled", "timed_out"})


# -- workflows ---------------------------------------------------------------------------


async def insert_workflow(conn: AsyncConnection, values: dict[str, Any]) -> None:
    """A new workflow and its version 1; 409 CONFLICT when the slug is taken."""
    clash = (await conn.execute(
        select(workflows.c.id).where(workflows.c.account_id == values["account_id"],
                                     workflows.c.mode == values["mode"],
                                     workflows.c.slug == values["slug"])
    )).first()
    if clash is not None:
        raise _slug_taken(values["slug"])
    try:
        async with conn.begin_nested():
            await conn.execute(workflows.insert().values(**values))
    except IntegrityError:
        raise _slug_taken(values["slug"]) from None
    await insert_version(conn, values["id"], values["version"], values["definition"],
                         values["inputs_schema"], values["created_at"])


def _slug_taken(slug: str) -> InvalidState:
    return InvalidState(f"A workflow with slug {slug!r} already exists.", code=ErrorCode.CONFLICT)


async def insert_version(conn: AsyncConnection, workflow_id: str, version: int,
                         definition: dict[str, Any], inputs_schema: dict[str, Any] | None,
                         created_at: datetime) -> None:
    await conn.execute(workflow_versions.insert().values(
        workflow_id=workflow_id, version=version, definition=definition,
        inputs_schema=inputs_schema, created_at=created_at))


async def get_workflow_owned(conn: AsyncConnection, workflow_id: str, account_id: str,
                             mode: str) -> Workflow:
    row = (await conn.execute(
        select(workflows).where(workflows.c.id == workflow_id,
                                workflows.c.account_id == account_id, workflows.c.mode == mode)
    )).first()
    if row is None:
        raise NotFound(f"Workflow {workflow_id} not found.")
    return from_row(Workflow, row)


async def list_workflows(conn: AsyncConnection, account_id: str, mode: str, *,
                         status: str | None, limit: int,
                         starting_after: Workflow | None = None,
                         ) -> tuple[list[Workflow], bool]:
    q = select(workflows).where(workflows.c.account_id == account_id, workflows.c.mode == mode)
    if status:
        q = q.where(workflows.c.status == status)
    q = _page(q, workflows, starting_after, limit)
    rows = [from_row(Workflow, r) for r in await conn.execute(q)]
    return rows[:limit], len(rows) > limit


async def update_workflow(conn: AsyncConnection, workflow_id: str, **values: Any) -> Workflow:
    """Apply ``values`` and bump the version (returns the new record)."""
    row = maybe(Workflow, (await conn.execute(
        update(workflows).where(workflows.c.id == workflow_id)
        .values(version=workflows.c.version + 1, updated_at=utcnow(), **values)
        .returning(*workflows.c)
    )).first())
    assert row is not None
    await insert_version(conn, row.id, row.version, row.definition, row.inputs_schema,
                         row.updated_at)
    return row


async def archive_workflow(conn: AsyncConnection, workflow_id: str) -> None:
    await conn.execute(update(workflows).where(workflows.c.id == workflow_id)
                       .values(status="archived", updated_at=utcnow()))


async def get_version(conn: AsyncConnection, workflow_id: str,
                      version: int) -> WorkflowVersion | None:
    return maybe(WorkflowVersion, (await conn.execute(
        select(workflow_versions).where(workflow_versions.c.workflow_id == workflow_id,
                                        workflow_versions.c.version == version)
    )).first())


_Q = TypeVar("_Q", bound=Select[Any])


def _page(q: _Q, table: Table, after: Workflow | WorkflowRun | None, limit: int) -> _Q:
    """Newest first, after the cursor record ``after``."""
    if after is not None:
        q = q.where(or_(table.c.created_at < after.created_at,
                        and_(table.c.created_at == after.created_at, table.c.id < after.id)))
    return q.order_by(table.c.created_at.desc(), table.c.id.desc()).limit(limit + 1)


# -- workflow runs -----------------------------------------------------------------------------


async def insert_run(conn: AsyncConnection, values: dict[str, Any]) -> None:
    await conn.execute(workflow_runs.insert().values(**values))


async def get_run(conn: AsyncConnection, run_id: str) -> WorkflowRun | None:
    return maybe(WorkflowRun, (await conn.execute(
        select(workflow_runs).where(workflow_runs.c.id == run_id))).first())


async def get_run_owned(conn: AsyncConnection, run_id: str, account_id: str,
                        mode: str) -> WorkflowRun:
    row = (await conn.execute(
        select(workflow_runs).where(workflow_runs.c.id == run_id,
                                    workflow_runs.c.account_id == account_id,
                                    workflow_runs.c.mode == mode)
    )).first()
    if row is None:
        raise NotFound(f"Workflow run {run_id} not found.")
    return from_row(WorkflowRun, row)


async def list_runs(conn: AsyncConnection, account_id: str, mode: str, *,
                    workflow_id: str | None, status: str | None, limit: int,
                    starting_after: WorkflowRun | None = None,
                    ) -> tuple[list[WorkflowRun], bool]:
    q = select(workflow_runs).where(workflow_runs.c.account_id == account_id,
                                    workflow_runs.c.mode == mode)
    if workflow_id:
        q = q.where(workflow_runs.c.workflow_id == workflow_id)
    if status:
        q = q.where(workflow_runs.c.status == status)
    q = _page(q, workflow_runs, starting_after, limit)
    rows = [from_row(WorkflowRun, r) for r in await conn.execute(q)]
    return rows[:limit], len(rows) > limit


# The workflow run queue: claim, renew, cancel flags, hand back (store/queue.py).
QUEUE = worker_queue(workflow_runs)


async def advance(conn: AsyncConnection, run_id: str, *, owner: str | None, seqs: int,
                  **values: object) -> WorkflowRun | None:
    """Reserve ``seqs`` event numbers and apply ``values`` in one statement
    (:meth:`LeasedQueue.advance`); the run as updated, or None (lease lost)."""
    return maybe(WorkflowRun, await QUEUE.advance(conn, run_id, owner=owner, seqs=seqs,
                                                  **values))


async def overdue(conn: AsyncConnection, now: datetime, limit: int = 100) -> list[WorkflowRun]:
    """Workflow runs nobody drives whose deadline, or wait for approval, is over."""
    c = workflow_runs.c
    unowned = or_(c.claimed_by.is_(None), c.lease_expires_at < now)
    q = select(workflow_runs).where(or_(
        and_(c.status.in_(("queued", "awaiting_human")), c.deadline_at < now),
        and_(c.status == "running", c.deadline_at < now, unowned),
        and_(c.status == "awaiting_human", c.awaiting_timeout_at < now),
    )).limit(limit)
    return [from_row(WorkflowRun, r) for r in await conn.execute(q)]


# -- events -----------------------------------------------------------------------------------------


async def write_events(conn: AsyncConnection, run_id: str, first: int,
                       items: list[tuple[str, dict[str, Any]]]) -> list[Event]:
    """Insert events numbered from ``first`` (reserved with :func:`advance`)."""
    if not items:
        return []
    now = utcnow()
    out = [Event(first + i, t, d) for i, (t, d) in enumerate(items)]
    await conn.execute(workflow_run_events.insert(), [
        {"workflow_run_id": run_id, "seq": e.seq, "type": e.type, "data": e.data,
         "created_at": now} for e in out])
    return out


async def events_after(conn: AsyncConnection, run_id: str, seq: int,
                       limit: int = 500) -> list[Event]:
    e = workflow_run_events.c
    rows = await conn.execute(
        select(e.seq, e.type, e.data).where(e.workflow_run_id == run_id, e.seq > seq)
        .order_by(e.seq).limit(limit))
    return [Event(r.seq, r.type, r.data) for r in rows]


# -- step states --------------------------------------------------------------------------------------


async def steps_of(conn: AsyncConnection, run_id: str) -> dict[str, WorkflowStep]:
    rows = await conn.execute(select(workflow_steps)
                              .where(workflow_steps.c.workflow_run_id == run_id))
    return {r.key: from_row(WorkflowStep, r) for r in rows}


async def get_step(conn: AsyncConnection, run_id: str, key: str) -> WorkflowStep | None:
    s = workflow_steps.c
    return maybe(WorkflowStep, (await conn.execute(
        select(workflow_steps).where(s.workflow_run_id == run_id, s.key == key))).first())


async def insert_step(conn: AsyncConnection, run_id: str, key: str,
                      **values: Any) -> WorkflowStep:
    values.setdefault("started_at", utcnow())
    await conn.execute(workflow_steps.insert().values(workflow_run_id=run_id, key=key, **values))
    row = await get_step(conn, run_id, key)
    assert row is not None
    return row


async def update_step(conn: AsyncConnection, run_id: str, key: str,
                      **values: Any) -> WorkflowStep:
    s = workflow_steps.c
    row = maybe(WorkflowStep, (await conn.execute(
        update(workflow_steps).where(s.workflow_run_id == run_id, s.key == key)
        .values(**values).returning(*workflow_steps.c))).first())
    assert row is not None
    return row


async def open_steps(conn: AsyncConnection, run_id: str) -> list[WorkflowStep]:
    """Step states not yet finished (running, awaiting)."""
    s = workflow_steps.c
    rows = await conn.execute(select(workflow_steps).where(
        s.workflow_run_id == run_id, s.finished_at.is_(None), s.type != "iteration"))
    return [from_row(WorkflowStep, r) for r in rows]


# -- child runs ----------------------------------------------------------------------------------------


async def children(conn: AsyncConnection, run_id: str, *, active_only: bool = False,
                   ) -> list[Run]:
    q = select(runs).where(runs.c.workflow_run_id == run_id)
    if active_only:
        q = q.where(runs.c.status.in_(ACTIVE))
    return [from_row(Run, r) for r in await conn.execute(q.order_by(runs.c.created_at))]


async def spent_cents(conn: AsyncConnection, run_id: str) -> int:
    total = (await conn.execute(
        select(func.coalesce(func.sum(runs.c.cost_cents), 0))
        .where(runs.c.workflow_run_id == run_id))).scalar()
    return int(total or 0)


async def active_children_of_account(conn: AsyncConnection, account_id: str) -> int:
    """Task runs of any workflow run of the account that have not ended.
    On PostgreSQL the account row is locked first, so that the count and the
    insert that follows it are serialized per account (SQLite's write
    transactions already are)."""
    if conn.dialect.name == "postgresql":
        await conn.execute(select(accounts.c.id).where(accounts.c.id == account_id)
                           .with_for_update())
    n = (await conn.execute(
        select(func.count()).select_from(runs)
        .where(runs.c.account_id == account_id, runs.c.workflow_run_id.is_not(None),
               runs.c.status.in_(ACTIVE)))).scalar()
    return int(n or 0)
