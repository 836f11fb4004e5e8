"""The workflow claim loop, like engine/worker.py for runs: a worker takes
claimable workflow runs (up to its slots), keeps their leases alive, stops
the ones a user cancels, and sweeps the ones nobody drives past their
deadline or their wait for an approval.

A workflow run's own work is small (its task steps are ordinary runs, driven
by the run workers), so a worker holds many: each waits on wake-ups, not in
a busy loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import timedelta

from deckhand.engine.lifecycle import LeaseLost
from deckhand.engine.notify import Notifier
from deckhand.engine.submit import RunSubmitter
from deckhand.engine.worker import new_worker_id
from deckhand.engine.workflow import MAX_ATTEMPTS, Engine, Interpreter
from deckhand.engine.workflow_lifecycle import WorkflowLifecycle, error
from deckhand.engine.workflow_state import cancel_all
from deckhand.errors import ErrorCode
from deckhand.store import workflows as wf_store
from deckhand.store.db import Database
from deckhand.store.types import utcnow
from deckhand.store.workflows import TERMINAL

log = logging.getLogger("deckhand.workflow_worker")

RECANCEL_SECONDS = 5.0


class WorkflowWorker:
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
        self.db = db
        self.notifier = notifier
        self.lifecycle = lifecycle
        self.slots = slots
        self.lease = timedelta(seconds=lease_seconds)
        self.poll = poll_seconds
        self.id = worker_id or new_worker_id()
        self.engine = Engine(db, notifier, lifecycle, submitter, self.id, poll_seconds,
                             child_limit)
        self._running: dict[str, asyncio.Task[None]] = {}
        self._cancelling: set[str] = set()
        self._cancel_sent: dict[str, float] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._claim_loop(), name=f"wf-claim-{self.id}"),
            asyncio.create_task(self._lease_loop(), name=f"wf-lease-{self.id}"),
            asyncio.create_task(self._sweep_loop(), name=f"wf-sweep-{self.id}"),
        ]

    async def stop(self) -> None:
        """Stop claiming; hand every workflow run in hand back."""
        self._stopping = True
        await cancel_all(self._tasks)
        await cancel_all(list(self._running.values()))

    @property
    def active_runs(self) -> set[str]:
        return set(self._running)

    # -- claiming ------------------------------------------------------------------
    async def _claim_loop(self) -> None:
        with self.notifier.subscribe("workflow_runs") as waiter:
            while not self._stopping:
                claimed = 0
                while len(self._running) < self.slots:
                    run_id = await self._claim_one()
                    if run_id is None:
                        break
                    claimed += 1
                    self._running[run_id] = asyncio.create_task(self._drive(run_id),
                                                                name=f"workflow-{run_id}")
                if not claimed:
                    await waiter.wait(self.poll)

    async def _claim_one(self) -> str | None:
        try:
            async with self.db.write() as conn:
                return await wf_store.claim(conn, self.id, utcnow() + self.lease,
                                            exclude=set(self._running))
        except Exception:
            log.exception("workflow claim failed; retrying")
            return None

    async def _drive(self, run_id: str) -> None:
        try:
            await self.drive(run_id, lambda: run_id in self._cancelling)
        except asyncio.CancelledError:
            raise
        except Exception:
            # A database hiccup (a deadlock victim, a lost connection) must not
            # end a long workflow: its lease runs out and a claim replays it;
            # after MAX_ATTEMPTS claims it is failed (see drive).
            log.exception("workflow run %s: the interpreter stopped on an error; it will be "
                          "taken up again when its lease expires", run_id)
        finally:
            self._running.pop(run_id, None)
            self._cancelling.discard(run_id)
            self._cancel_sent.pop(run_id, None)
            self.notifier.wake_local("workflow_runs", "*")

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
                                                error=error("CANCELLED", "Cancelled by request."))
                    return
                if run.status != "running":
                    run = await self.lifecycle.start(conn, run, self.id)
            await Interpreter(self.engine, run).execute()
        except LeaseLost:
            log.warning("workflow run %s: lease lost; stopping here", run_id)
        except asyncio.CancelledError:
            if cancel_requested():
                await self._end(run_id, "cancelled", error("CANCELLED", "Cancelled by request."))
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
                await wf_store.advance(conn, run_id, owner=self.id, seqs=0, claimed_by=None,
                                       lease_expires_at=None)
                await self.notifier.emit(conn, "workflow_runs", "*")

    # -- leases and cancellation ------------------------------------------------------
    async def _lease_loop(self) -> None:
        renew_every = self.lease.total_seconds() / 3
        last_renew = 0.0
        loop = asyncio.get_running_loop()
        with self.notifier.subscribe("workflow_cancel") as waiter:
            while not self._stopping:
                held_ids = list(self._running)
                cancelled: set[str] = set()
                try:
                    if loop.time() - last_renew >= renew_every:
                        async with self.db.write() as conn:
                            held = await wf_store.renew_leases(conn, self.id, held_ids,
                                                               utcnow() + self.lease)
                        last_renew = loop.time()
                        for lost in set(held_ids) - held:
                            task = self._running.get(lost)
                            if task is not None:
                                log.warning("workflow run %s: lease lost; stopping", lost)
                                task.cancel()
                    async with self.db.read() as conn:
                        cancelled = await wf_store.cancel_requested_among(conn, held_ids)
                except Exception:
                    log.exception("workflow lease upkeep failed; retrying")
                now = loop.time()
                for run_id in cancelled:
                    task = self._running.get(run_id)
                    sent = self._cancel_sent.get(run_id)
                    # again after a while: a cancellation can be lost (see cancel_all)
                    if task is not None and (sent is None or now - sent > RECANCEL_SECONDS):
                        self._cancelling.add(run_id)
                        self._cancel_sent[run_id] = now
                        task.cancel()
                await waiter.wait(min(self.poll, renew_every))

    # -- sweeping -----------------------------------------------------------------------
    async def _sweep_loop(self) -> None:
        while not self._stopping:
            try:
                await self.sweep()
            except Exception:
                log.exception("workflow sweep failed; retrying")
            await asyncio.sleep(self.poll)

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
