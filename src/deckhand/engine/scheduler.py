"""The scheduler: fires every due schedule exactly once, across any number
of ``deckhand serve`` / ``deckhand worker`` processes.

Each pass claims due schedules (and pending chain firings) in one write
transaction — ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, the single writer of
SQLite's ``BEGIN IMMEDIATE`` — fires each (its run and its record, see
:mod:`deckhand.engine.schedule_fire`) and moves its ``next_run_at`` on, and
commits all of it at once. A process killed mid-pass leaves nothing: the
rows were never committed, so the next claimer fires them. Nothing is
leased, so nothing waits for a lease to run out.

Catch-up (docs/schedules.md): a schedule found due later than
``misfire_grace`` (the scheduler was down) fires once — with ``catch_up``
``"none"``, it records a ``skipped`` firing instead — and its next due time
is the first after *now*, so a long outage never replays a storm.

Idle, a pass is one statement: the earliest due time and whether a chain
firing waits. The loop then sleeps until that time (at most
``max_sleep``), woken early by a ``schedules`` notification (a schedule
created, changed or resumed; a chain firing queued).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from deckhand import ids
from deckhand.core import cron
from deckhand.core.clock import utcnow
from deckhand.engine.notify import Notifier
from deckhand.engine.schedule_fire import Firer
from deckhand.store import schedules as schedules_store
from deckhand.store.db import Database
from deckhand.store.records import Schedule, ScheduleRun

log = logging.getLogger("deckhand.scheduler")
BUSY_RETRY_SECONDS = 0.2  # due rows another process holds: look again soon


def next_due(s: Schedule, after: datetime) -> datetime | None:
    """A recurring schedule's first due time after ``after``."""
    return due_after(s.cron, s.timezone, after)


def due_after(expression: str, timezone: str, after: datetime) -> datetime | None:
    """The first due time of ``expression`` in ``timezone`` after ``after``
    (None for a one-shot's empty expression)."""
    if not expression:
        return None
    return cron.next_after(cron.parse(expression), cron.zone(timezone), after)


class Scheduler:
    def __init__(self, db: Database, notifier: Notifier, firer: Firer, *, batch: int = 100,
                 max_sleep: float = 10.0, misfire_grace: float = 60.0, catch_up: str = "one",
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.db = db
        self.notifier = notifier
        self.firer = firer
        self.batch = batch
        self.max_sleep = max_sleep
        self.misfire_grace = misfire_grace
        self.catch_up = catch_up
        self.clock = clock
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="scheduler")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        with self.notifier.subscribe("schedules") as waiter:
            while True:
                try:
                    delay = await self.tick()
                except Exception:
                    log.exception("scheduler pass failed; retrying")
                    delay = 1.0
                if delay > 0:
                    await waiter.wait(delay)

    async def tick(self) -> float:
        """One pass; how long to sleep before the next."""
        async with self.db.read() as conn:
            due, pending = await schedules_store.next_work(conn)
        now = self.clock()
        if not pending and (due is None or due > now):
            if due is None:
                return self.max_sleep
            return min(self.max_sleep, (due - now).total_seconds())
        fired = await self.fire_due(now)
        if fired == 0:
            return BUSY_RETRY_SECONDS
        return 0.0

    async def fire_due(self, now: datetime) -> int:
        """Claim, fire and advance what is due at ``now``; how many fired."""
        async with self.db.write() as conn:
            due = await schedules_store.claim_due(conn, now, self.batch)
            for s in due:
                await self._fire_scheduled(conn, s, now)
            pending = await schedules_store.claim_pending(conn, self.batch)
            for p in pending:
                await self._fire_pending(conn, p, now)
        return len(due) + len(pending)

    async def _fire_scheduled(self, conn: AsyncConnection, s: Schedule, now: datetime) -> None:
        assert s.next_run_at is not None
        late = (now - s.next_run_at).total_seconds()
        trigger = "run_at" if s.run_at is not None else "cron"
        # a one-shot fires once; a recurring schedule's next due time is the first after now
        advance: dict[str, object] = ({"enabled": False, "next_run_at": None}
                                      if s.run_at is not None
                                      else {"next_run_at": next_due(s, now)})
        if late > self.misfire_grace and self.catch_up == "none":
            await schedules_store.insert_firing(conn, {
                "id": ids.new_uuid(), "schedule_id": s.id,
                "account_id": s.account_id, "mode": s.mode, "run_id": None,
                "status": "skipped", "trigger": trigger, "context": None, "depth": 0,
                "error": f"Missed: due at {s.next_run_at.isoformat()} while no scheduler "
                         "ran (catch-up policy 'none').", "executed_at": now})
            await schedules_store.update_schedule(conn, s.id, (), **advance)
        else:  # (an auto-pause in the same firing clears next_run_at again)
            await self.firer.fire(conn, s, trigger=trigger, at=now, advance=advance)

    async def _fire_pending(self, conn: AsyncConnection, p: ScheduleRun, now: datetime) -> None:
        s = await schedules_store.get(conn, p.schedule_id)
        if s is None:  # deleted meanwhile (its firings normally go with it)
            await schedules_store.settle_firing(conn, p.id, status="skipped", executed_at=now,
                                                error="The schedule was deleted.")
            return
        if not s.enabled:
            await schedules_store.settle_firing(
                conn, p.id, status="skipped", executed_at=now,
                error=f"Schedule {s.id} is paused; its chain trigger did not fire.")
            return
        await self.firer.fire(conn, s, trigger="triggered", at=now, context=p.context,
                              depth=p.depth, pending_id=p.id)
