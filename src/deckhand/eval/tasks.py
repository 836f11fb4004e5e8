"""Eval tasks: the file format (docs/eval.md) and its loader.

A task is one TOML file: what machine it needs, how the machine is set up,
the goal in two phrasings (natural language, and the offline brain's
instruction language) and the checks that read the machine's state
afterwards. :func:`load_tasks` reads a directory, a glob or a file list and
raises :class:`TaskFileError` naming the file and the field for any mistake.
"""

from __future__ import annotations

import glob
import os
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deckhand.errors import ValidationFailed
from deckhand.eval.checks import Check, CheckSpecError, parse_check

BUNDLED = Path(__file__).parent / "tasks"
KINDS = ("terminal", "browser", "desktop")
PHRASINGS = ("natural", "offline")
#: the placeholders a task may use: replaced for each attempt
PLACEHOLDERS = ("site", "port")
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_TOP_KEYS = {"id", "kind", "category", "goal", "offline", "max_steps", "timeout_seconds",
             "setup", "checks"}
_SETUP_KEYS = {"files", "commands", "window"}


class TaskFileError(ValidationFailed):
    """A task file that cannot be used: the message names the file and what is wrong."""


@dataclass(frozen=True)
class Setup:
    #: workspace path -> content, written before the run
    files: Mapping[str, str] = field(default_factory=dict)
    #: shell commands run in the machine's terminal, in order, before the run
    commands: tuple[str, ...] = ()
    #: desktop: a window whose title contains this is awaited, maximised and raised
    window: str | None = None


@dataclass(frozen=True)
class Task:
    id: str
    kind: str
    goal: str
    offline: str
    checks: tuple[Check, ...]
    setup: Setup = field(default_factory=Setup)
    category: str = ""
    max_steps: int = 30
    timeout_seconds: int = 300
    source: str = ""

    def phrasing(self, which: str) -> str:
        return self.offline if which == "offline" else self.goal


def fill(text: str, values: Mapping[str, str]) -> str:
    """``text`` with each ``{{name}}`` replaced by ``values[name]``."""
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], text)


def placeholders_in(text: str) -> set[str]:
    return {m.group(1) for m in _PLACEHOLDER.finditer(text)}


# --------------------------------------------------------------------------- finding files


def task_files(specs: Iterable[str] | None) -> list[Path]:
    """The task files ``specs`` name (directories: every ``*.toml`` below
    them; globs; files); the bundled suite when ``specs`` is empty."""
    specs = list(specs or [])
    if not specs:
        return sorted(BUNDLED.rglob("*.toml"))
    found: list[Path] = []
    for spec in specs:
        path = Path(os.path.expanduser(spec))
        if path.is_dir():
            matches = sorted(path.rglob("*.toml"))
        elif path.is_file():
            matches = [path]
        else:
            matches = sorted(Path(p) for p in glob.glob(os.path.expanduser(spec), recursive=True)
                             if Path(p).is_file())
        if not matches:
            raise TaskFileError(f"--tasks {spec!r}: no task files there (a directory, a glob "
                                "such as 'tasks/**/*.toml', or a file)")
        found += [m for m in matches if m not in found]
    return found


def load_tasks(specs: Iterable[str] | None = None) -> list[Task]:
    """Every task ``specs`` names (see :func:`task_files`), ids unique."""
    tasks: list[Task] = []
    seen: dict[str, str] = {}
    for path in task_files(specs):
        task = load_task(path)
        if task.id in seen:
            raise TaskFileError(f"{path}: the id {task.id!r} is already used by {seen[task.id]}")
        seen[task.id] = str(path)
        tasks.append(task)
    return tasks


def load_task(path: Path) -> Task:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise TaskFileError(f"{path}: not valid TOML ({exc})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TaskFileError(f"{path}: cannot be read ({exc})") from None
    try:
        return parse_task(data, source=str(path), default_id=path.stem)
    except TaskFileError as exc:
        raise TaskFileError(f"{path}: {exc.message}") from None


# --------------------------------------------------------------------------- the format


def parse_task(data: Mapping[str, Any], *, source: str = "", default_id: str = "") -> Task:
    """A task from a decoded TOML table (errors name the field, not the file)."""
    unknown = sorted(set(data) - _TOP_KEYS)
    if unknown:
        raise TaskFileError(f"unknown field(s) {', '.join(unknown)} (the fields are "
                            f"{', '.join(sorted(_TOP_KEYS))})")
    task_id = _str(data, "id", default_id)
    if not _ID.match(task_id):
        raise TaskFileError(f"id {task_id!r} must be 1-64 lowercase letters, digits, "
                            "'.', '_' or '-'")
    kind = _str(data, "kind", None)
    if kind not in KINDS:
        raise TaskFileError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
    goal = _str(data, "goal", None).strip()
    offline = _str(data, "offline", None).strip()
    for name, text in (("goal", goal), ("offline", offline)):
        if not text:
            raise TaskFileError(f"{name} is empty")
    setup = _setup(data.get("setup", {}))
    raw_checks = data.get("checks")
    if not isinstance(raw_checks, list) or not raw_checks:
        raise TaskFileError("checks: at least one [[checks]] table is needed (a task is "
                            "scored by reading the machine's state, never the agent's word)")
    checks = []
    for n, raw in enumerate(raw_checks, 1):
        try:
            checks.append(parse_check(raw))
        except CheckSpecError as exc:
            raise TaskFileError(f"checks #{n}: {exc}") from None
    max_steps = _int(data, "max_steps", 30, 1, 1000)
    timeout = _int(data, "timeout_seconds", 300, 10, 86400)
    texts = [goal, offline, *setup.files, *setup.files.values(), *setup.commands,
             *(t for c in checks for t in c.texts())]
    bad = sorted(set().union(*(placeholders_in(t) for t in texts)) - set(PLACEHOLDERS))
    if bad:
        raise TaskFileError(f"unknown placeholder(s) {', '.join('{{' + b + '}}' for b in bad)} "
                            f"(known: {', '.join('{{' + p + '}}' for p in PLACEHOLDERS)})")
    return Task(id=task_id, kind=kind, goal=goal, offline=offline, checks=tuple(checks),
                setup=setup, category=_str(data, "category", ""), max_steps=max_steps,
                timeout_seconds=timeout, source=source)


def _setup(raw: Any) -> Setup:
    if not isinstance(raw, dict):
        raise TaskFileError("setup must be a table ([setup])")
    unknown = sorted(set(raw) - _SETUP_KEYS)
    if unknown:
        raise TaskFileError(f"setup: unknown field(s) {', '.join(unknown)} (the fields are "
                            f"{', '.join(sorted(_SETUP_KEYS))})")
    files = raw.get("files", {})
    if not isinstance(files, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in files.items()):
        raise TaskFileError("setup.files must be a table of path = \"content\"")
    for path in files:
        if not path or path.startswith("/") or ".." in Path(path).parts:
            raise TaskFileError(f"setup.files: {path!r} must be a relative path inside the "
                                "workspace")
    commands = raw.get("commands", [])
    if not isinstance(commands, list) or not all(isinstance(c, str) and c.strip()
                                                 for c in commands):
        raise TaskFileError("setup.commands must be a list of non-empty strings")
    window = raw.get("window")
    if window is not None and (not isinstance(window, str) or not window.strip()):
        raise TaskFileError("setup.window must be a non-empty string (part of a window title)")
    return Setup(files=dict(files), commands=tuple(commands), window=window)


def _str(data: Mapping[str, Any], name: str, default: str | None) -> str:
    value = data.get(name, default)
    if value is None:
        raise TaskFileError(f"{name} is missing")
    if not isinstance(value, str):
        raise TaskFileError(f"{name} must be a string, not {type(value).__name__}")
    return value


def _int(data: Mapping[str, Any], name: str, default: int, low: int, high: int) -> int:
    value = data.get(name, default)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise TaskFileError(f"{name} must be a whole number from {low} to {high}, "
                            f"not {value!r}")
    return value
