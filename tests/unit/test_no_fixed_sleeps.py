"""No fixed sleeps in the action path of any machine kind: after an action the
screen is settled adaptively (deckhand.machine_agent.settle). Every sleep
left in src/deckhand/machines/ and machine_agent/ is listed here with the reason it is not an
action's wait; a new one fails this test until it is either removed or
listed."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "deckhand"
ROOTS = ("machines", "machine_agent")  # the control plane and the machine agent
SLEEPS = {"sleep", "wait_for_timeout"}  # asyncio/time.sleep, Playwright's fixed wait
SETTLE_MODULE = "machine_agent/settle.py"  # polling the screen, and the caller's fixed settle

# (module, function) -> why that sleep is not a fixed wait after an action.
ALLOWED = {
    ("machine_agent/server.py", "MachineAgent._perform"): "the wait action itself (Wait.seconds)",
    ("machine_agent/browser.py", "Browser.wait"): "browser_wait with ms: the wait action itself",
    ("machine_agent/tab.py", "Tab.wait_for_load_state"): "browser_wait networkidle: polling "
                                                         "the requests in flight",
    ("machine_agent/desktop.py", "Desktop._start_apps"): "start-up: let openbox settle before xterm",
    ("machine_agent/desktop.py", "Desktop.close"): "shut-down: polling processes to exit",
    ("machine_agent/desktop.py", "_listening"): "start-up: polling x11vnc to listen",
    ("machine_agent/live.py", "_terminal_cast.down"): "live view: the terminal's frame interval",
    ("machine_agent/cgroups.py", "MachineCgroup.kill_all"): "delete: polling the cgroup "
                                                            "to empty",
    ("machine_agent/cgroups.py", "MachineCgroup.remove"): "delete: polling a dying "
                                                          "process out of the cgroup",
    ("machine_agent/netns.py", "MachineNet.start"): "start-up: polling the namespace to exist",
    ("machine_agent/netns.py", "_reap"): "shut-down: polling a helper to exit",
    ("machines/local.py", "LocalMachineProvider._wait_ready"): "start-up: polling the ready file",
    ("machines/local.py", "_terminate"): "shut-down: polling processes to exit",
    ("machines/pool.py", "WarmPool._fill_forever"): "retry backoff after a spare failed to start",
    ("machines/service.py", "MachineService.wait_running"): "provisioning: polling for running",
    ("machines/service.py", "MachineService._sweep_forever"): "the sweeper's interval",
}


def _sleeps(path: Path) -> list[tuple[str, int]]:
    """(qualified function name, line) of every sleep call in ``path``."""
    found: list[tuple[str, int]] = []

    def visit(node: ast.AST, scope: tuple[str, ...]) -> None:
        for child in ast.iter_child_nodes(node):
            inner = scope
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                inner = (*scope, child.name)
            if isinstance(child, ast.Call):
                f = child.func
                name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", None)
                if name in SLEEPS:
                    found.append((".".join(scope) or "<module>", child.lineno))
            visit(child, inner)

    visit(ast.parse(path.read_text(), str(path)), ())
    return found


def _all_sleeps() -> dict[tuple[str, str], list[int]]:
    out: dict[tuple[str, str], list[int]] = {}
    for path in sorted(p for root in ROOTS for p in (PACKAGE / root).rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel == SETTLE_MODULE:
            continue
        for where, line in _sleeps(path):
            out.setdefault((rel, where), []).append(line)
    return out


def test_no_sleep_in_the_action_path_outside_the_settle_module() -> None:
    unlisted = {f"{rel}:{lines[0]} in {where}" for (rel, where), lines in _all_sleeps().items()
                if (rel, where) not in ALLOWED}
    assert not unlisted, ("fixed sleeps in the machines' code (settle adaptively with "
                          f"deckhand.machine_agent.settle, or list them here with a reason): "
                          f"{sorted(unlisted)}")


def test_the_allow_list_has_no_stale_entries() -> None:
    stale = set(ALLOWED) - set(_all_sleeps())
    assert not stale, f"listed sleeps that are gone (remove them from ALLOWED): {stale}"


def test_the_scan_finds_sleeps_of_every_spelling(tmp_path: Path) -> None:
    src = tmp_path / "m.py"
    src.write_text("import asyncio, time\n"
                   "from asyncio import sleep\n"
                   "class A:\n"
                   "    async def f(self, page):\n"
                   "        await asyncio.sleep(0.4)\n"
                   "        time.sleep(1)\n"
                   "        await page.wait_for_timeout(50)\n"
                   "        def g():\n"
                   "            return sleep(2)\n"
                   "async def h():\n"
                   "    await asyncio.wait_for(x(), 1)\n")
    assert _sleeps(src) == [("A.f", 5), ("A.f", 6), ("A.f", 7), ("A.f.g", 9)]
