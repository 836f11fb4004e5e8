"""The workflow interpreter's durable state: what ends a step or a run
(exceptions), where a step runs (:class:`Frame`), and the step records — each
step execution is a row in ``workflow_steps`` written in one transaction with
its events, as the owner of the run (see :mod:`deckhand.engine.workflow`)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NoReturn, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection

from deckhand.core.clock import utcnow
from deckhand.engine import dsl
from deckhand.engine.lifecycle import LeaseLost
from deckhand.engine.notify import Notifier
from deckhand.engine.submit import RunSubmitter
from deckhand.engine.workflow_lifecycle import WorkflowLifecycle, error, step_event
from deckhand.errors import ErrorCode
from deckhand.store import runs as runs_store
from deckhand.store import workflows as wf_store
from deckhand.store.db import Database
from deckhand.store.records import WorkflowRun, WorkflowStep
from deckhand.store.workflows import TERMINAL

T = TypeVar("T")


class StepFailed(Exception):
    def __init__(self, step_id: str, err: dict[str, Any]) -> None:
        super().__init__(err.get("message"))
        self.error = {**err, "step_id": err.get("step_id", step_id)}


class RunEnd(Exception):
    def __init__(self, status: str, *, error: dict[str, Any] | None = None,
                 output: dict[str, Any] | None = None) -> None:
        super().__init__(status)
        self.status, self.error, self.output = status, error, output


class Suspended(Exception):
    """The run waits for a human; its lease is given back."""


@dataclass(frozen=True)
class Frame:
    prefix: str = ""  # key prefix of the steps in this block
    loops: tuple[int, ...] = ()  # enclosing loop indexes, innermost last

    def into(self, prefix: str, index: int | None = None) -> Frame:
        return Frame(prefix, self.loops + ((index,) if index is not None else ()))


@dataclass
class Engine:
    """What the interpreter works with (shared by the runs of one worker)."""

    db: Database
    notifier: Notifier
    lifecycle: WorkflowLifecycle
    submitter: RunSubmitter
    worker_id: str
    poll: float
    child_limit: int


class StepRecords:
    """The interpreter's memory: the run's step rows (loaded at each claim) and
    what templates see (``steps``, ``vars``); every write goes through
    :meth:`_write`, which checks the lease."""

    def __init__(self, engine: Engine, run: WorkflowRun) -> None:
        self.e = engine
        self.run = run
        self.definition = dsl.Definition.model_validate(run.definition)
        self.rows: dict[str, WorkflowStep] = {}
        self.steps: dict[str, dict[str, Any]] = {}  # {{steps.ID…}}
        self.vars: dict[str, Any] = {}  # {{vars.NAME}}

    def scope(self, frame: Frame) -> dict[str, Any]:
        scope: dict[str, Any] = {"inputs": self.run.inputs or {}, "steps": self.steps,
                                 "vars": self.vars}
        if frame.loops:
            scope["loop"] = {"index": frame.loops[-1]}
        return scope

    async def _write(self, fn: Callable[[AsyncConnection, WorkflowRun],
                                        Coroutine[Any, Any, T]]) -> T:
        """``fn`` in one write transaction, as the owner of the run."""
        async with self.e.db.write() as conn:
            run = await wf_store.get_run(conn, self.run.id)
            if run is None or run.claimed_by != self.e.worker_id:
                raise LeaseLost(self.run.id)
            return await fn(conn, run)

    async def _open(self, s: Any, key: str, *, events: list[Any] | None = None,
                    **values: Any) -> WorkflowStep:
        """Record a step as started (status running unless given)."""
        async def go(conn: AsyncConnection, run: WorkflowRun) -> WorkflowStep:
            values.setdefault("status", "running")
            row = await wf_store.insert_step(conn, run.id, key, step_id=s.id, type=s.type,
                                             **values)
            await self.e.lifecycle.record(conn, run, [("step_started", step_event(row)),
                                                      *(events or [])],
                                          owner=self.e.worker_id)
            return row

        row = await self._write(go)
        self.rows[key] = row
        return row

    async def _close(self, s: Any, key: str, status: str, *, result: Any = None,
                     err: dict[str, Any] | None = None, spent: bool = False) -> WorkflowStep:
        """Record a step as finished (a no-op if it already is)."""
        row = self.rows[key]
        if row.finished_at is not None:
            return row

        async def go(conn: AsyncConnection, run: WorkflowRun) -> WorkflowStep:
            data = {**(row.data or {}), "result": result, "error": err}
            fresh = await wf_store.update_step(conn, run.id, key, status=status, data=data,
                                               finished_at=utcnow())
            values = {"spent_cents": await wf_store.spent_cents(conn, run.id)} if spent else {}
            await self.e.lifecycle.record(conn, run, [("step_finished", step_event(fresh))],
                                          owner=self.e.worker_id, **values)
            return fresh

        row = await self._write(go)
        self.rows[key] = row
        return row

    async def _instant(self, s: Any, key: str, status: str, *, result: Any = None,
                       err: dict[str, Any] | None = None) -> WorkflowStep:
        """A step that starts and ends at once (assert, succeed, fail, a refusal)."""
        async def go(conn: AsyncConnection, run: WorkflowRun) -> WorkflowStep:
            row = await wf_store.insert_step(
                conn, run.id, key, step_id=s.id, type=s.type, status=status,
                data={"result": result, "error": err}, finished_at=utcnow())
            await self.e.lifecycle.record(
                conn, run, [("step_started", {**step_event(row), "status": "running"}),
                            ("step_finished", step_event(row))], owner=self.e.worker_id)
            return row

        row = await self._write(go)
        self.rows[key] = row
        return row

    async def _refuse(self, s: Any, key: str, code: ErrorCode, message: str) -> NoReturn:
        """Record the step as failed before it could start, and fail it."""
        err = error(code, message, step_id=s.id)
        self._remember(s, await self._instant(s, key, "failed", err=err))
        raise StepFailed(s.id, err)

    def _remember(self, s: Any, row: WorkflowStep) -> None:
        data = row.data or {}
        record = {"status": row.status, "result": data.get("result"), "error": data.get("error")}
        if row.child_run_id:
            record["run_id"] = row.child_run_id
        self.steps[s.id] = record

    def _outcome(self, s: Any, row: WorkflowStep) -> None:
        """Make a finished step's outcome visible, and raise it if it failed."""
        self._remember(s, row)
        if row.status != "succeeded":
            err = (row.data or {}).get("error") or error(ErrorCode.STEP_FAILED, f"Step {s.id} failed.")
            raise StepFailed(s.id, err)

    async def _container(self, s: Any, key: str, frame: Frame,
                         body: Callable[[WorkflowStep], Awaitable[dict[str, Any]]],
                         **open_values: Any) -> None:
        """A step holding other steps: open it, run ``body``, close it."""
        row = self.rows.get(key) or await self._open(s, key, **open_values)
        recorded = row if row.finished_at is not None else None
        try:
            result = await body(row)
        except StepFailed as exc:
            if recorded is None:
                recorded = await self._close(s, key, "failed", err=exc.error)
            self._outcome(s, recorded)
            raise
        if recorded is None:
            recorded = await self._close(s, key, "succeeded", result=result)
        self._outcome(s, recorded)

    async def _abandon(self, prefix: str) -> None:
        """Close the open steps under ``prefix`` as cancelled, with their child runs."""
        open_keys = [k for k, r in self.rows.items()
                     if k.startswith(prefix) and r.finished_at is None]
        if not open_keys:
            return

        async def go(conn: AsyncConnection, run: WorkflowRun) -> list[WorkflowStep]:
            closed, events = [], []
            for k in open_keys:
                row = self.rows[k]
                if row.child_run_id:
                    child = await runs_store.get(conn, row.child_run_id)
                    if child is not None and child.status not in TERMINAL:
                        await self.e.lifecycle.runs.request_cancel(conn, child)
                err = error(ErrorCode.CANCELLED, "A sibling branch failed (fail_fast).",
                            step_id=row.step_id)
                fresh = await wf_store.update_step(conn, run.id, k, status="cancelled",
                                                   finished_at=utcnow(),
                                                   data={**(row.data or {}), "error": err})
                closed.append(fresh)
                events.append(("step_finished", step_event(fresh)))
            await self.e.lifecycle.record(conn, run, events, owner=self.e.worker_id)
            return closed

        for row in await self._write(go):
            self.rows[row.key] = row

    async def _instant_marker(self, s: Any, key: str, kind: str, wake_at: datetime | None,
                              event: tuple[str, dict[str, Any]]) -> WorkflowStep:
        async def go(conn: AsyncConnection, run: WorkflowRun) -> WorkflowStep:
            row = await wf_store.insert_step(conn, run.id, key, step_id=s.id, type=kind,
                                             status="succeeded", wake_at=wake_at,
                                             finished_at=utcnow())
            await self.e.lifecycle.record(conn, run, [event], owner=self.e.worker_id)
            return row

        row = await self._write(go)
        self.rows[key] = row
        return row


async def cancel_all(tasks: list[asyncio.Task[None]]) -> None:
    """Cancel tasks and wait for them, cancelling again any that go on (a
    cancellation can be lost in a wake-up's ``wait_for`` on Python 3.11)."""
    pending = {t for t in tasks if not t.done()}
    while pending:
        for t in pending:
            t.cancel()
        _, pending = await asyncio.wait(pending, timeout=1.0)
    for t in tasks:
        if not t.cancelled():
            with contextlib.suppress(asyncio.CancelledError, Exception):
                t.exception()
