"""Machine benchmarks: provisioning per kind (cold, and from the warm pool),
screenshot capture + encode per kind, click and type latency, memory per
idle machine.

    .venv/bin/python bench/machines.py [--quick] [--no-isolate] [--kinds browser]
    .venv/bin/python bench/machines.py --memory [--kinds browser]   # idle PSS, cold start
    .venv/bin/python bench/machines.py --fill [--fill-cap 60] [--budget-gib 16]

``--no-isolate`` runs the machines without their box (cgroup, own uid, own
network: docs/machines.md "Isolation"), to read what the box costs.
``--memory`` only measures each kind's idle PSS, per process kind, and its
cold start. ``--fill`` starts machines of each kind side by side until
their summed PSS reaches the budget (16 GiB), the host's available memory
less 2 GiB, or ``--fill-cap`` machines per kind (then how many fit is
extrapolated from the PSS per machine, and the table says so), and times a
browser step (click + settle + screenshot) with and without the box.

Runs real machine agents (LocalMachineProvider, WarmPool) in a temporary data
directory and removes them at the end. Prints one row per measurement with
its goal. Not a test: nothing fails, the numbers are read.

- provisioning, cold: ``provider.create`` of a new machine until its agent
  answers (terminal: shell sandbox ready; desktop: Xvfb + openbox up;
  browser: Chromium launched with a blank page).
- provisioning, warm: ``WarmPool.take`` of a spare (claim + adopt) once the
  pool is full.
- capture + encode: desktop: in this process, mss over XShm + Pillow JPEG q75
  from the raw BGRX buffer (what the agent does); over HTTP: the agent's
  ``GET /screenshot`` round trip. Browser: ``GET /screenshot`` (CDP
  ``Page.captureScreenshot`` JPEG). Terminal: the rendered terminal.
- click: an XTEST click (move + press + release + sync) in this process, and
  a ``Click`` action through the agent over HTTP (``settle: "none"``: the
  input alone; bench/step.py times act + settle + screenshot). type: 100
  characters.
- memory: PSS of every process of an idle machine (the agent's session, its
  descendants and its cgroup), from /proc/<pid>/smaps_rollup, per process
  kind (bench/machine_memory.py), and how many such machines fit in 16 GiB.
- terminal command: ``RunCommand("true")`` through the agent (the shell is
  persistent: what the box adds to a command, if anything).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import tempfile
import time
from pathlib import Path

from machine_memory import GIB, available_kib, fill, pss_by_kind, pss_kib

from deckhand.core.actions import Click, OpenUrl, RunCommand, TypeText
from deckhand.machine_agent.desktop import Desktop
from deckhand.machines.local import LocalMachineProvider
from deckhand.machines.pool import WarmPool

KINDS = ("terminal", "desktop", "browser")

PAGE = ("data:text/html,<h1 style='font:40px sans-serif'>Deckhand bench</h1>"
        "<input id=q style='font-size:30px'><button>Go</button>")


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


class Report:
    def __init__(self) -> None:
        self.rows: list[tuple[str, str, str]] = []

    def add(self, name: str, value: str, goal: str = "") -> None:
        self.rows.append((name, value, goal))
        print(f"  {name}: {value}  {goal}", file=sys.stderr, flush=True)

    def table(self) -> str:
        w0 = max(len(r[0]) for r in self.rows)
        w1 = max(len(r[1]) for r in self.rows)
        lines = [f"{'measurement':<{w0}}  {'value':<{w1}}  goal", "-" * (w0 + w1 + 30)]
        lines += [f"{a:<{w0}}  {b:<{w1}}  {c}" for a, b, c in self.rows]
        return "\n".join(lines)


def ms(values: list[float]) -> str:
    return f"p50 {statistics.median(values) * 1000:.2f} ms, p95 {pct(values, 95) * 1000:.2f} ms"


def verdict(value_s: float, goal_s: float) -> str:
    return f"(goal ≤ {goal_s * 1000:g} ms: {'met' if value_s <= goal_s else 'MISSED'})"


async def provisioning(report: Report, data: Path, n: int, isolate: bool,
                       kinds: tuple[str, ...]) -> None:
    provider = LocalMachineProvider(data, isolate=isolate)
    goals = {"terminal": (0.1, None), "desktop": (0.5, None), "browser": (1.0, 0.05)}
    for kind in kinds:
        cold = []
        for i in range(n):
            mid = f"cold-{kind}-{i}"
            t0 = time.perf_counter()
            await provider.create(mid, kind=kind)
            cold.append(time.perf_counter() - t0)
            await provider.destroy(mid)
        goal = goals[kind][0]
        # The terminal and desktop goals are met by the warm pool (a cold
        # start pays ~0.3 s of Python imports); the browser has a cold goal too.
        report.add(f"provision {kind}, cold", ms(cold),
                   verdict(statistics.median(cold), goal) if kind == "browser"
                   else "(no cold goal: see the warm pool)")
        pool = WarmPool(provider, {kind: 1})
        await pool.start()
        warm = []
        for i in range(n):
            while not pool.available(kind):
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.2)  # let the refill settle (not counted)
            mid = f"warm-{kind}-{i}"
            t0 = time.perf_counter()
            handle = await pool.take(kind, mid)
            warm.append(time.perf_counter() - t0)
            assert handle is not None
            async with provider.client(handle) as m:
                assert await m.health()
            await provider.destroy(mid)
        await pool.close()
        report.add(f"provision {kind}, warm pool", ms(warm),
                   verdict(statistics.median(warm), goals[kind][1] or goal))


async def desktop_in_process(report: Report, data: Path, n: int) -> None:
    state = data / "bench-desktop"
    (state / "workspace").mkdir(parents=True)
    desktop = Desktop(state, state / "workspace", sandbox=True, network=True)
    await desktop.start()
    try:
        await asyncio.sleep(1.0)
        captures = []
        for _ in range(n * 10):
            t0 = time.perf_counter()
            desktop.capture()
            captures.append(time.perf_counter() - t0)
        report.add("desktop capture + encode (in agent)", ms(captures),
                   verdict(statistics.median(captures), 0.008))
        assert desktop.input is not None
        clicks = []
        for i in range(n * 20):
            t0 = time.perf_counter()
            desktop.input.click(600 + i % 50, 700)
            clicks.append(time.perf_counter() - t0)
        report.add("desktop XTEST click (in agent)", ms(clicks),
                   verdict(statistics.median(clicks), 0.001))
        types = []
        for _ in range(n * 2):
            t0 = time.perf_counter()
            desktop.input.type_text("abcdefghij" * 10)
            types.append(time.perf_counter() - t0)
        report.add("desktop XTEST type 100 chars (in agent)", ms(types))
    finally:
        await desktop.close()


async def through_agents(report: Report, data: Path, n: int, isolate: bool,
                         kinds: tuple[str, ...]) -> None:
    provider = LocalMachineProvider(data, isolate=isolate)
    for kind in kinds:
        mid = f"shots-{kind}"
        handle = await provider.create(mid, kind=kind)
        try:
            async with provider.client(handle) as m:
                if kind == "browser":
                    await m.act(OpenUrl(url=PAGE))
                if kind == "desktop":
                    await asyncio.sleep(1.0)
                await m.screenshot()
                shots = []
                for _ in range(n * 10):
                    t0 = time.perf_counter()
                    await m.screenshot()
                    shots.append(time.perf_counter() - t0)
                goal = {"browser": verdict(statistics.median(shots), 0.045)}.get(kind, "")
                report.add(f"{kind} screenshot (GET /screenshot)", ms(shots), goal)
                if kind == "terminal":
                    runs = []
                    for _ in range(n * 10):
                        t0 = time.perf_counter()
                        r = await m.act(RunCommand(command="true"))
                        runs.append(time.perf_counter() - t0)
                        assert r.ok, r.error
                    report.add("terminal command `true` (HTTP round trip)", ms(runs))
                    continue
                clicks, types = [], []
                for i in range(n * 5):
                    t0 = time.perf_counter()
                    r = await m.act(Click(x=100 + i, y=120), settle="none")
                    clicks.append(time.perf_counter() - t0)
                    assert r.ok, r.error
                for _ in range(n * 2):
                    t0 = time.perf_counter()
                    r = await m.act(TypeText(text="abcdefghij" * 10), settle="none")
                    types.append(time.perf_counter() - t0)
                    assert r.ok, r.error
                report.add(f"{kind} click action (HTTP round trip)", ms(clicks))
                report.add(f"{kind} type 100 chars (HTTP round trip)", ms(types))
            await asyncio.sleep(3.0)
            mib = pss_kib(handle.pid, provider.machine_dir(mid)) / 1024
            report.add(f"memory, idle {kind} machine (PSS)",
                       f"{mib:.0f} MiB ({int(16 * 1024 // mib)} per 16 GiB)",
                       "<= 180 MiB" if kind == "browser" else "")
        finally:
            await provider.destroy(mid)


async def idle_memory(report: Report, data: Path, n: int, isolate: bool,
                      kinds: tuple[str, ...]) -> None:
    """Idle PSS per kind, per process kind (browser: a page open, as after a
    step), and the browser's cold start."""
    provider = LocalMachineProvider(data, isolate=isolate)
    for kind in kinds:
        mid = f"idle-{kind}"
        t0 = time.perf_counter()
        handle = await provider.create(mid, kind=kind)
        cold = time.perf_counter() - t0
        try:
            if kind == "browser":
                async with provider.client(handle) as m:
                    assert (await m.act(OpenUrl(url=PAGE))).ok
            await asyncio.sleep(3.0)
            parts = pss_by_kind(handle.pid, provider.machine_dir(mid))
        finally:
            await provider.destroy(mid)
        total = sum(kib for kib, _ in parts.values()) / 1024
        report.add(f"memory, idle {kind} machine (PSS)",
                   f"{total:.0f} MiB ({int(16 * 1024 // total)} per 16 GiB)",
                   "<= 180 MiB" if kind == "browser" else "")
        for name, (kib, count) in sorted(parts.items(), key=lambda kv: -kv[1][0]):
            report.add(f"  {kind}: {name}" + (f" ×{count}" if count > 1 else ""),
                       f"{kib / 1024:.1f} MiB")
        if kind == "browser":
            colds = [cold]
            for i in range(n - 1):
                t0 = time.perf_counter()
                await provider.create(f"cold-{i}", kind=kind)
                colds.append(time.perf_counter() - t0)
                await provider.destroy(f"cold-{i}")
            report.add("provision browser, cold", ms(colds),
                       verdict(statistics.median(colds), 1.0))


async def step_p50(data: Path, isolate: bool, n: int) -> float:
    """A browser machine's click + settle + screenshot (one round trip), p50."""
    provider = LocalMachineProvider(data, isolate=isolate)
    mid = f"step-{'box' if isolate else 'nobox'}"
    handle = await provider.create(mid, kind="browser")
    try:
        async with provider.client(handle) as m:
            assert (await m.act(OpenUrl(url=PAGE))).ok
            times = []
            for i in range(n + 3):
                t0 = time.perf_counter()
                result, seen = await m.act_and_observe(Click(x=300 + i % 7, y=300))
                assert result.ok and seen is not None, result.error
                times.append(time.perf_counter() - t0)
            return statistics.median(times[3:])
    finally:
        await provider.destroy(mid)


async def filling(report: Report, data: Path, isolate: bool, kinds: tuple[str, ...],
                  budget_gib: float, cap: int) -> None:
    budget = int(budget_gib * GIB)
    report.add("host memory available at start", f"{available_kib() / GIB:.1f} GiB")
    for kind in kinds:
        provider = LocalMachineProvider(data, isolate=isolate)
        f = await fill(provider, kind, budget, cap,
                       log=lambda line: print(line, file=sys.stderr, flush=True))
        how = ("counted" if f.stopped_by == "budget" else
               f"extrapolated: stopped by the {f.stopped_by} at {f.started}")
        report.add(f"fill {kind}: machines per {budget_gib:g} GiB",
                   f"{f.fit(budget)} ({how}; {f.started} running = "
                   f"{f.total_kib / GIB:.2f} GiB, {f.per_machine_kib / 1024:.0f} MiB each, "
                   f"{f.seconds:.0f} s)")
    boxed = await step_p50(data, True, 20)
    bare = await step_p50(data, False, 20)
    report.add("browser click + settle + screenshot, p50, in the box", f"{boxed * 1000:.0f} ms",
               verdict(boxed, 0.1))
    report.add("browser click + settle + screenshot, p50, without the box",
               f"{bare * 1000:.0f} ms", f"(the box adds {(boxed - bare) * 1000:+.0f} ms)")


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-isolate", action="store_true",
                        help="machines without their box: what it costs")
    parser.add_argument("--kinds", default=",".join(KINDS),
                        help="comma list of machine kinds (default: all)")
    parser.add_argument("--memory", action="store_true",
                        help="only idle PSS per process kind and the browser's cold start")
    parser.add_argument("--fill", action="store_true",
                        help="machines side by side until the budget is used, per kind")
    parser.add_argument("--budget-gib", type=float, default=16.0)
    parser.add_argument("--fill-cap", type=int, default=60,
                        help="machines per kind at most (then extrapolated)")
    args = parser.parse_args()
    isolate = not args.no_isolate
    kinds = tuple(k for k in args.kinds.split(",") if k in KINDS)
    n = 3 if args.quick else 5
    report = Report()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="deckhand-bench-") as d:
        data = Path(d)
        if args.memory:
            await idle_memory(report, data, n, isolate, kinds)
        elif args.fill:
            await filling(report, data, isolate, kinds, args.budget_gib, args.fill_cap)
        else:
            await provisioning(report, data, n, isolate, kinds)
            if "desktop" in kinds:
                await desktop_in_process(report, data, n)
            await through_agents(report, data, n, isolate, kinds)
        with contextlib.suppress(OSError):
            (data / "machines").rmdir()
    print()
    print(report.table())
    print(f"\n({'quick' if args.quick else 'full'} sample, "
          f"{'with' if isolate else 'without'} the machines' isolation, "
          f"{time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    asyncio.run(main())
