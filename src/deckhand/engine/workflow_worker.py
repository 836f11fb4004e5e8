"""The workflow worker: the claim loop (engine/claim_loop.py) over workflow
runs, each interpreted by engine/workflow.py; sweeps the ones nobody drives
past their deadline or their wait for an approval.

A workflow run's own work is small (its task steps are ordinary runs, driven
by the run workers), so a worker holds many: each waits on wake-ups, not in
a busy loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from deckhand.core.clock import utcnow
from deckhand.engine.claim_loop import ClaimLoop
from deckhand.engine.lifecycle import LeaseLost
from deckhand.engine.notify import Notifier
from deckhand.engine.submit import RunSubmitter
from deckhand.engine.workflow import MAX_ATTEMPTS, Engine, Interpreter
from deckhand.engine.workflow_lifecycle import WorkflowLifecycle, error
from deckhand.errors import ErrorCode
from deckhand.store import workflows as wf_store
from deckhand.store.db import Database
from deckhand.store.workflows import TERMINAL

log = logging.getLogger("deckhand.workflow_worker")

RECANCEL_SECONDS = 5.0


class WorkflowWorker(ClaimLoop):
    kind = "workflow run"
    claim_topic = "workflow_runs"
    cancel_topic = "workflow_cancel"
    recancel_seconds = RECANCEL_SECONDS  # a cancellation can be lost (see cancel_all)

    def __init__(
        self,
        db: Database,
        notifier: Notifier,
        lifecycle: WorkflowLifecycle,
        submitter: RunSubmitter,
        *,
        slots: int,
        lease_seconds: float,
        poll_seconds: float,
        child_limit: int,
        worker_id: str | None = None,
    ) -> None:
        super().__init__(db, notifier, wf_store.QUEUE, slots=slots,
                         lease_seconds=lease_seconds, poll_seconds=poll_seconds,
                         worker_id=worker_id)
        self.lifecycle = lifecycle
        self.engine = Engine(db, notifier, lifecycle, submitter, self.id, poll_seconds,
                             child_limit)

    async def crashed(self, item_id: str) -> None:
        """A database hiccup (a deadlock victim, a lost connection) must not
        end a long workflow: its lease runs out and a claim replays it; after
        MAX_ATTEMPTS claims it is failed (see drive)."""
        log.warning("workflow run %s will be taken up again when its lease expires", item_id)

    async def drive(self, run_id: str, cancel_requested: Callable[[], bool]) -> None:
        """Interpret the run until it ends, waits for a human, or this task is
        cancelled (by a user's cancel when ``cancel_requested()``, else by a
        shutdown, which leaves the run — and its task runs — for another worker)."""
        try:
            async with self.db.write() as conn:
                run = await wf_store.get_run(conn, run_id)
                if run is None or run.status in TERMINAL or run.claimed_by != self.id:
                    return
                if run.attempts > MAX_ATTEMPTS:
                    await self.lifecycle.finish(conn, run, "failed", owner=self.id, error=error(
                        ErrorCode.INTERNAL_ERROR,
                        f"Gave up after {MAX_ATTEMPTS} attempts to drive the workflow run."))
                    return
                if run.cancel_requested:
                    await self.lifecycle.finish(conn, run, "cancelled", owner=self.id,
                                                error=error(ErrorCode.CANCELLED, "Cancelled by request."))
                    return
                if run.status != "running":
                    run = await self.lifecycle.start(conn, run, self.id)
            await Interpreter(self.engine, run).execute()
        except LeaseLost:
            log.warning("workflow run %s: lease lost; stopping here", run_id)
        except asyncio.CancelledError:
            if cancel_requested():
                await self._end(run_id, "cancelled", error(ErrorCode.CANCELLED, "Cancelled by request."))
                return
            await self._release(run_id)
            raise

    async def _end(self, run_id: str, status: str, err: dict[str, object]) -> None:
        with contextlib.suppress(Exception):
            async with self.db.write() as conn:
                run = await wf_store.get_run(conn, run_id)
                if run is not None and run.status not in TERMINAL:
                    await self.lifecycle.finish(conn, run, status, error=err)

    async def _release(self, run_id: str) -> None:
        with contextlib.suppress(Exception):
            async with self.db.write() as conn:
                await wf_store.QUEUE.release(conn, run_id, self.id)
                await self.notifier.emit(conn, "workflow_runs", "*")

    async def sweep(self) -> None:
        """End workflow runs nobody drives whose deadline, or wait for an
        approval, is over."""
        now = utcnow()
        async with self.db.read() as conn:
            candidates = await wf_store.overdue(conn, now)
        for candidate in candidates:
            if candidate.id in self._running:
                continue
            async with self.db.write() as conn:
                run = await wf_store.get_run(conn, candidate.id)
                if run is None or run.status in TERMINAL or (
                        run.status == "running" and run.lease_expires_at is not None
                        and run.lease_expires_at > now):
                    continue
                if run.deadline_at is not None and run.deadline_at < now:
                    await self.lifecycle.finish(conn, run, "timed_out", error=error(
                        ErrorCode.DEADLINE_EXCEEDED,
                        f"The workflow run exceeded its deadline of {run.deadline_seconds} s."))
                elif (run.status == "awaiting_human" and run.awaiting_timeout_at is not None
                      and run.awaiting_timeout_at < now):
                    await self.lifecycle.time_out_approval(conn, run)
