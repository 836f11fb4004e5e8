"""The claim loop: a worker takes claimable runs (up to its slots), keeps
their leases alive, interrupts the ones a user cancels, and sweeps runs that
nobody drives past their deadline or their wait for a human."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from deckhand.brains.resolve import BrainResolver
from deckhand.engine.lifecycle import Lifecycle
from deckhand.engine.notify import Notifier
from deckhand.engine.runner import Runner
from deckhand.errors import ErrorCode
from deckhand.store import runs as runs_store
from deckhand.store.db import Database
from deckhand.store.runs import TERMINAL
from deckhand.store.types import utcnow

log = logging.getLogger("deckhand.worker")


def new_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class Worker:
    def __init__(
        self,
        db: Database,
        notifier: Notifier,
        lifecycle: Lifecycle,
        connect_machine: Callable[[str], Awaitable[Any]],
        *,
        slots: int,
        lease_seconds: float,
        poll_seconds: float,
        worker_id: str | None = None,
        brains: BrainResolver | None = None,
    ) -> None:
        self.db = db
        self.notifier = notifier
        self.lifecycle = lifecycle
        self.slots = slots
        self.lease = timedelta(seconds=lease_seconds)
        self.poll = poll_seconds
        self.id = worker_id or new_worker_id()
        self.runner = Runner(db, lifecycle, connect_machine, self.id, brains=brains)
        self._running: dict[str, asyncio.Task[None]] = {}
        self._cancelling: set[str] = set()
        self._tasks: list[asyncio.Task[None]] = []

    # -- lifecycle ----------------------------------------------------------
    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._claim_loop(), name=f"claim-{self.id}"),
            asyncio.create_task(self._lease_loop(), name=f"lease-{self.id}"),
            asyncio.create_task(self._sweep_loop(), name=f"sweep-{self.id}"),
        ]

    async def stop(self) -> None:
        """Stop claiming; hand every run in hand back for another worker."""
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        running = list(self._running.values())
        for t in running:
            t.cancel()
        for t in running:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t

    @property
    def active_runs(self) -> set[str]:
        return set(self._running)

    # -- claiming -------------------------------------------------------------
    async def _claim_loop(self) -> None:
        with self.notifier.subscribe("runs") as waiter:
            while True:
                claimed = 0
                while len(self._running) < self.slots:
                    run_id = await self._claim_one()
                    if run_id is None:
                        break
                    claimed += 1
                    self._launch(run_id)
                if not claimed:
                    await waiter.wait(self.poll)

    async def _claim_one(self) -> str | None:
        try:
            async with self.db.write() as conn:
                return await runs_store.claim(conn, self.id, utcnow() + self.lease,
                                              exclude=set(self._running))
        except Exception:
            log.exception("claim failed; retrying")
            return None

    def _launch(self, run_id: str) -> None:
        task = asyncio.create_task(self._drive(run_id), name=f"run-{run_id}")
        self._running[run_id] = task

    async def _drive(self, run_id: str) -> None:
        try:
            await self.runner.drive(run_id, lambda: run_id in self._cancelling)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("run %s crashed the runner", run_id)
            await self._fail_crashed(run_id)
        finally:
            self._running.pop(run_id, None)
            self._cancelling.discard(run_id)
            self.notifier.wake_local("runs", "*")

    async def _fail_crashed(self, run_id: str) -> None:
        with contextlib.suppress(Exception):
            async with self.db.write() as conn:
                run = await runs_store.get(conn, run_id)
                if run is not None and run.status not in TERMINAL:
                    await self.lifecycle.finish(conn, run, "failed", error={
                        "code": ErrorCode.INTERNAL_ERROR.value,
                        "message": "The run hit an internal error; see the server log.",
                    })

    # -- leases and cancellation -----------------------------------------------
    async def _lease_loop(self) -> None:
        renew_every = self.lease.total_seconds() / 3
        last_renew = 0.0
        loop = asyncio.get_running_loop()
        with self.notifier.subscribe("cancel") as waiter:
            while True:
                ids = list(self._running)
                try:
                    if loop.time() - last_renew >= renew_every:
                        async with self.db.write() as conn:
                            held = await runs_store.renew_leases(conn, self.id, ids,
                                                                 utcnow() + self.lease)
                        last_renew = loop.time()
                        for lost in set(ids) - held:
                            # A run that ended during the renewal is not held
                            # either, and has left (or is leaving) _running.
                            task = self._running.get(lost)
                            if task is not None and not task.done():
                                log.warning("run %s: lease lost; stopping", lost)
                                task.cancel()
                    async with self.db.read() as conn:
                        cancelled = await runs_store.cancel_requested_among(conn, ids)
                except Exception:
                    log.exception("lease upkeep failed; retrying")
                    cancelled = set()
                for run_id in cancelled - self._cancelling:
                    task = self._running.get(run_id)
                    if task is not None:
                        self._cancelling.add(run_id)
                        task.cancel()
                await waiter.wait(min(self.poll, renew_every))

    # -- sweeping -----------------------------------------------------------------
    async def _sweep_loop(self) -> None:
        while True:
            try:
                await self.sweep()
            except Exception:
                log.exception("sweep failed; retrying")
            await asyncio.sleep(self.poll)

    async def sweep(self) -> None:
        """End runs nobody drives whose deadline, or wait for a human, is over."""
        now = utcnow()
        async with self.db.read() as conn:
            candidates = await runs_store.overdue(conn, now)
        for run in candidates:
            if run.id in self._running:
                continue
            if run.deadline_at is not None and run.deadline_at < now:
                error = {"code": ErrorCode.DEADLINE_EXCEEDED.value,
                         "message": f"The run exceeded its deadline of {run.deadline_seconds} s."}
            elif (run.status == "awaiting_human" and run.awaiting_human_since is not None
                  and run.awaiting_human_since
                  + timedelta(seconds=run.awaiting_human_timeout_seconds) < now):
                error = {"code": ErrorCode.AWAITING_HUMAN_TIMEOUT.value,
                         "message": "Nobody answered within "
                                    f"{run.awaiting_human_timeout_seconds} s: "
                                    f"{run.awaiting_human_reason}"}
            else:
                continue
            async with self.db.write() as conn:
                fresh = await runs_store.get(conn, run.id)
                if fresh is None or fresh.status != run.status or (
                    fresh.status == "running" and fresh.lease_expires_at is not None
                    and fresh.lease_expires_at > now
                ):
                    continue
                await self.lifecycle.finish(conn, fresh, "timed_out", error=error)
