"""A run's state changes. Each one, in the caller's write transaction, updates
the row, appends its events, queues its webhook and emits its wake-ups, so
that the change and everything describing it commit together (durability
rules 6 and 7)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection

from deckhand.core.clock import utcnow
from deckhand.engine import schedule_ends
from deckhand.engine.notify import Notifier
from deckhand.errors import ErrorCode, InvalidState
from deckhand.store import events as events_store
from deckhand.store import llm_keys as llm_keys_store
from deckhand.store import runs as runs_store
from deckhand.store import webhooks as webhooks_store
from deckhand.store.records import Run
from deckhand.store.runs import TERMINAL
from deckhand.views import run_view

WEBHOOK_EVENTS = frozenset({"awaiting_human", "succeeded", "failed", "cancelled", "timed_out"})


class LeaseLost(Exception):
    """This worker no longer owns the run (another took it over)."""


class Lifecycle:
    def __init__(self, notifier: Notifier) -> None:
        self.notifier = notifier

    async def _change(
        self,
        conn: AsyncConnection,
        run: Run,
        *,
        owner: str | None,
        events: list[tuple[str, dict[str, Any]]],
        **values: Any,
    ) -> Run:
        # One statement reserves the events' seqs, applies the change and reads
        # the row back; with an owner it doubles as the check that we still
        # hold the lease.
        fresh = await runs_store.advance(conn, run.id, owner=owner, seqs=len(events), **values)
        if fresh is None:
            raise LeaseLost(run.id)
        await events_store.write(conn, run.id, fresh.last_seq - len(events) + 1, events)
        await self.notifier.emit(conn, "events", run.id)
        return fresh

    async def record_events(self, conn: AsyncConnection, run: Run,
                            events: list[tuple[str, dict[str, Any]]],
                            owner: str | None = None, **values: Any) -> Run:
        """Events (and counters) that change no status, e.g. a step's."""
        return await self._change(conn, run, owner=owner, events=events, **values)

    async def start(self, conn: AsyncConnection, run: Run, owner: str) -> Run:
        values: dict[str, Any] = {"status": "running"}
        if run.started_at is None:
            values["started_at"] = utcnow()
        return await self._change(
            conn, run, owner=owner, events=[("status", {"status": "running",
                                                        "previous": run.status})],
            **values,
        )

    async def finish(
        self,
        conn: AsyncConnection,
        run: Run,
        status: str,
        *,
        owner: str | None = None,
        result: dict[str, Any] | None = None,
        error: dict[str, Any] | None = None,
        extra_events: list[tuple[str, dict[str, Any]]] = (),  # type: ignore[assignment]
        **values: Any,
    ) -> Run:
        assert status in TERMINAL
        scrubbed = await llm_keys_store.scrub(conn, run)  # a BYOK key dies with its run
        if scrubbed is not None:
            values["llm"] = scrubbed
        events = list(extra_events)
        if error is not None:
            events.append(("error", error))
        events += [
            ("status", {"status": status, "previous": run.status}),
            ("done", {"status": status, "result": result, "error": error}),
        ]
        fresh = await self._change(
            conn, run, owner=owner, events=events, status=status, result=result, error=error,
            finished_at=utcnow(), claimed_by=None, lease_expires_at=None, **values,
        )
        await self._webhook(conn, fresh, status)
        await schedule_ends.run_ended(conn, self.notifier, fresh)  # a schedule's run
        if fresh.workflow_run_id:  # a workflow's task run: frees a slot of its account
            await self.notifier.emit(conn, "workflow_child", fresh.account_id)
        return fresh

    async def await_human(self, conn: AsyncConnection, run: Run, reason: str,
                          owner: str) -> Run:
        fresh = await self._change(
            conn, run, owner=owner,
            events=[("awaiting_human", {"reason": reason}),
                    ("status", {"status": "awaiting_human", "previous": run.status})],
            status="awaiting_human", awaiting_human_reason=reason,
            awaiting_human_since=utcnow(), claimed_by=None, lease_expires_at=None,
        )
        await self._webhook(conn, fresh, "awaiting_human")
        return fresh

    async def resume(self, conn: AsyncConnection, run: Run, note: str | None) -> Run:
        if run.status != "awaiting_human":
            raise InvalidState(
                f"Run {run.id} is {run.status}; only a run in awaiting_human can be resumed."
            )
        fresh = await self._change(
            conn, run, owner=None,
            events=[("resumed", {"note": note}),
                    ("status", {"status": "queued", "previous": run.status})],
            status="queued", awaiting_human_since=None,
        )
        await self.notifier.emit(conn, "runs", "*")
        return fresh

    async def request_cancel(self, conn: AsyncConnection, run: Run) -> Run:
        """Cancel now if nobody drives the run; else flag it and wake its worker."""
        if run.status in TERMINAL:
            raise InvalidState(f"Run {run.id} already ended ({run.status}); it cannot be cancelled.")
        owned = (
            run.status == "running" and run.claimed_by is not None
            and run.lease_expires_at is not None and run.lease_expires_at > utcnow()
        )
        if not owned:
            return await self.finish(conn, run, "cancelled",
                                     error={"code": ErrorCode.CANCELLED.value, "message": "Cancelled by request."})
        await runs_store.update_run(conn, run.id, cancel_requested=True)
        await self.notifier.emit(conn, "cancel", run.id)
        fresh = await runs_store.get(conn, run.id)
        assert fresh is not None
        return fresh

    async def _webhook(self, conn: AsyncConnection, run: Run, status: str) -> None:
        await queue_webhook(conn, self.notifier, run, status, kind="run", view=run_view)


class WebhookSource(Protocol):
    """What announcing a state change needs of a run or a workflow run."""

    @property
    def id(self) -> str: ...
    @property
    def account_id(self) -> str: ...
    @property
    def webhook_url(self) -> str | None: ...
    @property
    def webhook_secret_sealed(self) -> str | None: ...


Source = TypeVar("Source", bound=WebhookSource)


async def queue_webhook(conn: AsyncConnection, notifier: Notifier, run: Source, status: str,
                        *, kind: str, view: Callable[[Source], dict[str, object]]) -> None:
    """Queue the ``{kind}.{status}`` webhook of a state change in its
    transaction (the outbox) and wake the dispatchers — when the item has a
    webhook and the status is one clients are told of. Runs and workflow runs
    (engine/workflow_lifecycle.py) announce their changes alike; only the
    event's prefix and the view in its payload differ."""
    if not run.webhook_url or not run.webhook_secret_sealed or status not in WEBHOOK_EVENTS:
        return
    await webhooks_store.enqueue(
        conn, account_id=run.account_id, run_id=run.id, url=run.webhook_url,
        event_type=f"{kind}.{status}", payload={kind: view(run)},
        secret_sealed=run.webhook_secret_sealed,
    )
    await notifier.emit(conn, "webhooks", "*")
