"""The scheduler: firing lag, firings per second and idle cost.

    .venv/bin/python bench/scheduler.py [--schedules 10000] [--seconds 60]

10,000 enabled schedules (rows written straight into the store) on SQLite
(one scheduler process) and on PostgreSQL (two scheduler processes, as two
``deckhand worker`` would run them). Each scheduler process runs
engine/scheduler.py's loop exactly as ``serve`` and ``worker`` do, without
run workers, so the runs it creates stay queued and the measurement is the
scheduler's alone:

- steady lag: every schedule recurs at its own second and minute slot,
  once every 10 minutes (~17 firings due each second), then once a minute
  (~167 a second: the saturation test); lag = the run's ``created_at`` − the
  due time, over every firing due in ``--seconds``; goal p95 ≤ 1 s;
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
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import bindparam, event, func, insert, select, update

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench, tests.support

from bench.harness import Report, pct, postgres_server, sqlite_url  # noqa: E402
from deckhand import ids  # noqa: E402
from deckhand.core import cron  # noqa: E402
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
UTC_ZONE = cron.zone("UTC")


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


def pattern(i: int, every_minutes: int) -> str:
    """Schedule ``i``'s expression: once every ``every_minutes`` minutes, at
    its own second and minute slot, so the firings spread evenly."""
    if every_minutes == 1:
        return f"{i % 60} * * * * *"
    return f"{i % 60} {(i // 60) % every_minutes}-59/{every_minutes} * * * *"


async def set_steady(url: str, every_minutes: int) -> datetime:
    """Every schedule recurring every ``every_minutes`` minutes, due from a few
    seconds on; returns the start of the measured window."""
    db = Database(url)
    start = utcnow().replace(microsecond=0) + timedelta(seconds=15)  # processes up first
    async with db.write() as conn:
        sids = list((await conn.execute(select(schedules.c.id).order_by(schedules.c.id)))
                    .scalars())
        params = []
        for i, sid in enumerate(sids):
            expr = pattern(i, every_minutes)
            params.append({"p_id": sid, "p_cron": expr, "p_next": cron.next_after(
                cron.parse(expr), UTC_ZONE, start - timedelta(microseconds=1))})
        q = (update(schedules).where(schedules.c.id == bindparam("p_id"))
             .values(cron=bindparam("p_cron"), next_run_at=bindparam("p_next")))
        await conn.execute(q, params)
    await db.dispose()
    return start


async def set_burst(url: str) -> datetime:
    """Every schedule due at one instant, two seconds from now."""
    db = Database(url)
    start = utcnow().replace(microsecond=0) + timedelta(seconds=2)
    async with db.write() as conn:
        await conn.execute(update(schedules).values(next_run_at=start))
    await db.dispose()
    return start


def due_before(expr: str, at: datetime) -> datetime:
    """The last due time of ``expr`` at or before ``at`` (UTC)."""
    c = cron.parse(expr)
    t = cron.next_after(c, UTC_ZONE, at - timedelta(hours=1))
    assert t is not None
    last = t
    while t is not None and t <= at:
        last, t = t, cron.next_after(c, UTC_ZONE, t)
    return last


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
        due = due_before(expr, created)
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

    for every in (10, 1):
        start = await set_steady(url, every)
        async with schedulers(url, procs, tmp):
            await asyncio.sleep(max(0.0, (start - utcnow()).total_seconds()) + seconds + 3)
        got = await lags(url, start, start + timedelta(seconds=seconds))
        rate = count / (every * 60)
        label = f"lag, {count} schedules each every {every} min ({rate:.0f} due/s)"
        report.add(f"{label} p50", backend, f"{pct(got, 50):.3f} s")
        report.add(f"{label} p95", backend, f"{pct(got, 95):.3f} s", f"<= {LAG_GOAL_S:g} s",
                   pct(got, 95) <= LAG_GOAL_S)
        await _park(url)

    before = await fired_count(url)
    burst_at = await set_burst(url)
    async with schedulers(url, procs, tmp):
        await asyncio.sleep(max(0.0, (burst_at - utcnow()).total_seconds()))
        t0 = time.monotonic()
        while await fired_count(url) - before < count and time.monotonic() - t0 < 300:
            await asyncio.sleep(0.2)
        took = time.monotonic() - t0
    done = await fired_count(url) - before
    report.add(f"burst: {count} due at once ({procs} proc)", backend,
               f"{done / took:.0f} firings/s")


async def _park(url: str) -> None:
    """Nothing due for an hour (the next phase sets its own due times)."""
    db = Database(url)
    async with db.write() as conn:
        await conn.execute(update(schedules).values(next_run_at=utcnow() + timedelta(hours=1)))
    await db.dispose()


@contextlib.asynccontextmanager
async def schedulers(url: str, n: int, tmp: Path) -> AsyncIterator[None]:
    children = await spawn_schedulers(url, n, tmp)
    try:
        yield
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
