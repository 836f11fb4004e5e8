"""The offline brain's instruction language: task text → typed clauses.

Pure and deterministic: :func:`parse_task` returns a tuple of clauses, or a
:class:`ParseError` that quotes the clause it could not read. No I/O.

Rules (these are the documented behaviour):

1. **Quotes.** An argument is quoted with ``"…"``, `` `…` `` or ``'…'``.
   There are no escapes: a quoted value ends at the next occurrence of the
   same quote character, so a value containing ``"`` is written with
   backticks or single quotes instead. A ``'`` opens a quote only when it is
   not preceded by a letter or digit (so ``don't`` is a word), and closes
   only when it is not followed by a letter or digit. Everything inside
   quotes is literal: separators, keywords, line breaks. A quote that is
   never closed is an error.
2. **Splitting.** Outside quotes the task is split into clauses at:

   - ``;``;
   - the words ``then`` and ``and`` standing alone (whitespace or the text's
     start before them; whitespace, ``,``, ``;`` or the text's end after);
   - a ``.`` followed by whitespace (the end of a sentence);
   - a line break whose next non-blank line starts with an instruction verb
     (``run``, ``execute``, ``verify``, ``write``, ``wait``, ``ask``,
     ``finish``, ``open``, ``go``, ``navigate``, ``click``, ``type``,
     ``press``, ``scroll``) or with a list marker (``-``, ``*``, ``•``,
     ``1.``, ``1)`` followed by a space; the marker is dropped; a marker at
     the very start of the task is dropped too). Any other line break is
     a space, so a clause may wrap over lines;
   - a comma followed (after whitespace) by an instruction verb.

   Runs of separators, with the whitespace and commas among them, count as
   one, so ``, and then``, ``, then``, ``, and`` and ``;\n`` are single
   separators. Any other comma is plain text.
3. **Trimming.** Each clause is stripped of surrounding whitespace and of
   trailing ``.`` and ``,`` outside quotes; empty clauses are dropped.
4. **Matching.** Keywords are case-insensitive; words are separated by
   whitespace. Each clause must match one of :data:`FORMS` exactly (no extra
   words). Optional words: ``the`` in the ``verify the …`` forms, ``file`` in
   ``verify the file PATH contains``, ``for`` in ``wait for N seconds``
   (``second`` also works), ``a``/``the`` in ``ask a human`` and ``on`` in
   ``click on "LABEL"``.
   ``CMD``, ``REGEX``, ``TEXT``, ``QUESTION``, ``ANSWER`` and ``LABEL`` must be
   quoted. ``PATH``, ``URL`` and ``KEY`` may be quoted or bare (one word);
   a bare ``PATH`` must contain ``/`` or ``.`` (quote anything else), which
   keeps ``verify the output contains …`` from reading ``output`` as a file.
   ``N`` is a bare number: an integer (``-?\\d+``) for the exit code, a
   decimal (``\\d+(\\.\\d+)?``, at most 3600) for ``wait``.
5. **Checks at parse time.** ``REGEX`` must compile with Python's ``re``;
   ``CMD`` must not be blank; a task without any clause is an error. The
   first failing clause is reported.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, Union

MAX_WAIT_SECONDS = 3600

FORMS: tuple[str, ...] = (
    "run `CMD`  /  execute `CMD`",
    "verify the output matches `REGEX`",
    'verify the output contains "TEXT"',
    "verify the exit code is N",
    'write "TEXT" to PATH',
    'verify PATH contains "TEXT"',
    "wait N seconds",
    'ask a human "QUESTION"',
    'finish with "ANSWER"',
    "open URL  /  go to URL  /  navigate to URL",
    'click "LABEL"',
    'type "TEXT"  /  type "TEXT" into "LABEL"',
    'type the output  /  type the output into "LABEL"',
    "press KEY  (e.g. press enter, press ctrl+s)",
    "scroll down  /  scroll up",
    'verify the screen shows "TEXT"',
)


# --------------------------------------------------------------------------- clauses


@dataclass(frozen=True)
class _Clause:
    #: the clause as written in the task (not part of equality)
    source: str = field(default="", compare=False, repr=False, kw_only=True)


@dataclass(frozen=True)
class Run(_Clause):
    command: str

    def render(self) -> str:
        return f"run {quote(self.command, prefer='`')}"


@dataclass(frozen=True)
class VerifyOutputMatches(_Clause):
    pattern: str

    def render(self) -> str:
        return f"verify the output matches {quote(self.pattern, prefer='`')}"


@dataclass(frozen=True)
class VerifyOutputContains(_Clause):
    text: str

    def render(self) -> str:
        return f"verify the output contains {quote(self.text)}"


@dataclass(frozen=True)
class VerifyExitCode(_Clause):
    code: int

    def render(self) -> str:
        return f"verify the exit code is {self.code}"


@dataclass(frozen=True)
class WriteText(_Clause):
    text: str
    path: str

    def render(self) -> str:
        return f"write {quote(self.text)} to {_render_path(self.path)}"


@dataclass(frozen=True)
class VerifyFileContains(_Clause):
    path: str
    text: str

    def render(self) -> str:
        return f"verify {_render_path(self.path)} contains {quote(self.text)}"


@dataclass(frozen=True)
class WaitSeconds(_Clause):
    seconds: float

    def render(self) -> str:
        return f"wait {format_number(self.seconds)} seconds"


@dataclass(frozen=True)
class AskHuman(_Clause):
    question: str

    def render(self) -> str:
        return f"ask a human {quote(self.question)}"


@dataclass(frozen=True)
class FinishWith(_Clause):
    answer: str

    def render(self) -> str:
        return f"finish with {quote(self.answer)}"


@dataclass(frozen=True)
class Open(_Clause):
    url: str

    def render(self) -> str:
        return f"open {_render_bare(self.url)}"


@dataclass(frozen=True)
class Click(_Clause):
    label: str

    def render(self) -> str:
        return f"click {quote(self.label)}"


@dataclass(frozen=True)
class TypeText(_Clause):
    text: str
    into: str | None = None

    def render(self) -> str:
        into = f" into {quote(self.into)}" if self.into is not None else ""
        return f"type {quote(self.text)}{into}"


@dataclass(frozen=True)
class TypeOutput(_Clause):
    """Types the last command's output (surrounding whitespace stripped)."""

    into: str | None = None

    def render(self) -> str:
        into = f" into {quote(self.into)}" if self.into is not None else ""
        return f"type the output{into}"


@dataclass(frozen=True)
class Press(_Clause):
    key: str

    def render(self) -> str:
        return f"press {_render_bare(self.key)}"


@dataclass(frozen=True)
class Scroll(_Clause):
    direction: Literal["up", "down"]

    def render(self) -> str:
        return f"scroll {self.direction}"


@dataclass(frozen=True)
class VerifyScreenShows(_Clause):
    text: str

    def render(self) -> str:
        return f"verify the screen shows {quote(self.text)}"


Clause = Union[
    Run, VerifyOutputMatches, VerifyOutputContains, VerifyExitCode, WriteText,
    VerifyFileContains, WaitSeconds, AskHuman, FinishWith, Open, Click, TypeText,
    TypeOutput, Press, Scroll, VerifyScreenShows,
]

#: clauses that need a screen (desktop or browser)
SCREEN_CLAUSES: tuple[type, ...] = (Open, Click, TypeText, TypeOutput, Press, Scroll,
                                    VerifyScreenShows)


@dataclass(frozen=True)
class ParseError:
    """The task could not be read. ``clause`` is the offending text as written."""

    clause: str
    reason: str


# --------------------------------------------------------------------------- rendering


def quote(value: str, prefer: str = '"') -> str:
    """Quote ``value`` with the first of ``prefer`` and the other quote
    characters that it does not contain."""
    for char in prefer + "".join(c for c in "\"`'" if c != prefer):
        if char not in value:
            return f"{char}{value}{char}"
    raise ValueError("a value containing \", ` and ' cannot be quoted")


def format_number(value: float) -> str:
    text = repr(float(value))
    if "e" in text or "n" in text:
        text = f"{value:.6f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def _bare_ok(value: str) -> bool:
    return (
        re.fullmatch(r"[^\s\"'`;,]+", value) is not None
        and value[-1] != "."
        and value.lower() not in _SEPARATOR_WORDS
    )


def _render_bare(value: str) -> str:
    return value if _bare_ok(value) else quote(value)


def _render_path(path: str) -> str:
    return path if _bare_ok(path) and _is_bare_path(path) else quote(path)


def _is_bare_path(word: str) -> bool:
    return "/" in word or "." in word


# --------------------------------------------------------------------------- scanning

_SEPARATOR_WORDS = frozenset({"and", "then"})
_MASK = "\x00"

_VERBS = (
    "run", "execute", "verify", "write", "wait", "ask", "finish", "open", "go", "navigate",
    "click", "type", "press", "scroll",
)

# Where a line starts: after a line break (or at the text's start), a list
# marker ("-", "*", "•", "1.", "1)") or an instruction verb.
_LINE_START = re.compile(
    r"(\A|\r\n|\r|\n)[ \t]*(?:([-*\u2022]|\d{1,3}[.)])[ \t]+|(?=(?:"
    + "|".join(_VERBS)
    + r")(?![A-Za-z0-9_])))",
    re.IGNORECASE,
)
_COMMA_BEFORE_VERB = re.compile(
    r",(?=\s*(?:" + "|".join(_VERBS) + r")(?![A-Za-z0-9_]))", re.IGNORECASE
)
_SEPARATOR_PART = r"(?:[;,]|\.(?=\s)|(?<!\S)(?:and|then)(?=[\s,;]|\Z))"
# No leading \s*: that would make a long run of spaces quadratic to scan.
# (Whitespace around a clause is trimmed anyway.)
_SEPARATOR = re.compile(rf"{_SEPARATOR_PART}(?:\s*{_SEPARATOR_PART})*", re.IGNORECASE)
_SPLITS = re.compile(r"[;.]|and|then", re.IGNORECASE)


@dataclass(frozen=True)
class _Span:
    start: int  # index of the opening quote
    end: int  # index after the closing quote
    char: str
    value: str


@dataclass(frozen=True)
class _Word:
    text: str


@dataclass(frozen=True)
class _Quoted:
    value: str


_Token = Union[_Word, _Quoted]


def _quoted_spans(text: str) -> list[_Span] | ParseError:
    spans: list[_Span] = []
    i = 0
    n = len(text)
    while i < n:
        char = text[i]
        if char in "\"`":
            j = text.find(char, i + 1)
        elif char == "'" and (i == 0 or not text[i - 1].isalnum()):
            j = i + 1
            while j < n and not (text[j] == "'" and (j + 1 == n or not text[j + 1].isalnum())):
                j += 1
            if j == n:
                j = -1
        else:
            i += 1
            continue
        if j < 0:
            fragment = text[i:].splitlines()[0] if text[i:].strip() else text[i:]
            return ParseError(
                clause=_shorten(fragment),
                reason=f"a quote opened with {char} is never closed",
            )
        spans.append(_Span(i, j + 1, char, text[i + 1 : j]))
        i = j + 1
    return spans


def _shorten(text: str, limit: int = 200) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _split(text: str, spans: Sequence[_Span]) -> list[tuple[int, int]]:
    """Clause boundaries (start, end) in ``text``, trimmed, empty ones dropped."""
    masked = list(text)
    for span in spans:
        masked[span.start : span.end] = _MASK * (span.end - span.start)
    flat = "".join(masked)
    # A line break ends a clause when the next line starts with a list marker
    # or an instruction verb, a comma when an instruction verb follows it;
    # otherwise they are plain text (so a long clause may wrap).
    for match in _LINE_START.finditer(flat):
        if match.group(1):
            masked[match.start(1)] = ";"
        if match.group(2):
            masked[match.start(2) : match.end(2)] = " " * len(match.group(2))
    for match in _COMMA_BEFORE_VERB.finditer(flat):
        masked[match.start()] = ";"
    flat = "".join(masked)
    pieces: list[tuple[int, int]] = []
    start = 0
    for match in _SEPARATOR.finditer(flat):
        if _SPLITS.search(match.group()):
            pieces.append((start, match.start()))
            start = match.end()
    pieces.append((start, len(flat)))
    trimmed = []
    for a, b in pieces:
        while a < b and flat[a].isspace():
            a += 1
        while b > a and (flat[b - 1].isspace() or flat[b - 1] in ".,"):
            b -= 1
        if a < b:
            trimmed.append((a, b))
    return trimmed


def _tokens(text: str, a: int, b: int, starts: dict[int, _Span]) -> list[_Token]:
    tokens: list[_Token] = []
    i = a
    while i < b:
        if text[i].isspace():
            i += 1
        elif i in starts:
            span = starts[i]
            tokens.append(_Quoted(span.value))
            i = span.end
        else:
            j = i
            while j < b and not text[j].isspace() and j not in starts:
                j += 1
            tokens.append(_Word(text[i:j]))
            i = j
    return tokens


# --------------------------------------------------------------------------- matching

# Pattern elements: a keyword (alternatives separated by "|"), an optional
# keyword ("?word"), or a slot: Q (quoted), PATH, BARE (quoted or one word),
# INT, NUM.
_Value = Union[str, int, float]


def _match(pattern: Sequence[str], tokens: Sequence[_Token]) -> list[_Value] | None:
    if not pattern:
        return [] if not tokens else None
    head, rest = pattern[0], pattern[1:]
    if head.startswith("?"):
        taken = _match([head[1:]] + list(rest), tokens)
        return taken if taken is not None else _match(rest, tokens)
    if not tokens:
        return None
    token, more = tokens[0], tokens[1:]
    value: _Value
    if head == "Q":
        if not isinstance(token, _Quoted):
            return None
        value = token.value
    elif head in ("BARE", "PATH"):
        if isinstance(token, _Quoted):
            value = token.value
        elif head == "PATH" and not _is_bare_path(token.text):
            return None
        else:
            value = token.text
    elif head == "INT":
        if not isinstance(token, _Word) or not re.fullmatch(r"-?\d+", token.text):
            return None
        value = int(token.text)
    elif head == "NUM":
        if not isinstance(token, _Word) or not re.fullmatch(r"\d+(?:\.\d+)?", token.text):
            return None
        value = float(token.text)
    else:
        if not isinstance(token, _Word) or token.text.lower() not in head.split("|"):
            return None
        tail = _match(rest, more)
        return tail
    tail = _match(rest, more)
    return None if tail is None else [value, *tail]


_Builder = Callable[[list[_Value], str], "Clause | ParseError"]


def _run(values: list[_Value], source: str) -> Clause | ParseError:
    command = str(values[0])
    if not command.strip():
        return ParseError(source, "the command is empty")
    return Run(command, source=source)


def _matches(values: list[_Value], source: str) -> Clause | ParseError:
    pattern = str(values[0])
    try:
        re.compile(pattern)
    except re.error as exc:
        return ParseError(source, f"`{pattern}` is not a valid regular expression ({exc})")
    return VerifyOutputMatches(pattern, source=source)


def _wait(values: list[_Value], source: str) -> Clause | ParseError:
    seconds = float(values[0])
    if seconds > MAX_WAIT_SECONDS:
        return ParseError(source, f"wait at most {MAX_WAIT_SECONDS} seconds")
    return WaitSeconds(seconds, source=source)


_GRAMMAR: tuple[tuple[tuple[str, ...], _Builder], ...] = (
    (("run|execute", "Q"), _run),
    (("verify", "?the", "output", "matches", "Q"), _matches),
    (("verify", "?the", "output", "contains", "Q"),
     lambda v, s: VerifyOutputContains(str(v[0]), source=s)),
    (("verify", "?the", "exit", "code", "is", "INT"),
     lambda v, s: VerifyExitCode(int(v[0]), source=s)),
    (("verify", "?the", "screen", "shows", "Q"),
     lambda v, s: VerifyScreenShows(str(v[0]), source=s)),
    (("verify", "?the", "?file", "PATH", "contains", "Q"),
     lambda v, s: VerifyFileContains(str(v[0]), str(v[1]), source=s)),
    (("write", "Q", "to", "PATH"), lambda v, s: WriteText(str(v[0]), str(v[1]), source=s)),
    (("wait", "?for", "NUM", "second|seconds"), _wait),
    (("ask", "?a|the", "human", "Q"), lambda v, s: AskHuman(str(v[0]), source=s)),
    (("finish", "with", "Q"), lambda v, s: FinishWith(str(v[0]), source=s)),
    (("open", "BARE"), lambda v, s: Open(str(v[0]), source=s)),
    (("go|navigate", "to", "BARE"), lambda v, s: Open(str(v[0]), source=s)),
    (("click", "?on", "Q"), lambda v, s: Click(str(v[0]), source=s)),
    (("type", "the", "output", "into", "Q"),
     lambda v, s: TypeOutput(str(v[0]), source=s)),
    (("type", "the", "output"), lambda v, s: TypeOutput(source=s)),
    (("type", "Q", "into", "Q"), lambda v, s: TypeText(str(v[0]), str(v[1]), source=s)),
    (("type", "Q"), lambda v, s: TypeText(str(v[0]), source=s)),
    (("press", "BARE"), lambda v, s: Press(str(v[0]), source=s)),
    (("scroll", "up|down"),
     lambda v, s: Scroll("up" if s.split()[-1].lower() == "up" else "down", source=s)),
)

# Hints for a clause whose first word is a known verb but whose shape is wrong.
_HINTS: dict[str, str] = {
    "run": "run `CMD` (the command in backticks or quotes)",
    "execute": "execute `CMD` (the command in backticks or quotes)",
    "verify": "; ".join(f for f in FORMS if f.startswith("verify")),
    "write": 'write "TEXT" to PATH',
    "wait": f"wait N seconds (N at most {MAX_WAIT_SECONDS})",
    "ask": 'ask a human "QUESTION"',
    "finish": 'finish with "ANSWER"',
    "open": "open URL",
    "go": "go to URL",
    "navigate": "navigate to URL",
    "click": 'click "LABEL"',
    "type": ('type "TEXT", type "TEXT" into "LABEL", type the output or '
             'type the output into "LABEL"'),
    "press": "press KEY",
    "scroll": "scroll down or scroll up",
}


def _parse_clause(source: str, tokens: Sequence[_Token]) -> Clause | ParseError:
    for pattern, build in _GRAMMAR:
        values = _match(pattern, tokens)
        if values is not None:
            return build(values, source)
    first = tokens[0]
    verb = first.text.lower() if isinstance(first, _Word) else ""
    if verb in _HINTS:
        return ParseError(source, f"expected {_HINTS[verb]}")
    return ParseError(source, "it is not one of the instructions the offline brain knows")


def parse_task(text: str) -> tuple[Clause, ...] | ParseError:
    """Split ``text`` into clauses and read each one; stop at the first error."""
    spans = _quoted_spans(text)
    if isinstance(spans, ParseError):
        return spans
    starts = {span.start: span for span in spans}
    clauses: list[Clause] = []
    for a, b in _split(text, spans):
        source = text[a:b]
        result = _parse_clause(source, _tokens(text, a, b, starts))
        if isinstance(result, ParseError):
            return ParseError(_shorten(result.clause), result.reason)
        clauses.append(result)
    if not clauses:
        return ParseError(text.strip(), "the task has no instructions")
    return tuple(clauses)
