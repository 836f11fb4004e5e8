"""Recovery after a crash: from restarting a killed server to its run's next step.

    .venv/bin/python bench/recovery.py [--rounds N]

A real ``deckhand serve`` (in-process workers, a real local machine, the
scripted brain) drives a run of short terminal steps; once two steps are
recorded the server is killed with SIGKILL and started again on the same data
dir and database. The server keeps its worker identity in the data dir
(engine/identity.py), so it resumes the run it left at once instead of
waiting out the run's lease (30 s here). Measured per round, on the host's
clock against the server's own event timestamps:

- healthy -> next step (the goal, 2 s): from the new server answering
  /v1/health to the run's next ``step`` event; negative when the step came
  first (the claim loop starts before the HTTP server answers);
- spawned -> next step: from spawning the new process to that event (Python
  start, imports, the migrations check, the claim, the step itself).

SQLite and PostgreSQL (scripts/pg-test-server). Not a test:
``tests/e2e/test_instant_recovery.py`` holds the behaviour.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from sqlalchemy import select

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench, tests.support

from bench.harness import Cluster, Report, cluster, pct, postgres_server, sqlite_url  # noqa: E402
from deckhand.client import DeckhandClient  # noqa: E402
from deckhand.store.db import Database  # noqa: E402
from deckhand.store.tables import run_events  # noqa: E402
from tests.support.crash import step_script  # noqa: E402

T = TypeVar("T")
LEASE_SECONDS = 30
GOAL_S = 2.0


async def _events_after(url: str, run_id: str, seq: int) -> list[tuple[int, str, datetime]]:
    db = Database(url)
    try:
        async with db.read() as conn:
            rows = (await conn.execute(
                select(run_events.c.seq, run_events.c.type, run_events.c.created_at)
                .where(run_events.c.run_id == run_id, run_events.c.seq > seq)
                .order_by(run_events.c.seq))).all()
    finally:
        await db.dispose()
    return [(r.seq, r.type, _utc(r.created_at)) for r in rows]


def _utc(at: datetime) -> datetime:
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)  # SQLite keeps naive UTC


async def _until(what: str, check: Callable[[], Awaitable[T | None]], timeout: float) -> T:
    deadline = time.monotonic() + timeout
    while True:
        found = await check()
        if found is not None:
            return found
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def _round(c: Cluster, key: str, base: str) -> tuple[str, float, float]:
    """One crash and restart: (the new base URL, spawned -> step s, healthy -> step s)."""
    async with DeckhandClient(base, key, timeout=30) as client:
        machine = await client.create_machine("bench-recovery")
        run = await client.create_run(machine_id=machine["id"], task=step_script(6, 0.2),
                                      model="scripted")
        run_id = run["id"]

        async def two_steps() -> bool | None:
            return (await client.get_run(run_id))["steps_completed"] >= 2 or None

        await _until("two steps", two_steps, 30)
    server = c.procs[-1]
    server.popen.kill()
    server.popen.wait()
    seq = max((s for s, _, _ in await _events_after(c.url, run_id, 0)), default=0)

    spawned = datetime.now(UTC)
    base = await c.serve()
    healthy = datetime.now(UTC)

    async def next_step() -> datetime | None:
        after = [at for _, kind, at in await _events_after(c.url, run_id, seq) if kind == "step"]
        return after[0] if after else None

    stepped = await _until("the next step", next_step, LEASE_SECONDS)
    async with DeckhandClient(base, key, timeout=30) as client:
        async def ended() -> bool | None:
            return (await client.get_run(run_id))["status"] in ("succeeded", "failed") or None

        await _until("the run to end", ended, 30)
        await client.delete_machine(machine["id"])
    return base, (stepped - spawned).total_seconds(), (stepped - healthy).total_seconds()


async def measure(report: Report, backend: str, url: str, tmp: Path, rounds: int) -> None:
    restart: list[float] = []
    healthy: list[float] = []
    async with cluster(tmp, url, DECKHAND_LEASE_SECONDS=str(LEASE_SECONDS)) as c:
        key = c.key()
        base = await c.serve()
        for _ in range(rounds):
            base, r, h = await _round(c, key, base)
            restart.append(r)
            healthy.append(h)
    p50, p95 = pct(healthy, 50), pct(healthy, 95)
    report.add("healthy after restart -> next step, p50", backend, f"{p50:.2f} s",
               f"<= {GOAL_S:.0f} s", p50 <= GOAL_S)
    report.add("healthy after restart -> next step, p95", backend, f"{p95:.2f} s",
               f"<= {GOAL_S:.0f} s", p95 <= GOAL_S)
    report.add("  process spawned -> next step, p50", backend, f"{pct(restart, 50):.2f} s")
    report.add("  process spawned -> next step, p95", backend, f"{pct(restart, 95):.2f} s")
    report.add("  (crashes measured; lease)", backend, f"{rounds}; {LEASE_SECONDS} s")


async def main(rounds: int) -> Report:
    report = Report()
    tmp = Path(tempfile.mkdtemp(prefix="deckhand-bench-recovery-"))
    try:
        with postgres_server() as pg:
            for backend, url in (("sqlite", sqlite_url(tmp / "sqlite")),
                                 ("postgresql", await pg.new_database())):
                await measure(report, backend, url, tmp / backend, rounds)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return report


def cli() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=10, help="crashes per database")
    args = p.parse_args()
    started = time.monotonic()
    report = asyncio.run(main(args.rounds))
    print()
    print(report.table())
    print(f"\n({args.rounds} rounds, {time.monotonic() - started:.0f} s; host: {os.cpu_count()} "
          f"CPUs, 1-min load average {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    cli()
