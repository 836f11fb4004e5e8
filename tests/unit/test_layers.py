"""The layer rules of docs/architecture.md as an import contract.

Every module of ``src/deckhand`` belongs to one layer, and a layer may import
only the layers listed for it. The graph is read from the source (every
``import`` and ``from … import``, including those inside functions), so a lazy
import does not hide a cycle. Imports that break a rule today and are being
moved out are listed in ``KNOWN_DEBT``; a new one fails the test, and so does
an entry that is no longer needed, so the list only shrinks.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "deckhand"

# module (or package) -> layer; the longest matching prefix wins.
LAYER_OF: dict[str, str] = {
    "deckhand": "base",
    "deckhand.errors": "base",
    "deckhand.ids": "base",
    "deckhand.config": "base",
    "deckhand.crypto": "base",
    "deckhand.scopes": "base",
    "deckhand.auth": "base",
    "deckhand.pricing": "base",
    "deckhand.core": "core",
    "deckhand.machine_agent": "machine_agent",
    "deckhand.brains": "brains",
    "deckhand.parse_pyautogui": "brains",
    "deckhand.store": "store",
    "deckhand.views": "store",
    "deckhand.artifacts": "store",
    "deckhand.machines": "machines",
    "deckhand.agent": "agent",
    "deckhand.events": "events",
    "deckhand.engine": "engine",
    "deckhand.metering": "engine",
    "deckhand.services": "services",
    "deckhand.api": "api",
    "deckhand.dashboard": "api",  # the web dashboard: pages over the API, served by the app
    "deckhand.client": "clients",
    "deckhand.cli": "clients",
    "deckhand.cli_run": "clients",
    "deckhand.cli_remote": "clients",
    "deckhand.cli_schedules": "clients",
    "deckhand.mcp": "clients",
    "deckhand.eval": "clients",
}

# layer -> the layers it may import (besides itself).
MAY_IMPORT: dict[str, frozenset[str]] = {
    "core": frozenset({"base"}),
    "base": frozenset(),
    "machine_agent": frozenset({"core", "base"}),
    "brains": frozenset({"core", "base"}),
    "store": frozenset({"core", "base"}),
    "machines": frozenset({"core", "base", "store", "machine_agent"}),
    "agent": frozenset({"core", "base", "brains"}),
    "events": frozenset({"core", "base", "store"}),
    "engine": frozenset({"core", "base", "store", "brains", "agent", "machines", "events"}),
    "services": frozenset({"core", "base", "store", "brains", "agent", "machines", "events",
                           "engine", "machine_agent"}),
    "api": frozenset({"core", "base", "store", "brains", "agent", "machines", "events", "engine",
                      "services", "machine_agent"}),
    "clients": frozenset({"core", "base", "store", "brains", "agent", "machines", "events",
                          "engine", "services", "api", "machine_agent"}),
}

# Finer rules inside the layers above.
BASE_MODULES = frozenset({"deckhand.errors", "deckhand.ids"})  # all that core and the agent see
MACHINE_AGENT_SURFACE = frozenset({"deckhand.machine_agent"})  # what others may import of it

# (importer, imported) pairs that break a rule today, each waiting for its move.
KNOWN_DEBT: frozenset[tuple[str, str]] = frozenset({
    # the app mounts the MCP server, which reads the API's request models
    ("deckhand.api.app", "deckhand.mcp.http"),
})


def module_name(path: Path, root: Path = PACKAGE) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(source: str, module: str, is_package: bool) -> set[str]:
    """Every ``deckhand`` module that ``source`` imports (absolute or relative)."""
    found: set[str] = set()
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            found.add(target)
            # `from deckhand.store import runs` imports the submodule deckhand.store.runs
            found.update(f"{target}.{a.name}" for a in node.names)
    return {m for m in found if m == "deckhand" or m.startswith("deckhand.")}


def import_graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in sorted(root.rglob("*.py")):
        if "migrations" in path.parts:
            continue
        name = module_name(path, root)
        graph[name] = imports_of(path.read_text(), name, path.name == "__init__.py")
    known = set(graph)
    # keep only names that are modules or packages (drop imported functions and classes)
    return {m: {t for t in ts if t in known and t != m} for m, ts in graph.items()}


def layer(module: str) -> str:
    best = max((p for p in LAYER_OF if module == p or module.startswith(p + ".")), key=len,
               default=None)
    if best is None:
        raise AssertionError(f"{module} is in no layer: add it to LAYER_OF (docs/architecture.md)")
    return LAYER_OF[best]


def breaks_rule(importer: str, imported: str) -> str | None:
    """Why ``importer`` may not import ``imported`` (None: it may)."""
    a, b = layer(importer), layer(imported)
    if b == "machine_agent" and a != "machine_agent" and imported not in MACHINE_AGENT_SURFACE:
        return f"{imported} is inside the machine agent; import its package root only"
    if a in ("core", "machine_agent") and b == "base" and imported not in BASE_MODULES \
            and imported != "deckhand":
        return f"{a} imports only the base modules {sorted(BASE_MODULES)}"
    if a == "brains" and imported == "deckhand.crypto":
        return "brains get a configured client; keys are opened by the engine or the api"
    if a != b and b not in MAY_IMPORT[a]:
        return f"layer {a} may not import layer {b}"
    return None


def violations(graph: Mapping[str, Iterable[str]]) -> set[tuple[str, str, str]]:
    return {(m, t, why) for m, ts in graph.items() for t in ts
            if (why := breaks_rule(m, t)) is not None}


def test_every_module_is_in_a_layer() -> None:
    for module in import_graph():
        layer(module)


def test_the_package_keeps_its_layer_rules() -> None:
    new = {(m, t, why) for m, t, why in violations(import_graph()) if (m, t) not in KNOWN_DEBT}
    assert not new, "imports that break docs/architecture.md's layer rules:\n" + "\n".join(
        f"  {m} -> {t}: {why}" for m, t, why in sorted(new))


def test_the_known_debt_has_no_paid_entries() -> None:
    current = {(m, t) for m, t, _ in violations(import_graph())}
    paid = KNOWN_DEBT - current
    assert not paid, f"these imports are gone or allowed now; remove them from KNOWN_DEBT: {paid}"


@pytest.mark.parametrize(("importer", "imported"), [
    ("deckhand.brains.offline", "deckhand.machines.remote"),   # a brain imports machines
    ("deckhand.brains.anthropic", "deckhand.store.runs"),      # a brain imports the store
    ("deckhand.store.runs", "deckhand.engine.runner"),         # the store imports the engine
    ("deckhand.machine_agent.server", "deckhand.store.db"),    # the machine agent imports the store
    ("deckhand.machine_agent.server", "deckhand.config"),      # … or the server's settings
    ("deckhand.agent.loop", "deckhand.store.steps"),           # the agent records something
    ("deckhand.core.steps", "deckhand.brains.base"),           # the vocabulary imports a layer
    ("deckhand.machines.service", "deckhand.machine_agent.terminal"),  # agent internals
    ("deckhand.engine.runner", "deckhand.api.runs"),           # the engine imports the api
])
def test_the_contract_fails_on_a_forbidden_import(importer: str, imported: str) -> None:
    graph = {m: set(ts) for m, ts in import_graph().items()}
    assert not {(m, t) for m, t, _ in violations(graph)} - KNOWN_DEBT
    graph.setdefault(importer, set()).add(imported)
    assert (importer, imported) in {(m, t) for m, t, _ in violations(graph)}


def test_the_graph_sees_lazy_and_relative_imports() -> None:
    source = ("def f():\n    from deckhand.store import runs\n"
              "from . import sibling\nfrom .inner import thing\n")
    found = imports_of(source, "deckhand.brains.offline", is_package=False)
    assert {"deckhand.store.runs", "deckhand.brains.sibling", "deckhand.brains.inner"} <= found
