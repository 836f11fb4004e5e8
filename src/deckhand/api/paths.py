"""Which methods are served at a path, read from the app's own OpenAPI
document (so routers nested in routers need no special care).

A path that a route spells out (``/v1/machines/health``) belongs to that
route alone: it is not also a value of a parameter elsewhere
(``/v1/machines/{machine_id}``). This gives ``PATCH /v1/machines/health`` a
405 with an honest ``Allow``, not a 422 about a machine id.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from starlette.types import Scope

HTTP_METHODS = frozenset({"GET", "PUT", "POST", "DELETE", "OPTIONS", "HEAD", "PATCH", "TRACE"})


@dataclass(frozen=True)
class PathTable:
    literal: dict[str, frozenset[str]]
    templated: tuple[tuple[re.Pattern[str], frozenset[str]], ...]

    @classmethod
    def build(cls, paths: dict[str, dict[str, object]]) -> PathTable:
        literal: dict[str, frozenset[str]] = {}
        templated = []
        for path, ops in paths.items():
            methods = frozenset(m.upper() for m in ops if m.upper() in HTTP_METHODS)
            if "GET" in methods:
                methods |= {"HEAD"}  # served with every GET
            if "{" in path:
                pattern = re.escape(path).replace(r"\{", "{").replace(r"\}", "}")
                templated.append((re.compile("^" + re.sub(r"{[^/}]+}", "[^/]+", pattern)
                                             + "$"), methods))
            else:
                literal[path] = methods
        return cls(literal, tuple(templated))

    def methods_at(self, path: str) -> list[str]:
        if path in self.literal:
            return sorted(self.literal[path])
        found: set[str] = set()
        for pattern, methods in self.templated:
            if pattern.match(path):
                found |= methods
        return sorted(found)


def path_table(scope: Scope) -> PathTable:
    app = scope["app"]
    table: PathTable | None = getattr(app.state, "path_table", None)
    if table is None:
        table = PathTable.build(app.openapi().get("paths", {}))
        app.state.path_table = table
    return table


def is_literal_path(scope: Scope) -> bool:
    return scope["path"] in path_table(scope).literal


def allowed_methods(scope: Scope) -> list[str]:
    """Every method served at this path (the ``Allow`` of a 405)."""
    return path_table(scope).methods_at(scope["path"])
