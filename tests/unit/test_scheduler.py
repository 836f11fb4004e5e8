"""engine/scheduler.py on both databases with a controlled clock: the
catch-up policy after downtime, one-shots, and due firings claimed exactly
once by two schedulers (two engines, as two processes) at the same time."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from deckhand import ids
from deckhand.engine.notify import Notifier
from deckhand.engine.schedule_fire import Firer
from deckhand.engine.scheduler import Scheduler
from deckhand.engine.submit import RunSubmitter
from deckhand.store import schedules as schedules_store
from deckhand.store.db import Database
from deckhand.store.tables import runs, schedule_runs
from tests.support.engine import SECRET, account, lifecycle, machine

NOW = datetime(2026, 12, 7, 12, 0, 30, tzinfo=UTC)


def scheduler(db: Database, **kw: object) -> Scheduler:
    firer = Firer(RunSubmitter(lifecycle(db), SECRET, 100), Notifier(db))
    return Scheduler(db, Notifier(db), firer, clock=lambda: NOW, **kw)  # type: ignore[arg-type]


async def schedule(db: Database, account_id: str, machine_id: str, *, due: datetime,
                   expr: str = "* * * * *", run_at: datetime | None = None) -> str:
    sid = ids.new_uuid()
    async with db.write() as conn:
        await schedules_store.insert(conn, {
            "id": sid, "account_id": account_id, "mode": "live", "name": "s",
            "machine_id": machine_id, "task_prompt": "Run `echo hi`",
            "frequency": "once" if run_at else "custom", "cron": "" if run_at else expr,
            "timezone": "UTC", "run_at": run_at, "enabled": True, "next_run_at": due,
            "max_consecutive_failures": 5, "created_at": NOW, "updated_at": NOW})
    return sid


async def firings(db: Database, sid: str) -> list[tuple[str, str | None, str | None]]:
    async with db.read() as conn:
        rows = await conn.execute(select(schedule_runs.c.status, schedule_runs.c.run_id,
                                         schedule_runs.c.error)
                                  .where(schedule_runs.c.schedule_id == sid))
        return [(str(s), r, e) for s, r, e in rows]


async def test_after_downtime_one_catch_up_then_the_next_due_time(each_db: Database) -> None:
    acct = await account(each_db)
    mid = await machine(each_db, acct)
    sid = await schedule(each_db, acct, mid, due=NOW - timedelta(hours=5))
    s = scheduler(each_db)
    assert await s.tick() == 0.0  # fired; look again at once
    [(status, run_id, _)] = await firings(each_db, sid)
    assert status == "queued" and run_id
    async with each_db.read() as conn:
        after = await schedules_store.get(conn, sid)
    assert after is not None and after.next_run_at == datetime(2026, 12, 7, 12, 1, tzinfo=UTC)
    assert after.run_count == 1 and after.last_run_at == NOW
    # nothing more is due: it sleeps until the next minute
    assert await scheduler(each_db, max_sleep=60.0).tick() == 30.0
    assert await s.tick() == 10.0  # (at most max_sleep)
    assert len(await firings(each_db, sid)) == 1


async def test_catch_up_none_records_the_missed_firing(each_db: Database) -> None:
    acct = await account(each_db)
    mid = await machine(each_db, acct)
    late = await schedule(each_db, acct, mid, due=NOW - timedelta(hours=1))
    on_time = await schedule(each_db, acct, mid, due=NOW - timedelta(seconds=1))
    assert await scheduler(each_db, catch_up="none").fire_due(NOW) == 2
    [(status, run_id, error)] = await firings(each_db, late)
    assert status == "skipped" and run_id is None and error and "Missed" in error
    assert (await firings(each_db, on_time))[0][0] == "queued"


async def test_a_one_shot_fires_once(each_db: Database) -> None:
    acct = await account(each_db)
    mid = await machine(each_db, acct)
    sid = await schedule(each_db, acct, mid, due=NOW, run_at=NOW)
    s = scheduler(each_db)
    assert await s.fire_due(NOW) == 1
    assert await s.fire_due(NOW + timedelta(days=1)) == 0
    async with each_db.read() as conn:
        done = await schedules_store.get(conn, sid)
    assert done is not None and not done.enabled and done.next_run_at is None
    assert [f[0] for f in await firings(each_db, sid)] == ["queued"]


async def test_two_schedulers_fire_each_due_schedule_exactly_once(each_db: Database) -> None:
    acct = await account(each_db)
    mid = await machine(each_db, acct)
    sids = [await schedule(each_db, acct, mid, due=NOW - timedelta(seconds=n % 7))
            for n in range(60)]
    other = Database(each_db.url)  # a second engine: another process's connections
    try:
        a, b = scheduler(each_db, batch=7), scheduler(other, batch=7)

        async def drain(s: Scheduler) -> int:
            total = 0
            while n := await s.fire_due(NOW):
                total += n
            return total

        got = await asyncio.gather(drain(a), drain(b), drain(a), drain(b))
    finally:
        await other.dispose()
    assert sum(got) == 60
    async with each_db.read() as conn:
        per = dict((await conn.execute(
            select(schedule_runs.c.schedule_id, func.count())
            .group_by(schedule_runs.c.schedule_id))).all())
        run_count = (await conn.execute(select(func.count()).select_from(runs))).scalar_one()
    assert per == {sid: 1 for sid in sids} and run_count == 60
