"""The checks of an eval task: each reads the machine's state after the run
(its files, a command's output, the browser's page, the form posts the
loopback site received) — never what the agent said it did.

A check is a frozen dataclass with ``async check(state) -> Checked``; the
state is a :class:`MachineState` (``eval/state.py`` reads it through the
API). :func:`parse_check` builds one from a task file's ``[[checks]]`` table.
"""

from __future__ import annotations

import dataclasses
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

TAIL = 160


class CheckSpecError(ValueError):
    """A ``[[checks]]`` table that is not a check."""


@dataclass(frozen=True)
class Checked:
    passed: bool
    detail: str


class MachineState(Protocol):
    """What a check may read of the machine (and of the loopback site)."""

    async def read_file(self, path: str) -> str | None:
        """The file's text, or None when it does not exist."""

    async def exists(self, path: str) -> bool: ...

    async def run(self, command: str) -> tuple[int | None, str]:
        """Run ``command`` in the machine's terminal: (exit code, output)."""

    async def page(self) -> tuple[str, str]:
        """The browser's page: (URL, its text)."""

    def posts(self, form: str) -> list[dict[str, str]]:
        """The fields of every post the loopback site received for ``form``."""


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= TAIL else "…" + text[-TAIL:]


@dataclass(frozen=True)
class _Check(ABC):
    """A check of the machine's state after a run; each kind says how."""

    kind: ClassVar[str] = ""

    def texts(self) -> list[str]:
        """Every string field (where placeholders may appear)."""
        out: list[str] = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, str):
                out.append(value)
            elif isinstance(value, dict):
                out += [*value, *value.values()]
        return out

    def filled(self, values: Mapping[str, str]) -> _Check:
        from deckhand.eval.tasks import fill

        changes: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, str):
                changes[f.name] = fill(value, values)
            elif isinstance(value, dict):
                changes[f.name] = {fill(k, values): fill(v, values) for k, v in value.items()}
        return dataclasses.replace(self, **changes)

    @abstractmethod
    async def check(self, state: MachineState) -> Checked:
        """Whether the state passes, and what was seen."""


@dataclass(frozen=True)
class FileExists(_Check):
    kind: ClassVar[str] = "file_exists"
    path: str

    async def check(self, state: MachineState) -> Checked:
        if await state.exists(self.path):
            return Checked(True, f"{self.path} exists")
        return Checked(False, f"{self.path} does not exist")


@dataclass(frozen=True)
class FileAbsent(_Check):
    kind: ClassVar[str] = "file_absent"
    path: str

    async def check(self, state: MachineState) -> Checked:
        if await state.exists(self.path):
            return Checked(False, f"{self.path} still exists")
        return Checked(True, f"{self.path} is gone")


@dataclass(frozen=True)
class FileContains(_Check):
    kind: ClassVar[str] = "file_contains"
    path: str
    text: str

    async def check(self, state: MachineState) -> Checked:
        content = await state.read_file(self.path)
        if content is None:
            return Checked(False, f"{self.path} does not exist")
        if self.text not in content:
            return Checked(False, f"{self.path} does not contain {self.text!r} "
                                  f"(it has: {_short(content)!r})")
        return Checked(True, f"{self.path} contains {self.text!r}")


@dataclass(frozen=True)
class FileEquals(_Check):
    """The file's text, surrounding whitespace ignored, is ``text``."""

    kind: ClassVar[str] = "file_equals"
    path: str
    text: str

    async def check(self, state: MachineState) -> Checked:
        content = await state.read_file(self.path)
        if content is None:
            return Checked(False, f"{self.path} does not exist")
        if content.strip() != self.text.strip():
            return Checked(False, f"{self.path} is {_short(content)!r}, not {self.text!r}")
        return Checked(True, f"{self.path} is {self.text.strip()!r}")


@dataclass(frozen=True)
class FileMatches(_Check):
    kind: ClassVar[str] = "file_matches"
    path: str
    regex: str

    async def check(self, state: MachineState) -> Checked:
        content = await state.read_file(self.path)
        if content is None:
            return Checked(False, f"{self.path} does not exist")
        if re.search(self.regex, content, re.MULTILINE) is None:
            return Checked(False, f"{self.path} does not match /{self.regex}/ "
                                  f"(it has: {_short(content)!r})")
        return Checked(True, f"{self.path} matches /{self.regex}/")


@dataclass(frozen=True)
class Command(_Check):
    """A command run in the machine after the run: its exit code (0 unless
    given) and, optionally, its output."""

    kind: ClassVar[str] = "command"
    command: str
    exit_code: int = 0
    output_contains: str | None = None
    output_matches: str | None = None

    async def check(self, state: MachineState) -> Checked:
        code, output = await state.run(self.command)
        ran = f"`{_short(self.command)}`"
        if code != self.exit_code:
            return Checked(False, f"{ran} exited with {code}, expected {self.exit_code} "
                                  f"(output: {_short(output)!r})")
        if self.output_contains is not None and self.output_contains not in output:
            return Checked(False, f"the output of {ran} does not contain "
                                  f"{self.output_contains!r} (it was: {_short(output)!r})")
        if self.output_matches is not None and re.search(self.output_matches, output,
                                                         re.MULTILINE) is None:
            return Checked(False, f"the output of {ran} does not match "
                                  f"/{self.output_matches}/ (it was: {_short(output)!r})")
        return Checked(True, f"{ran} exited with {code}")


@dataclass(frozen=True)
class FormPost(_Check):
    """The loopback site received a post of ``form`` carrying ``fields``
    (exact values, surrounding whitespace ignored); with ``count``, exactly
    that many posts of the form."""

    kind: ClassVar[str] = "form_post"
    form: str
    fields: dict[str, str] = dataclasses.field(default_factory=dict)
    count: int | None = None

    async def check(self, state: MachineState) -> Checked:
        posts = state.posts(self.form)
        if self.count is not None and len(posts) != self.count:
            return Checked(False, f"the site received {len(posts)} post(s) of {self.form!r}, "
                                  f"expected {self.count}: {posts}")
        for post in posts:
            if all(post.get(k, "").strip() == v.strip() for k, v in self.fields.items()):
                return Checked(True, f"the site received {self.form!r} with {self.fields}")
        if not posts:
            return Checked(False, f"the site received no post of {self.form!r}")
        return Checked(False, f"no post of {self.form!r} carries {self.fields} "
                              f"(received: {posts})")


@dataclass(frozen=True)
class PageShows(_Check):
    """The machine's browser page shows ``text`` (case and spacing ignored)."""

    kind: ClassVar[str] = "page_shows"
    text: str

    async def check(self, state: MachineState) -> Checked:
        url, text = await state.page()
        if " ".join(self.text.lower().split()) in " ".join(text.lower().split()):
            return Checked(True, f"the page {url} shows {self.text!r}")
        return Checked(False, f"the page {url} does not show {self.text!r} "
                              f"(it shows: {_short(text)!r})")


Check = FileExists | FileAbsent | FileContains | FileEquals | FileMatches | Command | \
    FormPost | PageShows
CHECKS: dict[str, type[_Check]] = {c.kind: c for c in (
    FileExists, FileAbsent, FileContains, FileEquals, FileMatches, Command, FormPost,
    PageShows)}


def parse_check(raw: Any) -> Check:
    """A check from its table: ``type`` names it, the other keys are its fields."""
    if not isinstance(raw, dict):
        raise CheckSpecError("must be a table")
    kind = raw.get("type")
    cls = CHECKS.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise CheckSpecError(f"type must be one of {', '.join(CHECKS)}, not {kind!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    args = {k: v for k, v in raw.items() if k != "type"}
    unknown = sorted(set(args) - set(fields))
    if unknown:
        raise CheckSpecError(f"{kind}: unknown field(s) {', '.join(unknown)} "
                             f"(its fields are {', '.join(fields)})")
    for name, f in fields.items():
        required = (f.default is dataclasses.MISSING
                    and f.default_factory is dataclasses.MISSING)
        if required and name not in args:
            raise CheckSpecError(f"{kind}: {name} is missing")
        if name not in args:
            continue
        value = args[name]
        if name in ("exit_code", "count"):
            ok = isinstance(value, int) and not isinstance(value, bool)
            want = "a whole number"
        elif name == "fields":
            ok = isinstance(value, dict) and all(isinstance(v, str) for v in value.values())
            want = "a table of name = \"value\""
        else:
            ok = isinstance(value, str)
            want = "a string"
        if not ok:
            raise CheckSpecError(f"{kind}: {name} must be {want}, not {value!r}")
        if name in ("regex", "output_matches"):
            try:
                re.compile(value)
            except re.error as exc:
                raise CheckSpecError(f"{kind}: {name} is not a valid regular expression "
                                     f"({exc})") from None
    return cls(**args)  # type: ignore[return-value]
