"""Recordings: what keeping every step's screens costs.

    .venv/bin/python bench/recordings.py [--quick] [--postgres]

- bytes per step, per machine kind: `deckhand serve` (a subprocess on SQLite,
  real machines: a terminal, a browser, a desktop) drives scripted runs whose
  steps mean to change the screen (commands, pages, scrolls, typing); each step's screens are fetched through
  GET /v1/runs/{id}/steps/{n}/screenshot[?after=true] and the distinct bytes
  summed (what the artifact store keeps: identical screens are one blob),
  divided by the steps.
- the recording of a 50-step desktop run: GET /v1/runs/{id}/recording, its
  size and how long the server took to make it.
- the added time per step: in process on SQLite, a worker drives 100-step
  scripted runs on a machine that answers at once with real desktop screens
  (from the run above, each made unique, so every step writes its blob);
  the time from one step's start to the next (the step rows' started_at)
  with the artifact store on, and with it off, runs alternating
  (``--postgres``: the same on a PostgreSQL of its own, too).

Not a test: nothing fails, the numbers are read. Prints the load average.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import itertools
import os
import shutil
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench, tests.support

from bench.engine import (  # noqa: E402
    bench_settings,
    insert_runs,
    script_task,
    seed,
    step_rows,
    wait_terminal,
)
from bench.harness import Report, cluster, pct, postgres_server, sqlite_url  # noqa: E402
from deckhand.cli_remote import kind_fields  # noqa: E402
from deckhand.client import DeckhandClient  # noqa: E402
from deckhand.core.actions import Action, ActionResult  # noqa: E402
from deckhand.core.screens import Observation  # noqa: E402
from deckhand.engine.worker import Worker  # noqa: E402
from deckhand.services import Services  # noqa: E402
from tests.support.machine_pages import PAGES  # noqa: E402
from tests.support.static_site import static_site  # noqa: E402

GOAL_ADDED_MS = 5.0
GOAL_DESKTOP_BYTES = 120 * 1024


def _steps(kind: str, n: int, base: str) -> list[dict[str, Any]]:
    """``n`` steps that each change the screen of a machine of ``kind``."""
    pages = [f"{base}/{p}" for p in ("long.html", "form.html", "signin.html", "still.html")]
    out: list[dict[str, Any]] = []
    for i in range(n):
        if kind == "terminal":
            actions: list[dict[str, Any]] = [
                {"kind": "terminal", "command": f"echo step {i}; ls -la / | head -{5 + i % 20}"}]
        elif i % 5 == 0:
            actions = [{"kind": "open_url", "url": pages[(i // 5) % len(pages)]}]
        elif i % 5 in (1, 2):
            actions = [{"kind": "scroll", "direction": "down", "amount": 3}]
        else:
            actions = [{"kind": "type", "text": f"step {i} "}]
        out.append({"actions": actions, "text": f"step {i}"})
    out[-1]["outcome"] = {"success": True, "answer": "ok"}
    return out


async def _run(client: DeckhandClient, machine_id: str, entries: list[dict[str, Any]]) -> str:
    run = await client.create_run(machine_id=machine_id, task=script_task(entries),
                                  model="scripted", max_steps=len(entries) + 1)
    deadline = time.monotonic() + 60 + 5 * len(entries)
    while (await client.get_run(run["id"]))["status"] not in (
            "succeeded", "failed", "cancelled", "timed_out"):
        if time.monotonic() > deadline:
            raise TimeoutError(f"run {run['id']} did not end")
        await asyncio.sleep(0.2)
    final = await client.get_run(run["id"])
    if final["status"] != "succeeded":
        raise RuntimeError(f"run {run['id']}: {final['status']} {final['error']}")
    return str(run["id"])


async def _screens(client: DeckhandClient, run_id: str) -> tuple[int, dict[str, bytes]]:
    """The run's steps, and its distinct screens by sha256."""
    steps = await client.all_run_steps(run_id)
    blobs: dict[str, bytes] = {}
    for s in steps:
        for after in (False, True):
            if (s["screenshot_after_url"] if after else s["screenshot_url"]) is None:
                continue
            _, data = await client.step_screenshot(run_id, s["number"], after=after)
            blobs[hashlib.sha256(data).hexdigest()] = data
    return len(steps), blobs


async def kinds(report: Report, tmp: Path, quick: bool) -> list[bytes]:
    """Bytes per step for each machine kind and the 50-step desktop recording;
    the desktop's screens, for the overhead measurement."""
    desktop: list[bytes] = []
    n_steps = {"terminal": 10 if quick else 20, "browser": 10 if quick else 20,
               "desktop": 50}
    with static_site(PAGES) as base:
        async with cluster(tmp / "serve", sqlite_url(tmp / "serve")) as c:
            key = c.key()
            url = await c.serve()
            async with DeckhandClient(url, key, timeout=120) as client:
                for kind, n in n_steps.items():
                    m = await client.create_machine(f"bench-{kind}", **kind_fields(kind))
                    try:
                        run_id = await _run(client, m["id"], _steps(kind, n, base))
                        steps, blobs = await _screens(client, run_id)
                        per_step = sum(len(b) for b in blobs.values()) / steps
                        goal = "≤ 120 KB" if kind == "desktop" else ""
                        report.add(f"bytes per step, {kind} ({steps} steps, "
                                   f"{len(blobs)} distinct screens)", "sqlite",
                                   f"{per_step / 1024:.1f} KB", goal,
                                   per_step <= GOAL_DESKTOP_BYTES if kind == "desktop"
                                   else None)
                        if kind == "desktop":
                            desktop = list(blobs.values())
                            t0 = time.perf_counter()
                            _, movie = await client.run_recording(run_id)
                            took = time.perf_counter() - t0
                            report.add(f"recording of the {steps}-step desktop run (WebP)",
                                       "sqlite", f"{len(movie) / 1024:.0f} KB in {took:.1f} s")
                            zipped = await client.run_trajectory(run_id)
                            report.add(f"trajectory zip of the {steps}-step desktop run",
                                       "sqlite", f"{len(zipped) / 1024:.0f} KB")
                    finally:
                        await client.delete_machine(m["id"])
    return desktop


class ScreenMachine:
    """A machine that answers at once with real screens, each one unique (a
    counter after the JPEG's end), so every step writes a blob; like a real
    machine, the settled screen after an action is the next observe's."""

    def __init__(self, machine_id: str, frames: list[bytes]) -> None:
        self.machine_id = machine_id
        self._frames = itertools.cycle(frames)
        self._n = 0
        self._last: Observation | None = None

    def _next(self) -> Observation:
        self._n += 1
        data = next(self._frames) + self._n.to_bytes(8, "big")
        self._last = Observation(screenshot_jpeg=data, width=1280, height=800)
        return self._last

    async def act(self, action: Action) -> ActionResult:
        return ActionResult(ok=True)

    async def act_and_observe(self, action: Action, *, settle: object = None
                              ) -> tuple[ActionResult, Observation]:
        return ActionResult(ok=True), self._next()

    async def observe(self) -> Observation:
        return self._last or self._next()

    async def health(self) -> bool:
        return True


@contextlib.asynccontextmanager
async def _worker(svc: Services, frames: list[bytes], record: bool) -> AsyncIterator[Worker]:
    async def connect(machine_id: str) -> ScreenMachine:
        return ScreenMachine(machine_id, frames)

    w = Worker(svc.db, svc.notifier, svc.lifecycle, connect, slots=1, lease_seconds=15,
               poll_seconds=1.0, artifacts=svc.artifacts if record else None)
    w.start()
    try:
        yield w
    finally:
        await w.stop()


async def overhead(report: Report, tmp: Path, frames: list[bytes], quick: bool,
                   url: str | None = None, backend: str = "sqlite") -> None:
    svc = await Services.build(bench_settings(tmp / f"overhead-{backend}",
                                              url or sqlite_url(tmp / "overhead")))
    await svc.notifier.start()
    try:
        account, machine_id = await seed(svc.db)
        entry = {"text": "x", "actions": [{"kind": "wait", "seconds": 0}]}
        steps = 100
        task = script_task([entry] * (steps - 1) + [{**entry, "outcome": {"success": True}}])
        cycles: dict[bool, list[float]] = {True: [], False: []}
        rounds = 2 if quick else 5
        for i in range(rounds * 2 + 2):
            record = i % 2 == 0
            async with _worker(svc, frames, record):
                ids = await insert_runs(svc.db, svc.lifecycle, account, machine_id, task, 1)
                await wait_terminal(svc.db, ids, 300)
            if i < 2:
                continue  # warm-up, one of each
            rows = (await step_rows(svc.db, ids))[ids[0]]
            cycles[record] += [(b.started_at - a.started_at).total_seconds() * 1000
                               for a, b in itertools.pairwise(rows)]
        on, off = cycles[True], cycles[False]
        report.add("step cycle without recording, p50 / p95", backend,
                   f"{pct(off, 50):.2f} / {pct(off, 95):.2f} ms")
        report.add("step cycle with recording, p50 / p95", backend,
                   f"{pct(on, 50):.2f} / {pct(on, 95):.2f} ms")
        added = pct(on, 50) - pct(off, 50)
        sqlite = backend == "sqlite"
        report.add("added per step by recording, p50 / p95", backend,
                   f"{added:.2f} / {pct(on, 95) - pct(off, 95):.2f} ms",
                   "≤ 5 ms p50" if sqlite else "", added <= GOAL_ADDED_MS if sqlite else None)
        if sqlite:
            size = sum(len(f) for f in frames) / max(1, len(frames))
            report.add("screen written per step (desktop JPEG)", "sqlite",
                       f"{size / 1024:.1f} KB")
    finally:
        await svc.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps and rounds")
    parser.add_argument("--postgres", action="store_true",
                        help="also the added time on PostgreSQL (scripts/pg-test-server)")
    args = parser.parse_args()
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", file=sys.stderr)
    tmp = Path(tempfile.mkdtemp(prefix="deckhand-bench-rec-"))
    report = Report()
    try:
        frames = await kinds(report, tmp, args.quick)
        await overhead(report, tmp, frames, args.quick)
        if args.postgres:
            with postgres_server() as pg:
                await overhead(report, tmp, frames, args.quick, await pg.new_database(),
                               "postgres")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(report.table())
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    asyncio.run(main())
