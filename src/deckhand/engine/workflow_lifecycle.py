"""A workflow run's state changes. As for runs (engine/lifecycle.py), each one
happens in the caller's write transaction: the row, its events (numbered
1, 2, 3… per workflow run), its webhook and its wake-ups commit together.

Wake-up topics: ``("workflow_runs", "*")`` a workflow run is claimable,
``("workflow_events", id)`` it has new events, ``("workflow_cancel", id)``
its owner should stop it. Ending a workflow run cancels its child runs and
destroys its bring-your-own-key snapshot.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from deckhand import crypto, ids
from deckhand.core.clock import iso, utcnow
from deckhand.engine.lifecycle import LeaseLost, Lifecycle, queue_webhook
from deckhand.engine.notify import Notifier
from deckhand.errors import ErrorCode, InvalidState
from deckhand.events.webhooks import SECRET_PURPOSE, new_webhook_secret
from deckhand.store import llm_keys as llm_keys_store
from deckhand.store import workflows as wf_store
from deckhand.store.records import WorkflowRun, WorkflowStep
from deckhand.store.workflows import TERMINAL
from deckhand.views import workflow_run_view

Events = list[tuple[str, dict[str, Any]]]
_AWAITING_CLEARED = {"awaiting_step_id": None, "awaiting_step_key": None,
                     "awaiting_human_since": None, "awaiting_timeout_at": None}


def error(code: ErrorCode | str, message: str, **extra: Any) -> dict[str, Any]:
    return {"code": code.value if isinstance(code, ErrorCode) else code, "message": message,
            **extra}


def step_event(row: WorkflowStep) -> dict[str, Any]:
    """The data of a step_started / step_finished event."""
    data: dict[str, Any] = {"step_id": row.step_id, "type": row.type, "key": row.key,
                            "status": row.status}
    if row.child_run_id:
        data["child_run_id"] = row.child_run_id
    error = (row.data or {}).get("error")
    if row.finished_at is not None and error:
        data["error"] = error
    return data


@dataclass(frozen=True)
class NewRun:
    """What a new workflow run is (checked by the caller)."""

    definition: dict[str, Any]
    inputs: dict[str, Any]
    workflow_id: str | None = None
    workflow_version: int | None = None
    machine_id: str | None = None
    model: str | None = None
    budget_cents: int | None = None
    max_iterations: int | None = None
    deadline_seconds: int | None = None
    webhook_url: str | None = None
    metadata: dict[str, Any] | None = None
    llm: dict[str, Any] | None = None  # the non-secret BYOK echo (brains.resolve.Choice)
    sealed_key: str | None = field(default=None, repr=False)  # its key, sealed


class WorkflowLifecycle:
    def __init__(self, notifier: Notifier, runs: Lifecycle, secret: bytes) -> None:
        self.notifier = notifier
        self.runs = runs
        self.secret = secret

    async def record(self, conn: AsyncConnection, run: WorkflowRun, events: Events,
                     owner: str | None = None, **values: Any) -> WorkflowRun:
        """Append events and apply values; with ``owner``, only while it holds
        the lease (else :class:`LeaseLost`)."""
        fresh = await wf_store.advance(conn, run.id, owner=owner, seqs=len(events), **values)
        if fresh is None:
            raise LeaseLost(run.id)
        await wf_store.write_events(conn, run.id, fresh.last_seq - len(events) + 1, events)
        if events:
            await self.notifier.emit(conn, "workflow_events", run.id)
        return fresh

    async def create(self, conn: AsyncConnection, *, account_id: str, mode: str, new: NewRun,
                     request_id: str | None) -> tuple[WorkflowRun, str | None]:
        """Queue a workflow run; returns it and its webhook secret (shown once)."""
        now = utcnow()
        run_id = ids.new_uuid()
        secret = new_webhook_secret() if new.webhook_url else None
        await wf_store.insert_run(conn, {
            "id": run_id, "account_id": account_id, "mode": mode, "status": "queued",
            "workflow_id": new.workflow_id, "workflow_version": new.workflow_version,
            "definition": new.definition, "inputs": new.inputs, "machine_id": new.machine_id,
            "model": new.model, "budget_cents": new.budget_cents or None,
            "max_iterations": new.max_iterations, "deadline_seconds": new.deadline_seconds,
            "deadline_at": now + timedelta(seconds=new.deadline_seconds)
            if new.deadline_seconds else None,
            "webhook_url": new.webhook_url,
            "webhook_secret_sealed": crypto.seal(self.secret, SECRET_PURPOSE, secret)
            if secret else None,
            "metadata": new.metadata, "request_id": request_id, "created_at": now,
            "llm": new.llm,
        })
        if new.sealed_key is not None:
            await llm_keys_store.snapshot_workflow(conn, run_id, new.sealed_key)
        run = await wf_store.get_run(conn, run_id)
        assert run is not None
        first: dict[str, Any] = {"status": "queued", "workflow_id": new.workflow_id,
                                 "workflow_version": new.workflow_version}
        if new.llm:
            first["llm"] = new.llm
        run = await self.record(conn, run, [("status", first)])
        await self.notifier.emit(conn, "workflow_runs", "*")
        return run, secret

    async def start(self, conn: AsyncConnection, run: WorkflowRun,
                    owner: str) -> WorkflowRun:
        values: dict[str, Any] = {"status": "running"}
        if run.started_at is None:
            values["started_at"] = utcnow()
        return await self.record(conn, run, [("status", {"status": "running",
                                                         "previous": run.status})],
                                 owner=owner, **values)

    async def finish(self, conn: AsyncConnection, run: WorkflowRun, status: str, *,
                     owner: str | None = None, output: dict[str, Any] | None = None,
                     error: dict[str, Any] | None = None,
                     extra_events: Events | None = None) -> WorkflowRun:
        """End the run: cancel its child runs still going, close its open
        steps, record the end and queue the webhook."""
        assert status in TERMINAL
        for child in await wf_store.children(conn, run.id, active_only=True):
            await self.runs.request_cancel(conn, child)
        now = utcnow()
        events = list(extra_events or [])
        for step in await wf_store.open_steps(conn, run.id):
            closed = "succeeded" if status == "succeeded" else "cancelled"
            row = await wf_store.update_step(conn, run.id, step.key, status=closed,
                                             finished_at=now)
            events.append(("step_finished", step_event(row)))
        if error is not None:
            events.append(("error", error))
        events += [
            ("status", {"status": status, "previous": run.status}),
            ("done", {"status": status, "output": output, "error": error}),
        ]
        values: dict[str, Any] = {}
        scrubbed = await llm_keys_store.scrub_workflow(conn, run)  # the key dies with the run
        if scrubbed is not None:
            values["llm"] = scrubbed
        fresh = await self.record(
            conn, run, events, owner=owner, status=status, output=output, error=error,
            finished_at=now, claimed_by=None, lease_expires_at=None,
            spent_cents=await wf_store.spent_cents(conn, run.id), **_AWAITING_CLEARED,
            **values)
        await self._webhook(conn, fresh, status)
        return fresh

    async def await_human(self, conn: AsyncConnection, run: WorkflowRun, owner: str, *,
                          step: WorkflowStep, reason: str,
                          timeout_at: datetime | None) -> WorkflowRun:
        fresh = await self.record(
            conn, run,
            [("step_started", step_event(step)),
             ("awaiting_human", {"step_id": step.step_id, "key": step.key, "reason": reason,
                                 "timeout_at": iso(timeout_at)}),
             ("status", {"status": "awaiting_human", "previous": run.status})],
            owner=owner, status="awaiting_human", awaiting_human_reason=reason,
            awaiting_step_id=step.step_id, awaiting_step_key=step.key,
            awaiting_human_since=utcnow(), awaiting_timeout_at=timeout_at,
            claimed_by=None, lease_expires_at=None,
        )
        await self._webhook(conn, fresh, "awaiting_human")
        return fresh

    async def resume(self, conn: AsyncConnection, run: WorkflowRun, *, approved: bool,
                     note: str | None) -> WorkflowRun:
        """Answer the pending human_approval: approved puts the run back in
        the queue (the interpreter goes on); rejected fails it."""
        if run.status != "awaiting_human" or not run.awaiting_step_key:
            raise InvalidState(f"Workflow run {run.id} is {run.status}; only a workflow run "
                               "awaiting approval (awaiting_human) can be resumed.")
        step = await wf_store.get_step(conn, run.id, run.awaiting_step_key)
        assert step is not None
        now = utcnow()
        data = {**(step.data or {}), "approved": approved, "note": note,
                "decided_at": iso(now)}
        answered = ("resumed", {"step_id": step.step_id, "approved": approved, "note": note})
        if approved:
            await wf_store.update_step(conn, run.id, step.key, data=data)
            fresh = await self.record(
                conn, run, [answered, ("status", {"status": "queued", "previous": run.status})],
                status="queued", **_AWAITING_CLEARED)
            await self.notifier.emit(conn, "workflow_runs", "*")
            return fresh
        err = error(ErrorCode.APPROVAL_REJECTED,
                    f"Step {step.step_id} was not approved" + (f": {note}" if note else "."),
                    step_id=step.step_id)
        row = await wf_store.update_step(conn, run.id, step.key, status="failed",
                                         finished_at=now, data={**data, "error": err})
        return await self.finish(conn, run, "failed", error=err,
                                 extra_events=[answered, ("step_finished", step_event(row))])

    async def time_out_approval(self, conn: AsyncConnection,
                                run: WorkflowRun) -> WorkflowRun:
        """Nobody answered in time: apply the step's ``on_timeout``."""
        assert run.awaiting_step_key is not None  # the sweep picks runs waiting on a step
        step = await wf_store.get_step(conn, run.id, run.awaiting_step_key)
        assert step is not None
        on_timeout = (step.data or {}).get("on_timeout", "fail")
        err = error(ErrorCode.AWAITING_HUMAN_TIMEOUT,
                    f"Nobody answered approval {step.step_id} in time: "
                    f"{run.awaiting_human_reason}", step_id=step.step_id)
        row = await wf_store.update_step(conn, run.id, step.key, status="timed_out",
                                         finished_at=utcnow(),
                                         data={**(step.data or {}), "error": err})
        return await self.finish(conn, run, "cancelled" if on_timeout == "cancel" else "failed",
                                 error=err, extra_events=[("step_finished", step_event(row))])

    async def request_cancel(self, conn: AsyncConnection,
                             run: WorkflowRun) -> WorkflowRun:
        """Cancel now if nobody drives the run; else flag it and wake its worker."""
        if run.status in TERMINAL:
            raise InvalidState(f"Workflow run {run.id} already ended ({run.status}); "
                               "it cannot be cancelled.")
        owned = (run.status == "running" and run.claimed_by is not None
                 and run.lease_expires_at is not None and run.lease_expires_at > utcnow())
        if not owned:
            return await self.finish(conn, run, "cancelled",
                                     error=error(ErrorCode.CANCELLED, "Cancelled by request."))
        fresh = await wf_store.advance(conn, run.id, owner=None, seqs=0, cancel_requested=True)
        assert fresh is not None
        await self.notifier.emit(conn, "workflow_cancel", run.id)
        return fresh

    async def _webhook(self, conn: AsyncConnection, run: WorkflowRun, status: str) -> None:
        await queue_webhook(conn, self.notifier, run, status, kind="workflow_run",
                            view=workflow_run_view)
