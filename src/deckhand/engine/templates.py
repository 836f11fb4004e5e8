"""Templates and conditions of the workflow language: pure data lookups.

A template is ``{{ROOT.key.key[0]…}}`` with ROOT one of ``inputs``, ``steps``,
``vars``, ``loop``. Rendering looks the path up in plain JSON data (dict keys,
list indexes) and nothing else: no expressions, no calls, no attribute access.
A string that is exactly one template keeps the value's type; inside a longer
string a value is written as text (strings as they are, anything else as
compact JSON). A path that leads nowhere raises :class:`MissingPath`.

A condition compares two rendered values with a fixed operator (``eq`` …
``not_in``) or combines conditions (``all`` / ``any`` / ``not``).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from deckhand.engine.dsl import Compare

ROOTS = ("inputs", "steps", "vars", "loop")
_OPEN, _CLOSE = "{{", "}}"
_PATH_RE = re.compile(r"^[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+|\[[0-9]{1,9}\])*$")
_PART_RE = re.compile(r"\.?([A-Za-z0-9_-]+)|\[([0-9]+)\]")
_WHOLE_RE = re.compile(r"^\{\{\s*([^{}]*?)\s*\}\}$")


class TemplateError(ValueError):
    """A template that is not well formed (found when a definition is checked)."""


class EvaluationError(ValueError):
    """A template or condition that cannot be evaluated on this run's data."""


class MissingPath(EvaluationError):
    def __init__(self, path: str) -> None:
        super().__init__(f"template {{{{{path}}}}}: nothing at this path")
        self.path = path


class ConditionError(EvaluationError):
    pass


@dataclass(frozen=True)
class Path:
    text: str
    parts: tuple[str | int, ...]


def parse_path(text: str) -> Path:
    text = text.strip()
    if not _PATH_RE.match(text):
        raise TemplateError(
            f"{{{{{text}}}}} is not a path (a template is {{{{root.key.key[0]}}}}: "
            "keys and list indexes only)")
    parts: list[str | int] = []
    for m in _PART_RE.finditer(text):
        parts.append(m.group(1) if m.group(1) is not None else int(m.group(2)))
    return Path(text, tuple(parts))


def _pieces(text: str) -> Iterator[tuple[str, Path | None]]:
    """Literal text and templates, in order."""
    pos = 0
    while True:
        start = text.find(_OPEN, pos)
        if start < 0:
            if pos < len(text):
                yield text[pos:], None
            return
        end = text.find(_CLOSE, start + 2)
        if end < 0:
            raise TemplateError(f"unclosed {{{{ at character {start}")
        if start > pos:
            yield text[pos:start], None
        inner = text[start + 2:end]
        yield text[start:end + 2], parse_path(inner)
        pos = end + 2


def has_template(text: str) -> bool:
    return _OPEN in text


def paths_in(text: str) -> list[Path]:
    """The paths of the templates in ``text``; :class:`TemplateError` if malformed."""
    return [p for _, p in _pieces(text) if p is not None]


def strings_in(value: Any) -> Iterator[str]:
    """Every string inside a JSON value (where templates may be)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for v in value.values():
            yield from strings_in(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from strings_in(v)


# -- rendering ------------------------------------------------------------------------


def lookup(scope: Mapping[str, Any], path: Path) -> Any:
    node: Any = scope
    for part in path.parts:
        if isinstance(node, Mapping) and isinstance(part, str) and part in node:
            node = node[part]
        elif isinstance(node, list) and (isinstance(part, int) or part.isdigit()) \
                and int(part) < len(node):
            node = node[int(part)]
        else:
            raise MissingPath(path.text)
    return node


def as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, sort_keys=True)


def render(value: Any, scope: Mapping[str, Any]) -> Any:
    """``value`` with every template in its strings replaced (recursively)."""
    if isinstance(value, str):
        if _OPEN not in value:
            return value
        whole = _WHOLE_RE.match(value)
        if whole:
            return lookup(scope, parse_path(whole.group(1)))
        return "".join(text if path is None else as_text(lookup(scope, path))
                       for text, path in _pieces(value))
    if isinstance(value, Mapping):
        return {k: render(v, scope) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [render(v, scope) for v in value]
    return value


def render_text(value: str | None, scope: Mapping[str, Any]) -> str | None:
    """A templated string field, always as text."""
    if value is None:
        return None
    return as_text(render(value, scope))


# -- conditions ----------------------------------------------------------------------------


def evaluate(condition: Any, scope: Mapping[str, Any]) -> bool:
    from deckhand.engine.dsl import AllOf, AnyOf, NotOf

    if isinstance(condition, AllOf):
        return all(evaluate(c, scope) for c in condition.all)
    if isinstance(condition, AnyOf):
        return any(evaluate(c, scope) for c in condition.any)
    if isinstance(condition, NotOf):
        return not evaluate(condition.not_, scope)
    return _compare(condition, scope)


def _compare(c: Compare, scope: Mapping[str, Any]) -> bool:
    if c.op in ("exists", "not_exists"):
        try:
            render(c.left, scope)
            found = True
        except MissingPath:
            found = False
        return found if c.op == "exists" else not found
    left, right = render(c.left, scope), render(c.right, scope)
    op = c.op
    if op == "eq":
        return _equal(left, right)
    if op == "ne":
        return not _equal(left, right)
    if op in ("gt", "gte", "lt", "lte"):
        if not (_both_numbers(left, right) or (isinstance(left, str) and isinstance(right, str))):
            raise ConditionError(f"{op} compares two numbers or two strings, not "
                                 f"{_kind(left)} and {_kind(right)}")
        return bool({"gt": left > right, "gte": left >= right, "lt": left < right,
                     "lte": left <= right}[op])
    if op in ("contains", "not_contains"):
        found = _contains(left, right, op)
        return found if op == "contains" else not found
    if op in ("in", "not_in"):
        found = _contains(right, left, op)
        return found if op == "in" else not found
    if op == "matches":
        if not isinstance(left, str) or not isinstance(right, str):
            raise ConditionError(f"matches takes a string and a pattern, not {_kind(left)} "
                                 f"and {_kind(right)}")
        return _pattern(right).search(left) is not None
    raise ConditionError(f"unknown operator {op!r}")  # pragma: no cover - the model forbids it


def _kind(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, int | float):
        return "a number"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, list):
        return "a list"
    return "an object"


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _both_numbers(a: Any, b: Any) -> bool:
    return _is_number(a) and _is_number(b)


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if _both_numbers(a, b):
        return bool(a == b)
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    return bool(a == b)


def _contains(container: Any, item: Any, op: str) -> bool:
    if isinstance(container, str):
        if not isinstance(item, str):
            raise ConditionError(f"{op}: a string contains strings, not {_kind(item)}")
        return item in container
    if isinstance(container, list):
        return any(_equal(x, item) for x in container)
    if isinstance(container, Mapping):
        return isinstance(item, str) and item in container
    raise ConditionError(f"{op} needs a string, a list or an object, not {_kind(container)}")


@functools.lru_cache(maxsize=256)
def _pattern(text: str) -> re.Pattern[str]:
    try:
        return re.compile(text)
    except re.error as exc:
        raise ConditionError(f"invalid regular expression {text!r}: {exc}") from None
