"""Step latency: act, let the screen settle, observe — adaptively, against the
fixed 2 s delay of the Anthropic computer-use demo.

    .venv/bin/python bench/step.py [--quick]

Runs a real desktop machine and a real browser machine (LocalMachineProvider
in a temporary data directory, pages served on loopback) and times, through
the agent loop's client (``RemoteMachine.act_and_observe``: the action, the
settle and the settled screenshot in one HTTP round trip):

- click + settle + screenshot on a page where nothing moves;
- a click that starts a 300 ms animation (6 colour steps): the whole step,
  and how long after the animation's end (the page's ``animationend``, same
  clock) the settled screenshot was in hand — and that it shows the final
  colour;
- typing 100 characters + settle + screenshot;

each side by side with the same step settled by a fixed 2 s delay
(``settle: 2000``), and the ratio. Not a test: nothing fails, the numbers are
read. Prints the load average, since the machine is shared.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.support

from deckhand.core.actions import Click, OpenUrl, TypeText  # noqa: E402
from deckhand.machines.local import LocalMachineProvider  # noqa: E402
from deckhand.machines.remote import RemoteMachine  # noqa: E402
from tests.support.deployment import free_port  # noqa: E402
from tests.support.static_site import static_site  # noqa: E402

FIXED_MS = 2000  # the demo's policy: a fixed 2 s sleep after every action
POINT = (640, 600)  # inside the page on both screens (below the desktop browser's toolbar)
STILL = """<!doctype html><html><body style="font: 24px sans-serif; margin: 40px">
<h1>Nothing here moves</h1><input autofocus style="font-size: 24px; width: 90%"></body></html>"""
ANIMATED = """<!doctype html><html><head><style>
html, body {margin: 0; height: 100%; background: #ffffff}
body.a {animation: a 300ms steps(6, end) forwards}
body.b {animation: b 300ms steps(6, end) forwards}
@keyframes a {from {background: #ff0000} to {background: #0000ff}}
@keyframes b {from {background: #ff0000} to {background: #00ff00}}
</style></head><body onclick="this.className = this.className === 'a' ? 'b' : 'a'">
<script>window.ends = []; document.body.addEventListener('animationend',
  () => window.ends.push(performance.timeOrigin + performance.now()));</script>
</body></html>"""
FINAL = {"a": (0, 0, 255), "b": (0, 255, 0)}


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


@contextlib.contextmanager
def pages(port: int) -> Iterator[str]:
    with static_site({"still.html": STILL, "animated.html": ANIMATED}, port) as base:
        yield base


class Table:
    HEAD = ("step", "adaptive p50", "p95", f"fixed {FIXED_MS / 1000:g} s p50", "ratio", "goal")

    def __init__(self) -> None:
        self.rows: list[tuple[str, ...]] = []

    def add(self, *row: str) -> None:
        self.rows.append(row)
        print("  " + " | ".join(row), file=sys.stderr, flush=True)

    def render(self) -> str:
        widths = [max(len(r[i]) for r in [self.HEAD, *self.rows]) for i in range(len(self.HEAD))]

        def line(row: tuple[str, ...]) -> str:
            return "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()

        return "\n".join([line(self.HEAD), "-" * (sum(widths) + 2 * len(widths)),
                          *map(line, self.rows)])


def ms(v: float) -> str:
    return f"{v * 1000:.0f} ms"


def goal(value: float, limit: float) -> str:
    return f"≤ {limit * 1000:g} ms: {'met' if value <= limit else 'MISSED'}"


async def timed(n: int, step: Callable[[], Awaitable[object]]) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        await step()
        out.append(time.perf_counter() - t0)
    return out


def colour(jpeg: bytes) -> tuple[int, int, int]:
    with Image.open(io.BytesIO(jpeg)) as img:
        return img.convert("RGB").getpixel(POINT)  # type: ignore[return-value]


async def bench_kind(kind: str, m: RemoteMachine, base: str, n: int, table: Table) -> None:
    async def step(action: object, settle: object = None) -> tuple[bytes, float]:
        """The settled screenshot, and the agent's own time for the step (s)."""
        result, seen = await m.act_and_observe(action, settle=settle)  # type: ignore[arg-type]
        assert result.ok and seen is not None, result.error
        return seen.screenshot_jpeg, result.duration_ms / 1000

    click = Click(x=POINT[0], y=POINT[1])
    assert (await m.act(OpenUrl(url=f"{base}/still.html"))).ok
    await step(click)
    adaptive = await timed(n * 10, lambda: step(click))
    fixed = await timed(n, lambda: step(click, FIXED_MS))
    table.add(f"{kind}: click + settle + screenshot, still page", ms(statistics.median(adaptive)),
              ms(pct(adaptive, 95)), ms(statistics.median(fixed)),
              f"{statistics.median(fixed) / statistics.median(adaptive):.0f}×",
              "p50 " + goal(statistics.median(adaptive), 0.100))

    assert (await m.act(OpenUrl(url=f"{base}/animated.html"))).ok
    clicks, finals = 0, 0

    async def animate(settle: object, totals: list[float], in_hand: list[float],
                      settled: list[float]) -> None:
        nonlocal clicks, finals
        t0 = time.perf_counter()
        shot, agent_s = await step(click, settle)
        t1, now_ms = time.perf_counter(), time.time() * 1000
        clicks += 1
        want = FINAL["a" if clicks % 2 else "b"]
        finals += all(abs(a - b) <= 24 for a, b in zip(colour(shot), want, strict=True))
        end = (await m.command("browser_execute", {"script": "window.ends.at(-1)",
                                                   "settle": "none", "screenshot": False}))
        after = (now_ms - float(end["result"]["value"])) / 1000
        totals.append(t1 - t0)
        in_hand.append(after)
        settled.append(after - ((t1 - t0) - agent_s))  # less the HTTP round trip

    totals, in_hand, settled = [], [], []  # type: ignore[var-annotated]
    fixed_totals, fixed_in_hand, fixed_settled = [], [], []  # type: ignore[var-annotated]
    for _ in range(n * 4):
        await animate(None, totals, in_hand, settled)
    for _ in range(n):
        await animate(FIXED_MS, fixed_totals, fixed_in_hand, fixed_settled)
    table.add(f"{kind}: click starting a 300 ms animation + settle + screenshot",
              ms(statistics.median(totals)), ms(pct(totals, 95)),
              ms(statistics.median(fixed_totals)),
              f"{statistics.median(fixed_totals) / statistics.median(totals):.1f}×",
              f"final frame in {finals} of {clicks} screenshots")
    table.add(f"{kind}:   … settle returned (in the agent) after the animation's end",
              ms(statistics.median(settled)), ms(pct(settled, 95)),
              ms(statistics.median(fixed_settled)), "",
              "p50 " + goal(statistics.median(settled), 0.1))
    table.add(f"{kind}:   … screenshot in hand (client) after the animation's end",
              ms(statistics.median(in_hand)), ms(pct(in_hand, 95)),
              ms(statistics.median(fixed_in_hand)), "", "")

    assert (await m.act(OpenUrl(url=f"{base}/still.html"))).ok
    text = TypeText(text="abcdefghij" * 10)
    adaptive = await timed(n * 4, lambda: step(text))
    fixed = await timed(n, lambda: step(text, FIXED_MS))
    table.add(f"{kind}: type 100 chars + settle + screenshot", ms(statistics.median(adaptive)),
              ms(pct(adaptive, 95)), ms(statistics.median(fixed)),
              f"{statistics.median(fixed) / statistics.median(adaptive):.0f}×", "")


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-isolate", action="store_true",
                        help="machines without their box (cgroup, uid, network): what it costs")
    args = parser.parse_args()
    n = 2 if args.quick else 5
    table = Table()
    started, load = time.monotonic(), os.getloadavg()
    port = free_port()  # the machines reach the pages through their allowed host port
    with tempfile.TemporaryDirectory(prefix="deckhand-bench-") as d, pages(port) as base:
        provider = LocalMachineProvider(Path(d), host_allow=f"127.0.0.1:{port}",
                                        isolate=not args.no_isolate)
        for kind in ("desktop", "browser"):
            handle = await provider.create(f"step-{kind}", kind=kind)
            try:
                async with provider.client(handle) as m:
                    await bench_kind(kind, m, base, n, table)
            finally:
                await provider.destroy(f"step-{kind}")
    print()
    print(table.render())
    print(f"\n({'quick' if args.quick else 'full'} sample, "
          f"{'without' if args.no_isolate else 'with'} the machines' isolation, "
          f"{time.monotonic() - started:.0f} s; "
          f"load average {load[0]:.2f} at start, {os.getloadavg()[0]:.2f} at end, "
          f"{os.cpu_count()} cores)")


if __name__ == "__main__":
    asyncio.run(main())
