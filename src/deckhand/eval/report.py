"""The eval's table: per task passed, steps, input / cached / output tokens,
credits and wall time, then the totals and the pass rate; as a Rich table
for the terminal, plain text and JSON for the files ``--out`` writes."""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from deckhand.eval.runner import EvalOptions, TaskResult


@dataclass(frozen=True)
class Report:
    results: Sequence[TaskResult]
    wall_seconds: float
    options: EvalOptions
    server: str = "embedded"

    @property
    def passed(self) -> int:
        return sum(r.passed for r in self.results)

    @property
    def pass_rate(self) -> float:
        return self.passed / len(self.results) if self.results else 0.0

    def totals(self) -> dict[str, Any]:
        rs = self.results
        return {"tasks": len(rs), "passed": self.passed, "pass_rate": round(self.pass_rate, 4),
                "steps": sum(r.steps for r in rs),
                "input_tokens": sum(r.input_tokens for r in rs),
                "cached_tokens": sum(r.cached_tokens for r in rs),
                "output_tokens": sum(r.output_tokens for r in rs),
                "credits": sum(r.credits for r in rs),
                "task_seconds": round(sum(r.wall_seconds for r in rs), 2),
                "wall_seconds": round(self.wall_seconds, 2)}

    def as_dict(self) -> dict[str, Any]:
        o = self.options
        return {"phrasing": o.phrasing, "model": o.model, "provider": o.provider,
                "concurrency": o.concurrency, "server": self.server,
                "brains": sorted({r.brain for r in self.results if r.brain}),
                "totals": self.totals(), "tasks": [r.as_dict() for r in self.results]}

    def table(self) -> Table:
        o = self.options
        what = o.model or o.provider or "the server's default brain"
        table = Table(title=f"deckhand eval: {what}, {o.phrasing} phrasing", title_justify="left")
        for name, justify in (("task", "left"), ("kind", "left"), ("passed", "center"),
                              ("run", "left"), ("steps", "right"), ("input", "right"),
                              ("cached", "right"), ("output", "right"), ("credits", "right"),
                              ("wall s", "right")):
            table.add_column(name, justify=justify, no_wrap=True)  # type: ignore[arg-type]
        for r in self.results:
            table.add_row(r.id, r.kind, "yes" if r.passed else "NO", r.status, str(r.steps),
                          str(r.input_tokens), str(r.cached_tokens), str(r.output_tokens),
                          str(r.credits), f"{r.wall_seconds:.1f}")
        t = self.totals()
        table.add_section()
        table.add_row(f"total ({t['tasks']} tasks)", "", f"{t['passed']}/{t['tasks']}",
                      f"{100 * self.pass_rate:.0f} % passed", str(t["steps"]),
                      str(t["input_tokens"]), str(t["cached_tokens"]), str(t["output_tokens"]),
                      str(t["credits"]), f"{self.wall_seconds:.1f}")
        return table

    def failures(self) -> list[str]:
        lines = []
        for r in self.results:
            if r.passed:
                continue
            why = [c.detail for c in r.checks if not c.passed] or [r.error or r.status]
            lines.append(f"{r.id}: " + "; ".join(why))
            if r.error and r.checks:
                lines.append(f"  run: {r.error}")
        return lines

    def text(self, width: int = 140) -> str:
        console = Console(record=True, width=width, file=io.StringIO(), color_system=None)
        console.print(self.table())
        for line in self.failures():
            console.print(line, markup=False, highlight=False)
        return console.export_text()

    def save(self, out: Path) -> tuple[Path, Path]:
        """``out`` as JSON (``.json`` added when missing) and the text table beside it."""
        json_path = out if out.suffix == ".json" else out.with_name(out.name + ".json")
        text_path = json_path.with_suffix(".txt")
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(self.as_dict(), indent=2) + "\n")
        text_path.write_text(self.text())
        return json_path, text_path
