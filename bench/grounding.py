"""Offline grounding latency: POST /v1/ground with no model configured, on
1280x800 screenshots rendered with PIL (tests/support/rendered_screens.py).

    PYTHONPATH=src:. .venv/bin/python bench/grounding.py [--rounds N]

Runs the real app (SQLite in a temporary directory, uvicorn on loopback, the
tests' server helper) and times each request from send to answer, per case:

- a label on the first pass (dark text on a light button): one tesseract run;
- light text on a dark button of a light page, whose word also stands in a
  sentence above it: three passes (plain, inverted, each dark box cropped and
  inverted);
- a dark screen (light text everywhere): plain, then the inverted pass;
- a label that is not there (422): all four passes (the fourth: the frame in
  overlapping bands), the worst case.

Prints p50 and p95 per case, and the load average, since the machine is
shared. Not a test: nothing fails, the numbers are read.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path

from tests.conftest import make_settings, serve
from tests.support.rendered_screens import SANS, Button, Screen, toolbar


def _dark() -> Screen:
    return Screen(page="#1b1b1f", buttons=[
        Button(f"Item {n}", (80 + 200 * (n % 5), 120 + 90 * (n // 5)), SANS, 18,
               fg="#eeeeee", bg="#2b2b30") for n in range(20)
    ] + [Button("Settings", (600, 700), SANS, 24, fg="#eeeeee", bg="#2b2b30")])


CASES = [
    ("first pass: 'the Archive button'", toolbar, "the Archive button", 200),
    ("3 passes: white 'Delete' on red", toolbar, 'the "Delete" button', 200),
    ("dark screen: 'Settings'", _dark, "Settings", 200),
    ("missing: 'the red circle' (422)", toolbar, "the red circle", 422),
]


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def main(rounds: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
        async with serve(make_settings(Path(tmp), url)) as server:
            key = await server.key()
            async with server.client(key) as c:
                print(f"load average {os.getloadavg()[0]:.2f}; {rounds} requests per case, "
                      "1280x800 PNG")
                print(f"{'case':<40} {'p50 ms':>8} {'p95 ms':>8} {'status':>7}")
                for name, make, element, status in CASES:
                    shot = make().b64()
                    times: list[float] = []
                    for _ in range(rounds):
                        start = time.perf_counter()
                        r = await c.post("/v1/ground", json={"screenshot": shot,
                                                             "element": element})
                        times.append((time.perf_counter() - start) * 1000)
                        if r.status_code != status:
                            raise SystemExit(f"{name}: {r.status_code} {r.text[:300]}")
                    print(f"{name:<40} {statistics.median(times):>8.0f} "
                          f"{_pct(times, 0.95):>8.0f} {status:>7}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    asyncio.run(main(parser.parse_args().rounds))
