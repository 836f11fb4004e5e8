"""What the end of a schedule's run changes, in the transaction that records
the end (called by :meth:`Lifecycle.finish`): the schedule's failure streak
(and its auto-pause) and the chain triggers the ending fires, queued as
pending firings the scheduler makes (each exactly once, like a due schedule)."""

from __future__ import annotations

import logging

from sqlalchemy.ext.asyncio import AsyncConnection

from deckhand import ids
from deckhand.core.clock import utcnow
from deckhand.engine.notify import Notifier
from deckhand.store import schedules as schedules_store
from deckhand.store import triggers as triggers_store
from deckhand.store.records import Run
from deckhand.store.schedules import MAX_CHAIN_DEPTH

log = logging.getLogger("deckhand.scheduler")


async def run_ended(conn: AsyncConnection, notifier: Notifier, run: Run) -> None:
    firing = await schedules_store.firing_of_run(conn, run.id)
    if firing is None:
        return
    await schedules_store.run_ended(conn, firing, run.status)
    chains = await triggers_store.chains_from(conn, firing.schedule_id, run.status)
    if not chains:
        return
    if firing.depth + 1 > MAX_CHAIN_DEPTH:
        log.warning("schedule %s: chain depth %d reached; its chain triggers do not fire",
                    firing.schedule_id, MAX_CHAIN_DEPTH)
        return
    now = utcnow()
    for t in chains:
        context: dict[str, object] = {
            "source_schedule_id": firing.schedule_id, "source_run_id": run.id,
            "source_status": run.status, "event": t.event}
        if t.pass_output:
            context["output"] = run.result
        await schedules_store.insert_firing(conn, {
            "id": ids.new_uuid(), "schedule_id": t.schedule_id, "account_id": t.account_id,
            "mode": t.mode, "run_id": None, "status": "pending", "trigger": "triggered",
            "error": None, "context": context, "depth": firing.depth + 1, "executed_at": now})
    await notifier.emit(conn, "schedules", "*")
