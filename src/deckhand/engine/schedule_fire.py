"""One firing of a schedule: its run (through the run submitter, in the
caller's transaction) and its record, or the record of why there is no run.

Whoever fires (the scheduler's claim, POST /v1/schedules/{id}/run, a
webhook, a chain) calls :meth:`Firer.fire` inside the write transaction that
also claims or advances the schedule, so the firing, its run and the
schedule's counters commit together or not at all.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from deckhand import ids
from deckhand.brains.resolve import LlmRequest
from deckhand.engine.notify import Notifier
from deckhand.engine.submit import RunSpec, RunSubmitter
from deckhand.errors import DeckhandError, ErrorCode, InsufficientCredits, NotFound
from deckhand.store import schedules as schedules_store
from deckhand.store.records import JSONObject, Schedule, ScheduleRun

CONTEXT_HEADING = "Triggered context (JSON) for this scheduled run:"


@dataclass(frozen=True)
class Fired:
    firing: ScheduleRun
    schedule: Schedule  # with its counters after the firing


def context_text(context: JSONObject | None) -> str | None:
    """What a run is told of its triggered context (its ``instructions``,
    appended to the agent's prompt)."""
    if context is None:
        return None
    return f"{CONTEXT_HEADING}\n{json.dumps(context, sort_keys=True, default=str)}"


class Firer:
    def __init__(self, submitter: RunSubmitter, notifier: Notifier) -> None:
        self.submitter = submitter
        self.notifier = notifier

    async def fire(self, conn: AsyncConnection, s: Schedule, *, trigger: str, at: datetime,
                   context: JSONObject | None = None, task_override: str | None = None,
                   depth: int = 0, pending_id: str | None = None,
                   advance: dict[str, object] | None = None) -> Fired:
        """Fire ``s`` now; with ``pending_id``, make that pending chain firing.
        ``advance``: columns of the schedule to set with its counters (the
        scheduler's next due time)."""
        firing_id = pending_id or ids.new_uuid()
        llm = None
        if s.llm:
            llm = LlmRequest(provider=s.llm["provider"], model=s.llm.get("model"),
                             grounding_model=s.llm.get("grounding_model"))
        spec = RunSpec(machine_id=s.machine_id, task=task_override or s.task_prompt,
                       instructions=context_text(context), llm=llm,
                       metadata={"schedule_id": s.id, "schedule_run_id": firing_id,
                                 "trigger": trigger})
        status, run_id, error = "queued", None, None
        try:
            # No savepoint needed: the submitter makes every check (machine,
            # credits, key) before its first write, and a database error
            # aborts the whole transaction anyway.
            done = await self.submitter.submit(conn, account_id=s.account_id, mode=s.mode,
                                               spec=spec)
            run_id = done.run.id
        except DeckhandError as exc:
            error = f"{exc.code.value}: {exc.message}"
            if isinstance(exc, NotFound) or exc.code is ErrorCode.MACHINE_UNAVAILABLE:
                status = "skipped"
            elif isinstance(exc, InsufficientCredits):
                status = "insufficient_credits"
            else:
                status = "failed"
        values: dict[str, object] = {"status": status, "run_id": run_id, "error": error,
                                  "executed_at": at}
        if pending_id is not None:
            await schedules_store.settle_firing(conn, pending_id, **values)
        else:
            await schedules_store.insert_firing(conn, {
                "id": firing_id, "schedule_id": s.id, "account_id": s.account_id,
                "mode": s.mode, "trigger": trigger, "depth": depth, "context": None, **values})
        fresh = await schedules_store.count_firing(conn, s, at=at, started_run=run_id is not None,
                                                   failed=run_id is None, **(advance or {}))
        record = ScheduleRun(id=firing_id, schedule_id=s.id, account_id=s.account_id,
                             mode=s.mode, run_id=run_id, status=status, trigger=trigger,
                             error=error, context=None, depth=depth, executed_at=at)
        return Fired(firing=record, schedule=fresh)
