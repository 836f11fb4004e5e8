"""Engine benchmarks: orchestration overhead per step, queue latency, steps per
second with one and two worker processes, recovery after a crash, memory per
active run.

    .venv/bin/python bench/engine.py [--quick] [--only overhead,queue,throughput,recovery,memory]

Starts its own PostgreSQL (scripts/pg-test-server) and SQLite files in a
temporary directory, removes both at the end, and prints one row per
measurement with its goal. Not a test: nothing fails, the numbers are read.

- overhead: in process. A worker (1 slot) drives scripted runs one after the
  other; every step performs one action on a NullMachine that returns at
  once, so a step's time is the engine's own (claiming aside): brain call,
  the decided-events transaction, the act, the step transaction (step row,
  events, counters, ledger) and the limits check. Measured as the time from
  one step's start to the next one's (step rows' started_at).
- queue latency: `deckhand serve` as a subprocess (in-process workers), a real
  local machine, real HTTP on loopback. From the POST /v1/runs response
  arriving at the client to the first step's started_at (same host clock).
- throughput: `deckhand serve --no-workers` + 1 or 2 `deckhand worker`
  processes on PostgreSQL; many concurrent runs of steps without actions.
  Steps recorded / (last step finished - first step started).
- recovery: `deckhand serve` killed with SIGKILL mid-run and started again
  on the same data dir; from the new server answering /v1/health to the
  run's next step (bench/recovery.py, which also runs alone).
- memory: a worker subprocess (this script, `_worker` mode: a real Worker with
  a NullMachine, 1,000 slots) drives 1,000 runs parked in a 60 s wait action;
  its VmRSS once all 1,000 are waiting, minus its VmRSS when idle and warm.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import json
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench, tests.support

from bench import recovery  # noqa: E402
from bench.harness import (  # noqa: E402
    SECRET,
    Postgres,
    Report,
    cluster,
    machine,
    pct,
    postgres_server,
    sqlite_url,
)
from deckhand.client import DeckhandClient
from deckhand.config import Settings
from deckhand.core.actions import Action, ActionResult, Wait
from deckhand.core.clock import utcnow
from deckhand.engine.submit import RunSpec, RunSubmitter
from deckhand.engine.worker import Worker
from deckhand.ids import new_uuid
from deckhand.services import Services
from deckhand.store import accounts as accounts_store
from deckhand.store import machines as machines_store
from deckhand.store.db import Database
from deckhand.store.runs import TERMINAL
from deckhand.store.tables import run_events, run_steps, runs

# --------------------------------------------------------------------- the null machine


class NullMachine:
    """A machine that does nothing: every action succeeds at once, except
    ``wait``, which sleeps without blocking (as a real machine would)."""

    def __init__(self, machine_id: str) -> None:
        self.machine_id = machine_id

    async def act(self, action: Action) -> ActionResult:
        if isinstance(action, Wait) and action.seconds:
            await asyncio.sleep(action.seconds)
        return ActionResult(ok=True)

    async def act_and_observe(self, action: Action, *, settle: object = None
                              ) -> tuple[ActionResult, None]:
        return await self.act(action), None  # no screen

    async def health(self) -> bool:
        return True

    async def observe(self) -> None:
        return None  # no screen


async def connect_null(machine_id: str) -> NullMachine:
    return NullMachine(machine_id)


# --------------------------------------------------------------------- seeding, in process


async def seed(db: Database) -> tuple[str, str]:
    """An unlimited account and a machine row no agent serves (the NullMachine does)."""
    async with db.write() as conn:
        acct = await accounts_store.create(conn, f"bench-{secrets.token_hex(4)}")
        machine_id = new_uuid()
        await machines_store.insert(conn, {
            "id": machine_id, "account_id": acct.id, "mode": "live", "display_name": "null",
            "status": "running", "metadata": {}, "provider": "remote",
            "created_at": utcnow(), "started_at": utcnow(),
        })
    return acct.id, machine_id


def script_task(entries: list[dict[str, Any]]) -> str:
    return json.dumps({"script": entries})


async def insert_runs(db: Database, lifecycle: Any, account_id: str, machine_id: str,
                      task: str, count: int, max_steps: int = 1000,
                      batch: int = 200) -> list[str]:
    """Queue ``count`` scripted runs as POST /v1/runs does (RunSubmitter: row,
    first event, wake-up), ``batch`` to a transaction."""
    submitter = RunSubmitter(lifecycle, SECRET.encode(), max_steps_ceiling=1000)
    spec = RunSpec(machine_id=machine_id, task=task, model="scripted", max_steps=max_steps)
    ids: list[str] = []
    while len(ids) < count:
        async with db.write() as conn:
            for _ in range(min(batch, count - len(ids))):
                done = await submitter.submit(conn, account_id=account_id, mode="live",
                                              spec=spec)
                ids.append(done.run.id)
    return ids


async def wait_terminal(db: Database, run_ids: list[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        async with db.read() as conn:
            left = (await conn.execute(
                select(func.count()).select_from(runs)
                .where(runs.c.id.in_(run_ids), runs.c.status.not_in(TERMINAL))
            )).scalar_one()
        if not left:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{left} of {len(run_ids)} runs still not finished")
        await asyncio.sleep(0.05)


async def step_rows(db: Database, run_ids: list[str]) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {r: [] for r in run_ids}
    async with db.read() as conn:
        for chunk in range(0, len(run_ids), 500):
            part = run_ids[chunk:chunk + 500]
            rows = await conn.execute(
                select(run_steps.c.run_id, run_steps.c.number, run_steps.c.started_at,
                       run_steps.c.finished_at)
                .where(run_steps.c.run_id.in_(part)).order_by(run_steps.c.number))
            for r in rows:
                out[r.run_id].append(r)
    return out


def bench_settings(tmp: Path, url: str, **kw: Any) -> Settings:
    return Settings(data_dir=tmp, database_url=url, secret_key=SECRET, **kw)


# --------------------------------------------------------------------- 1. overhead


async def measure_overhead(url: str, tmp: Path, runs_n: int, steps: int) -> list[float]:
    """Per-step cycle times (ms), in process, one run at a time."""
    svc = await Services.build(bench_settings(tmp, url))
    await svc.notifier.start()
    worker = Worker(svc.db, svc.notifier, svc.lifecycle, connect_null, slots=1,
                    lease_seconds=15, poll_seconds=1.0)
    worker.start()
    try:
        account, machine = await seed(svc.db)
        entry = {"text": "x", "actions": [{"kind": "wait", "seconds": 0}]}
        script = [entry] * (steps - 1) + [{**entry, "outcome": {"success": True}}]
        task = script_task(script)
        # warm-up run: imports, statement caches, pool
        warm = await insert_runs(svc.db, svc.lifecycle, account, machine,
                                 script_task(script[:10] + [script[-1]]), 1)
        await wait_terminal(svc.db, warm, 60)
        cycles: list[float] = []
        for _ in range(runs_n):
            ids = await insert_runs(svc.db, svc.lifecycle, account, machine, task, 1)
            await wait_terminal(svc.db, ids, 120)
            rows = (await step_rows(svc.db, ids))[ids[0]]
            assert len(rows) == steps, (len(rows), steps)
            cycles += [(b.started_at - a.started_at).total_seconds() * 1000
                       for a, b in itertools.pairwise(rows)]
        return cycles
    finally:
        await worker.stop()
        await svc.close()


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


# --------------------------------------------------------------------- 2. queue latency


async def measure_queue(url: str, tmp: Path, n: int) -> tuple[list[float], list[float]]:
    """(queue latencies, POST round trips), ms."""
    async with cluster(tmp, url) as c:
        key = c.key()
        base = await c.serve()
        task = script_task([{"text": "done", "outcome": {"success": True}}])
        async with DeckhandClient(base, key) as client, machine(client) as mid:
            posted: dict[str, datetime] = {}
            trips: list[float] = []
            for i in range(n + 3):
                t0 = time.perf_counter()
                run = await client.create_run(machine_id=mid, task=task, model="scripted")
                at = datetime.now(UTC)
                trip = (time.perf_counter() - t0) * 1000
                async for _ in client.events(run["id"]):
                    pass
                if i >= 3:  # the first runs warm the server up
                    posted[run["id"]] = at
                    trips.append(trip)
                await asyncio.sleep(0.02)  # let the server go idle between runs
        db = Database(url)
        try:
            rows = await step_rows(db, list(posted))
        finally:
            await db.dispose()
    lat = [(rows[r][0].started_at - at).total_seconds() * 1000 for r, at in posted.items()]
    return lat, trips


# --------------------------------------------------------------------- 3. throughput


async def measure_throughput(url: str, tmp: Path, workers: int, slots: int, runs_n: int,
                             steps: int) -> tuple[float, int]:
    """(steps per second, steps recorded) with ``workers`` worker processes."""
    async with cluster(tmp, url, DECKHAND_LEASE_SECONDS="15") as c:
        key = c.key()
        procs = [c.deckhand(f"worker{i}", "worker", "--slots", str(slots))
                 for i in range(workers)]
        base = await c.serve("--no-workers")
        for p in procs:
            await c.wait_log(p, "worker ")
        entries = [{"text": f"step {i}"} for i in range(1, steps)]
        entries.append({"text": "last", "outcome": {"success": True}})
        task = script_task(entries)
        async with DeckhandClient(base, key) as client, machine(client) as mid:
            created = await asyncio.gather(*(
                client.create_run(machine_id=mid, task=task, model="scripted")
                for _ in range(runs_n)))
            ids = [r["id"] for r in created]
            db = Database(url)
            try:
                await wait_terminal(db, ids, 600)
                rows = await step_rows(db, ids)
                async with db.read() as conn:
                    ok = (await conn.execute(select(func.count()).select_from(runs).where(
                        runs.c.id.in_(ids), runs.c.status == "succeeded"))).scalar_one()
            finally:
                await db.dispose()
        if ok != runs_n:
            raise RuntimeError(f"only {ok} of {runs_n} runs succeeded")
        all_rows = [r for rs in rows.values() for r in rs]
        start = min(r.started_at for r in all_rows)
        end = max(r.finished_at for r in all_rows)
        return len(all_rows) / (end - start).total_seconds(), len(all_rows)


# --------------------------------------------------------------------- 4. memory


async def worker_main(url: str, data_dir: str, slots: int) -> None:
    """``_worker`` mode: a real Worker driving runs on NullMachines until killed."""
    svc = await Services.build(bench_settings(Path(data_dir), url), migrate=False)
    await svc.notifier.start()
    w = Worker(svc.db, svc.notifier, svc.lifecycle, connect_null, slots=slots,
               lease_seconds=svc.settings.lease_seconds,
               poll_seconds=svc.settings.poll_interval_seconds)
    w.start()
    print("ready", flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    os._exit(0)  # runs in hand are abandoned on purpose (the database is thrown away)


async def measure_memory(url: str, tmp: Path, n: int, wait_s: float) -> dict[str, float]:
    tmp.mkdir(parents=True, exist_ok=True)
    svc = await Services.build(bench_settings(tmp, url))
    await svc.notifier.start()
    log = tmp / "memory-worker.log"
    child = spawn_worker(url, tmp, n, log)
    try:
        assert child.stdout is not None
        line = await asyncio.to_thread(child.stdout.readline)
        if line.strip() != b"ready":
            raise RuntimeError(f"worker did not start: {log.read_text()[-2000:]}")
        account, mid = await seed(svc.db)
        # warm the worker up: every code path a waiting run takes, a few times over
        warm_task = script_task([{"actions": [{"kind": "wait", "seconds": 0.2}]},
                                 {"outcome": {"success": True}}])
        for _ in range(3):
            warm = await insert_runs(svc.db, svc.lifecycle, account, mid,
                                     warm_task, 50)
            await wait_terminal(svc.db, warm, 60)
        await asyncio.sleep(1.0)  # let the worker settle (lease/sweep loops idle)
        before = statistics.median([await _sample_rss(child.pid) for _ in range(5)])

        task = script_task([{"actions": [{"kind": "wait", "seconds": wait_s}]},
                            {"outcome": {"success": True}}])
        t0 = time.monotonic()
        ids = await insert_runs(svc.db, svc.lifecycle, account, mid, task, n)
        while True:  # every run has recorded its decision and is in the wait
            async with svc.db.read() as conn:
                waiting = (await conn.execute(
                    select(func.count()).select_from(run_events)
                    .where(run_events.c.run_id.in_(ids), run_events.c.type == "tool_call")
                )).scalar_one()
            if waiting >= n:
                break
            if time.monotonic() - t0 > wait_s * 0.8:
                raise RuntimeError(f"only {waiting} of {n} runs reached their wait in time")
            await asyncio.sleep(0.1)
        ramp = time.monotonic() - t0
        during = max([await _sample_rss(child.pid) for _ in range(5)])
        return {"before_kib": before, "during_kib": during, "ramp_s": ramp,
                "per_run_kib": (during - before) / n}
    finally:
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        await svc.close()


def spawn_worker(url: str, data_dir: Path, slots: int, log: Path) -> subprocess.Popen[bytes]:
    """This script in ``_worker`` mode; it prints ``ready`` once it claims runs."""
    with open(log, "wb") as f:
        return subprocess.Popen(
            [sys.executable, __file__, "_worker", "--url", url, "--data-dir", str(data_dir),
             "--slots", str(slots)], stdout=subprocess.PIPE, stderr=f, stdin=subprocess.DEVNULL)


async def _sample_rss(pid: int) -> int:
    await asyncio.sleep(0.1)
    return rss_kib(pid)


# --------------------------------------------------------------------- main


async def main(args: argparse.Namespace) -> Report:
    quick = args.quick
    only = set(args.only.split(",")) if args.only else {"overhead", "queue", "throughput",
                                                          "recovery", "memory"}
    report = Report()
    tmp = Path(tempfile.mkdtemp(prefix="deckhand-bench-"))
    try:
        with postgres_server() as pg:
            async def databases(tag: str) -> list[tuple[str, str]]:
                return [("sqlite", sqlite_url(tmp / f"{tag}-sqlite")),
                        ("postgresql", await pg.new_database())]

            if "overhead" in only:
                for backend, url in await databases("overhead"):
                    await attempt(report, "orchestration overhead per step", backend,
                                  overhead_rows(report, backend, url, tmp, quick))
            if "queue" in only:
                for backend, url in await databases("queue"):
                    await attempt(report, "queue latency", backend,
                                  queue_rows(report, backend, url, tmp, quick))
            if "throughput" in only:
                await attempt(report, "steps/s", "postgresql",
                              throughput_rows(report, pg, tmp, quick))
            if "recovery" in only:
                for backend, url in await databases("recovery"):
                    await attempt(report, "restart -> next step", backend,
                                  recovery.measure(report, backend, url, tmp / f"recovery-{backend}",
                                                   3 if quick else 10))
            if "memory" in only:
                for backend, url in await databases("memory"):
                    await attempt(report, "memory per active run", backend,
                                  memory_rows(report, backend, url, tmp))
    finally:
        gc.collect()
        shutil.rmtree(tmp, ignore_errors=True)
    return report


async def attempt(report: Report, name: str, backend: str, rows: Any) -> None:
    """Run one measurement; a failure becomes a row, and the others still run."""
    try:
        await rows
    except Exception as exc:  # noqa: BLE001 - a benchmark reports, it does not stop at one failure
        report.add(name, backend, f"error: {type(exc).__name__}: {str(exc)[:80]}")


async def overhead_rows(report: Report, backend: str, url: str, tmp: Path, quick: bool) -> None:
    runs_n, steps = (3, 100) if quick else (10, 200)
    c = await measure_overhead(url, tmp / f"overhead-{backend}", runs_n, steps)
    p50 = pct(c, 50)
    sqlite = backend == "sqlite"
    report.add("orchestration overhead per step, p50", backend, f"{p50:.2f} ms",
               "<= 3 ms" if sqlite else "", p50 <= 3.0 if sqlite else None)
    report.add("orchestration overhead per step, p95", backend, f"{pct(c, 95):.2f} ms")
    report.add("  (steps measured)", backend, str(len(c)))


async def queue_rows(report: Report, backend: str, url: str, tmp: Path, quick: bool) -> None:
    lat, trips = await measure_queue(url, tmp / f"queue-{backend}", 20 if quick else 100)
    report.add("queue latency POST -> first step, p50", backend, f"{pct(lat, 50):.1f} ms",
               "<= 50 ms", pct(lat, 50) <= 50)
    report.add("queue latency POST -> first step, p95", backend, f"{pct(lat, 95):.1f} ms")
    report.add("  POST /v1/runs round trip, p50", backend, f"{pct(trips, 50):.1f} ms")


async def throughput_rows(report: Report, pg: Postgres, tmp: Path, quick: bool) -> None:
    runs_n, steps, slots = (16, 25, 16) if quick else (64, 50, 32)
    for workers in (1, 2):
        rate, _ = await measure_throughput(await pg.new_database(), tmp / f"throughput-{workers}",
                                           workers, slots, runs_n, steps)
        report.add(f"steps/s, {workers} worker process{'es' if workers > 1 else ''}"
                   f" ({slots} slots each)", "postgresql", f"{rate:.0f} steps/s")
    report.add("  (runs x steps each)", "postgresql", f"{runs_n} x {steps}")


async def memory_rows(report: Report, backend: str, url: str, tmp: Path) -> None:
    n = 1000
    m = await measure_memory(url, tmp / f"memory-{backend}", n, wait_s=120.0)
    per = m["per_run_kib"]
    report.add(f"memory per active run ({n:,} concurrent)", backend, f"{per:.1f} KiB",
               "< 1 MB (1024 KiB)", per < 1024)
    report.add(f"  worker RSS idle -> with {n:,} runs", backend,
               f"{m['before_kib'] / 1024:.0f} -> {m['during_kib'] / 1024:.0f} MiB")
    report.add(f"  time for {n:,} runs to reach their wait", backend, f"{m['ramp_s']:.1f} s")


def cli() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_worker":
        p = argparse.ArgumentParser()
        p.add_argument("_worker")
        p.add_argument("--url", required=True)
        p.add_argument("--data-dir", required=True)
        p.add_argument("--slots", type=int, required=True)
        a = p.parse_args()
        asyncio.run(worker_main(a.url, a.data_dir, a.slots))
        return
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="a smaller sample")
    p.add_argument("--only", help="comma list of: overhead, queue, throughput, recovery, memory")
    args = p.parse_args()
    started, load_before = time.monotonic(), os.getloadavg()[0]
    report = asyncio.run(main(args))
    print()
    print(report.table())
    print(f"\n({'quick' if args.quick else 'full'} sample, {time.monotonic() - started:.0f} s; "
          f"host: {os.cpu_count()} CPUs, 1-min load average {load_before:.1f} before, "
          f"{os.getloadavg()[0]:.1f} after)")


if __name__ == "__main__":
    cli()
