"""No test module imports another test module.

Importing a test module runs its module-level code and re-registers its tests
and fixtures in the importer (pytest collects what a module's namespace holds),
and it ties one test file's helpers to another's layout. What tests share lives
in tests/support/ or a conftest.py. This reads every module under tests/ with
``ast`` (imports inside functions included) and fails on an import of a
``test_*`` module, in any spelling.
"""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def _module(path: Path) -> str:
    parts = path.relative_to(TESTS.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _test_module(name: str) -> str | None:
    """The test module that importing ``name`` loads (None: none)."""
    parts = name.split(".")
    if parts[0] != "tests":
        return None
    for i, part in enumerate(parts):
        if part.startswith("test_"):
            return ".".join(parts[: i + 1])
    return None


def imported_test_modules(source: str, module: str, is_package: bool = False) -> set[str]:
    """The test modules that ``source`` (the module ``module``) imports."""
    package = module if is_package else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = parts[: len(parts) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            found.add(target)
            # `from tests.integration import test_workflows` imports that module
            found.update(f"{target}.{a.name}" for a in node.names)
    return {t for m in found if (t := _test_module(m)) is not None}


def test_no_module_under_tests_imports_a_test_module() -> None:
    offenders = {}
    for path in sorted(TESTS.rglob("*.py")):
        found = imported_test_modules(path.read_text(), _module(path), path.name == "__init__.py")
        if found:
            offenders[path.relative_to(TESTS.parent).as_posix()] = sorted(found)
    assert not offenders, ("test modules imported by other modules (move what they share to "
                           f"tests/support/ or a conftest.py): {offenders}")


def test_the_scan_finds_every_spelling() -> None:
    source = ("import tests.integration.test_workflows\n"
              "from tests.integration.test_llm_byok import BYOK_KEY\n"
              "from tests.unit import test_dsl_properties\n"
              "from .test_runs import helper\n"
              "from . import test_mcp\n"
              "def f():\n    from tests.unit.test_terminal import _alive\n"
              "from tests.support.runs import wait_for\n"
              "from tests.conftest import LiveServer\n"
              "import pytest\n")
    found = imported_test_modules(source, "tests.integration.test_x")
    assert found == {"tests.integration.test_workflows", "tests.integration.test_llm_byok",
                     "tests.unit.test_dsl_properties", "tests.integration.test_runs",
                     "tests.integration.test_mcp", "tests.unit.test_terminal"}
