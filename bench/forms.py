"""Recall of ``type … into "LABEL"`` on rendered form pages, per machine path.

    .venv/bin/python bench/forms.py [--pages N]

Generates the corpus of ``tests/support/form_corpus.py`` (36 pages by
default: label above, label left, wrapping label, placeholders only; DejaVu
Sans and Serif, Nimbus Sans; 14-28 px; black or grey on white, white on a
colour), serves it on loopback and types into both labels of every page with
a real machine agent: a headless browser (the DOM) and a desktop (Xvfb, the
desktop's Chromium, text recognition). Prints, per path and per layout, the
recall of labels (the label was read) and of fields (the typed text ended up
in the field the label names), the time per label, and every miss. Not a
test: ``tests/integration/test_form_corpus.py`` holds the goal.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.support

from deckhand.machine_agent.server import MachineAgent  # noqa: E402
from tests.support import form_corpus  # noqa: E402


async def run_path(kind: str, corpus: list[form_corpus.Page], base: str,
                   work: Path) -> dict[str, tuple[form_corpus.Tally, float]]:
    """The tally per layout (and ``all``) on one path, with seconds per label."""
    (work / kind / "ws").mkdir(parents=True)
    agent = MachineAgent("bench", work / kind / "ws", sandbox=False, state_dir=work / kind,
                         desktop=kind == "desktop", browser=kind == "browser")
    await agent.start()
    out: dict[str, tuple[form_corpus.Tally, float]] = {}
    try:
        for layout in (*form_corpus.LAYOUTS, "all"):
            pages = [p for p in corpus if layout in ("all", p.layout)]
            if layout == "all":
                whole = form_corpus.Tally()
                for name in form_corpus.LAYOUTS:
                    t = out[name][0]
                    whole.labels += t.labels
                    whole.found += t.found
                    whole.grounded += t.grounded
                    whole.misses += t.misses
                took = sum(out[n][1] * out[n][0].labels for n in form_corpus.LAYOUTS)
                out["all"] = (whole, took / max(1, whole.labels))
                continue
            started = time.monotonic()
            tally = await form_corpus.measure(agent, base, pages)
            out[layout] = (tally, (time.monotonic() - started) / max(1, tally.labels))
    finally:
        await agent.close()
    return out


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pages", type=int, default=form_corpus.PAGES)
    args = parser.parse_args()
    corpus = form_corpus.pages(args.pages)
    load = os.getloadavg()[0]
    rows = []
    misses = []
    with tempfile.TemporaryDirectory(prefix="deckhand-forms-") as d, \
            form_corpus.serve(corpus) as base:
        for kind in ("browser", "desktop"):
            for layout, (tally, per) in (await run_path(kind, corpus, base, Path(d))).items():
                labels, fields = tally.recall()
                rows.append((kind, layout, str(tally.labels), f"{labels:.1%}", f"{fields:.1%}",
                             f"{per * 1000:.0f} ms"))
                if layout == "all":
                    misses += [f"{kind}: {m}" for m in tally.misses]
    head = ("path", "layout", "labels", "labels found", "fields grounded", "per label")
    widths = [max(len(r[i]) for r in (head, *rows)) for i in range(len(head))]
    for r in (head, *rows):
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    print(f"\ngoal: {form_corpus.GOAL:.0%} on each path; {len(corpus)} pages; load average "
          f"{load:.2f} at start, {os.cpu_count()} cores")
    for m in misses:
        print("missed:", " ".join(m.split())[:300])


if __name__ == "__main__":
    asyncio.run(main())
