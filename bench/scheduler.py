"""The scheduler: firing lag, firings per second and idle cost.

    .venv/bin/python bench/scheduler.py [--schedules 10000] [--seconds 60]

10,000 enabled schedules (rows written straight into the store) on SQLite
(one scheduler process) and on PostgreSQL (two scheduler processes, as two
``deckhand worker`` would run them). Each scheduler process runs
engine/scheduler.py's loop exactly as ``serve`` and ``worker`` do, without
run workers, so the runs it creates stay queued and the measurement is the
scheduler's alone:

- steady lag: every schedule fires once a minute at its own second
  (``S * * * * *``, S = i mod 60, so ~167 firings are due each second);
  lag = the run's ``created_at`` − the due time, over every firing of
  ``--seconds``; goal p95 ≤ 1 s;
- burst: every schedule due at the same instant: firings per second until
  all 10,000 have their run;
- idle: nothing due for minutes (10,000 schedules due later); the SQL
  statements a scheduler issues per second, counted on its engine; goal
  ≤ 1 per second per process.

Not a test: tests/unit/test_scheduler.py and tests/e2e/test_scheduler_crash.py
hold the behaviour.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import event, func, insert, select, update

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench, tests.support

from bench.harness import Report, pct, postgres_server, sqlite_url  # noqa: E402
from deckhand import ids  # noqa: E402
from deckhand.core.clock import utcnow  # noqa: E402
from deckhand.engine.lifecycle import Lifecycle  # noqa: E402
from deckhand.engine.notify import Notifier  # noqa: E402
from deckhand.engine.schedule_fire import Firer  # noqa: E402
from deckhand.engine.scheduler import Scheduler  # noqa: E402
from deckhand.engine.submit import RunSubmitter  # noqa: E402
from deckhand.store import accounts as accounts_store  # noqa: E402
from deckhand.store import machines as machines_store  # noqa: E402
from deckhand.store.db import Database  # noqa: E402
from deckhand.store.tables import runs, schedule_runs, schedules  # noqa: E402

SECRET = b"bench-scheduler-secret"
LAG_GOAL_S = 1.0
IDLE_GOAL_QPS = 1.0


def scheduler_for(db: Database, notifier: Notifier) -> Scheduler:
    firer = Firer(RunSubmitter(Lifecycle(notifier), SECRET, 1000), notifier)
    return Scheduler(db, notifier, firer, batch=100, max_sleep=10.0)


async def scheduler_process(url: str) -> None:
    """``--scheduler-process``: one scheduler loop until SIGTERM."""
    db = Database(url)
    notifier = Notifier(db)
    await notifier.start()
    s = scheduler_for(db, notifier)
    s.start()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await s.stop()
    await notifier.stop()
    await db.dispose()


async def seed(url: str, count: int) -> None:
    """An account, a running machine row and ``count`` schedules, all due
    much later (the idle state)."""
    db = Database(url)
    await db.migrate()
    now = utcnow()
    later = now + timedelta(hours=1)
    async with db.write() as conn:
        acct = await accounts_store.create(conn, "bench", None)
        mid = ids.new_uuid()
        await machines_store.insert(conn, {
            "id": mid, "account_id": acct.id, "mode": "live", "display_name": "m",
            "status": "running", "metadata": {}, "provider": "local", "created_at": now,
            "kind": "terminal", "last_active_at": now})
        rows = [{"id": ids.new_uuid(), "account_id": acct.id, "mode": "live", "name": f"s{i}",
                 "machine_id": mid, "task_prompt": "Run `echo hi`", "frequency": "custom",
                 "cron": f"{i % 60} * * * * *", "timezone": "UTC", "enabled": True,
                 "next_run_at": later, "max_consecutive_failures": 50, "created_at": now,
                 "updated_at": now} for i in range(count)]
        for start in range(0, count, 1000):
            await conn.execute(insert(schedules), rows[start:start + 1000])
    await db.dispose()


async def set_due(url: str, when: str) -> datetime:
    """``burst``: everything due now; ``steady``: each at its next second
    S of a minute (from two seconds on); returns the start."""
    db = Database(url)
    start = utcnow().replace(microsecond=0) + timedelta(seconds=2 if when == "burst" else 6)
    async with db.write() as conn:
        if when == "burst":
            await conn.execute(update(schedules).values(next_run_at=start))
        else:
            ids_crons = (await conn.execute(select(schedules.c.id, schedules.c.cron))).all()
            by_second: dict[int, list[str]] = {}
            for sid, expr in ids_crons:
                by_second.setdefault(int(expr.split()[0]), []).append(sid)
            for sec, sids in by_second.items():
                due = start + timedelta(seconds=(sec - start.second) % 60)
                await conn.execute(update(schedules).where(schedules.c.id.in_(sids))
                                   .values(next_run_at=due))
    await db.dispose()
    return start


async def lags(url: str, since: datetime, until: datetime) -> list[float]:
    """Run created_at − due time of the firings due in [since, until)."""
    db = Database(url)
    async with db.read() as conn:
        rows = (await conn.execute(
            select(runs.c.created_at, schedules.c.cron)
            .select_from(schedule_runs.join(runs, runs.c.id == schedule_runs.c.run_id)
                         .join(schedules, schedules.c.id == schedule_runs.c.schedule_id))
            .where(schedule_runs.c.executed_at >= since))).all()
    await db.dispose()
    out = []
    for created, expr in rows:
        sec = int(expr.split()[0])
        due = created.replace(second=sec, microsecond=0)
        if due > created:
            due -= timedelta(minutes=1)
        if since <= due < until:
            out.append((created - due).total_seconds())
    return out


async def fired_count(url: str) -> int:
    db = Database(url)
    async with db.read() as conn:
        n = (await conn.execute(select(func.count()).select_from(schedule_runs))).scalar_one()
    await db.dispose()
    return int(n)


async def spawn_schedulers(url: str, n: int, tmp: Path) -> list[asyncio.subprocess.Process]:
    out = []
    for i in range(n):
        with open(tmp / f"sched-{i}.log", "wb") as log:
            out.append(await asyncio.create_subprocess_exec(
                sys.executable, __file__, "--scheduler-process", url, stdout=log,
                stderr=asyncio.subprocess.STDOUT))
    return out


async def measure(report: Report, backend: str, url: str, tmp: Path, *, count: int,
                  procs: int, seconds: float) -> None:
    await seed(url, count)
    # idle: counted on an in-process scheduler's own engine
    db = Database(url)
    statements = 0

    def count_statement(*_: object) -> None:
        nonlocal statements
        statements += 1

    event.listen(db.engine.sync_engine, "before_cursor_execute", count_statement)
    notifier = Notifier(db)
    await notifier.start()
    idle = scheduler_for(db, notifier)
    idle.start()
    await asyncio.sleep(1.0)
    statements, t0 = 0, time.monotonic()
    await asyncio.sleep(30.0)
    qps = statements / (time.monotonic() - t0)
    await idle.stop()
    await notifier.stop()
    await db.dispose()
    report.add("idle statements/s per scheduler", backend, f"{qps:.2f}",
               f"<= {IDLE_GOAL_QPS:g}", qps <= IDLE_GOAL_QPS)

    # due times first (from a few seconds on), then the processes: they start,
    # read the earliest due time and sleep until it
    start = await set_due(url, "steady")
    children = await spawn_schedulers(url, procs, tmp)
    try:
        await asyncio.sleep(max(0.0, (start - utcnow()).total_seconds()) + seconds + 3)
        got = await lags(url, start, start + timedelta(seconds=seconds))
        report.add(f"steady lag p50 ({count} schedules, {procs} proc)", backend,
                   f"{pct(got, 50):.3f} s")
        report.add(f"steady lag p95 ({len(got)} firings)", backend, f"{pct(got, 95):.3f} s",
                   f"<= {LAG_GOAL_S:g} s", pct(got, 95) <= LAG_GOAL_S)
        before = await fired_count(url)
        burst_at = await set_due(url, "burst")
        wait = max(0.0, (burst_at - utcnow()).total_seconds())
        await asyncio.sleep(wait)
        t0 = time.monotonic()
        while await fired_count(url) - before < count and time.monotonic() - t0 < 300:
            await asyncio.sleep(0.2)
        took = time.monotonic() - t0
        done = await fired_count(url) - before
        report.add(f"burst: {count} due at once", backend, f"{done / took:.0f} firings/s")
    finally:
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                child.send_signal(signal.SIGTERM)
        for child in children:
            await child.wait()


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--schedules", type=int, default=10_000)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--only", choices=["sqlite", "postgres"])
    args = ap.parse_args()
    report = Report()
    with tempfile.TemporaryDirectory(prefix="deckhand-bench-sched-") as d:
        tmp = Path(d)
        if args.only in (None, "sqlite"):
            await measure(report, "sqlite", sqlite_url(tmp / "sqlite"), tmp,
                          count=args.schedules, procs=1, seconds=args.seconds)
        if args.only in (None, "postgres"):
            with postgres_server() as pg:
                await measure(report, "postgres", await pg.new_database(), tmp,
                              count=args.schedules, procs=2, seconds=args.seconds)
    print(report.table())


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--scheduler-process":
        asyncio.run(scheduler_process(sys.argv[2]))
    else:
        asyncio.run(main())
