"""The run worker: the claim loop (engine/claim_loop.py) over runs, each
driven by the runner; sweeps runs that nobody drives past their deadline or
their wait for a human."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from deckhand.artifacts.base import ArtifactStore
from deckhand.core.clock import utcnow
from deckhand.engine.claim_loop import ClaimLoop, new_worker_id
from deckhand.engine.lifecycle import Lifecycle
from deckhand.engine.llm_credentials import LlmCredentials
from deckhand.engine.notify import Notifier
from deckhand.engine.runner import Runner
from deckhand.errors import ErrorCode
from deckhand.store import runs as runs_store
from deckhand.store.db import Database
from deckhand.store.runs import TERMINAL

__all__ = ["Worker", "new_worker_id"]


class Worker(ClaimLoop):
    kind = "run"
    claim_topic = "runs"
    cancel_topic = "cancel"

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
        brains: LlmCredentials | None = None,
        artifacts: ArtifactStore | None = None,
    ) -> None:
        super().__init__(db, notifier, runs_store.QUEUE, slots=slots,
                         lease_seconds=lease_seconds, poll_seconds=poll_seconds,
                         worker_id=worker_id)
        self.lifecycle = lifecycle
        self.runner = Runner(db, lifecycle, connect_machine, self.id, brains=brains,
                             artifacts=artifacts)

    async def drive(self, item_id: str, cancel_requested: Callable[[], bool]) -> None:
        await self.runner.drive(item_id, cancel_requested)

    async def crashed(self, item_id: str) -> None:
        """A bug in the runner: the run fails rather than being retried into
        the same bug by every worker."""
        with contextlib.suppress(Exception):
            async with self.db.write() as conn:
                run = await runs_store.get(conn, item_id)
                if run is not None and run.status not in TERMINAL:
                    await self.lifecycle.finish(conn, run, "failed", error={
                        "code": ErrorCode.INTERNAL_ERROR.value,
                        "message": "The run hit an internal error; see the server log.",
                    })

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
                  and run.awaiting_human_timeout_seconds is not None
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
