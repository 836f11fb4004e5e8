"""The machine agent's one exception base and its one conversion to answers.

Every exception class the agent package defines must derive from
:class:`AgentError` (found by walking the package, so a new class that does
not fails here), and each one becomes the same answer at every boundary: the
command dispatcher, ``MachineAgent.act`` and the files sub-API.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import pkgutil
from pathlib import Path
from typing import Any

import httpx
import pytest

import deckhand.machine_agent as agent_pkg
from deckhand.core.actions import Click
from deckhand.errors import DeckhandError, ErrorCode, ValidationFailed
from deckhand.machine_agent.commands import run_command
from deckhand.machine_agent.errors import AgentError, error_text
from deckhand.machine_agent.server import AgentOptions, MachineAgent, create_agent_app
from deckhand.machine_agent.settle import SettleError


def _exception_classes() -> list[type[BaseException]]:
    """Every exception class defined (not imported) in a module of the package."""
    found: list[type[BaseException]] = []
    for info in pkgutil.walk_packages(agent_pkg.__path__, agent_pkg.__name__ + "."):
        module = importlib.import_module(info.name)
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if obj.__module__ == module.__name__ and issubclass(obj, BaseException):
                found.append(obj)
    return sorted(found, key=lambda c: f"{c.__module__}.{c.__qualname__}")


CLASSES = _exception_classes()
RAISED = [c for c in CLASSES if c is not AgentError]


def test_the_walk_finds_the_agents_exceptions() -> None:
    names = {c.__name__ for c in CLASSES}
    assert {"AgentError", "OcrError", "BadParameters", "TerminalError", "ScreenError",
            "WindowError", "SettleError", "CommandFailed", "BrowserError", "FileAccessError",
            "InputError", "ClaimRefused", "DesktopError"} <= names


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_every_exception_derives_from_the_base(cls: type[BaseException]) -> None:
    assert issubclass(cls, AgentError), f"{cls.__module__}.{cls.__name__} is not an AgentError"
    assert issubclass(cls, DeckhandError)
    assert isinstance(cls.code, ErrorCode)


def test_codes_say_whose_mistake_it_is() -> None:
    by_name = {c.__name__: c for c in CLASSES}
    assert by_name["SettleError"].code is ErrorCode.VALIDATION_ERROR
    assert by_name["BadParameters"].code is ErrorCode.VALIDATION_ERROR
    assert by_name["CommandFailed"].code is ErrorCode.VALIDATION_ERROR
    assert by_name["ClaimRefused"].code is ErrorCode.CONFLICT
    assert by_name["DesktopError"].code is ErrorCode.MACHINE_ERROR
    assert issubclass(SettleError, ValidationFailed)  # as it was before the base


@pytest.mark.parametrize("cls", RAISED, ids=lambda c: c.__name__)
def test_the_conversion_answers_an_agent_error_with_its_message(cls: type[AgentError]) -> None:
    exc = cls("the reason\nand a second line")
    assert error_text(exc) == "the reason\nand a second line"
    assert error_text(exc, failed="click failed", parameters=True) == (
        "the reason\nand a second line")
    assert error_text(exc, whole=True) == "the reason\nand a second line"


def test_the_conversion_names_what_is_not_the_agents_own(
        caplog: pytest.LogCaptureFixture) -> None:
    boom = RuntimeError("first line\nsecond line")
    assert error_text(boom, failed="click failed") == "click failed: RuntimeError: first line"
    assert error_text(boom, whole=True) == (
        "machine agent error: RuntimeError: first line\nsecond line")
    assert error_text(ValueError("bad"), failed="x failed") == "x failed: ValueError: bad"
    log = logging.getLogger("test_agent_errors")
    with caplog.at_level(logging.ERROR, logger="test_agent_errors"):
        error_text(boom, log=log)
        error_text(AgentError("meant"), log=log)
    assert [r.exc_info is not None for r in caplog.records] == [True]


def test_the_dispatcher_reads_bad_parameters_as_the_callers() -> None:
    assert error_text(KeyError("x"), parameters=True) == "parameter 'x' is required"
    assert error_text(ValueError("not an int"), parameters=True) == "not an int"
    assert error_text(TypeError("not a str"), parameters=True) == "not a str"
    assert error_text(OSError("disk"), failed="f failed", parameters=True) == (
        "f failed: OSError: disk")


class _RaisingFiles:
    """Stands in for the workspace: every read raises the given exception."""

    def __init__(self, exc: Exception) -> None:
        self.exc = exc

    def read(self, path: str, binary: bool = False) -> Any:
        raise self.exc


@pytest.mark.parametrize("cls", RAISED, ids=lambda c: c.__name__)
async def test_every_boundary_gives_the_same_answer(cls: type[AgentError], tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "ws").mkdir()
    agent = MachineAgent("m-1", tmp_path / "ws", sandbox=False, state_dir=tmp_path / "state")

    async def refuse(action: Any) -> Any:
        raise cls("refused: the reason")

    monkeypatch.setattr(agent.screen, "act", refuse)
    monkeypatch.setattr(agent, "files", _RaisingFiles(cls("refused: the reason")))
    try:
        command = await run_command(agent, "click", {"x": 1, "y": 2, "settle": "none"})
        acted, frame = await agent.act(Click(x=1, y=2), settle="none")
        filed = await agent.files_op("read", {"path": "a.txt"})
        via_command = await run_command(agent, "file_read", {"path": "a.txt"})
    finally:
        await agent.close()
    answer = command.as_dict()
    assert answer.pop("duration_ms") >= 0
    assert answer == {"ok": False, "result": None, "error": "refused: the reason",
                      "screenshot": None}
    assert (acted.ok, acted.error, acted.data, frame) == (False, "refused: the reason", {}, None)
    assert (filed.ok, filed.error, filed.output) == (False, "refused: the reason", "")
    assert (via_command.ok, via_command.error) == (False, "refused: the reason")


async def test_an_unexpected_error_is_named_at_each_boundary(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "ws").mkdir()
    agent = MachineAgent("m-1", tmp_path / "ws", sandbox=False, state_dir=tmp_path / "state")

    async def crash(action: Any) -> Any:
        raise RuntimeError("kaput\ndetails")

    monkeypatch.setattr(agent.screen, "act", crash)
    try:
        command = await run_command(agent, "click", {"x": 1, "y": 2, "settle": "none"})
        acted, _ = await agent.act(Click(x=1, y=2), settle="none")
        missing = await run_command(agent, "click", {"y": 2})
        bad_settle = await run_command(agent, "click", {"x": 1, "y": 2, "settle": "soon"})
    finally:
        await agent.close()
    assert command.error == "click failed: RuntimeError: kaput"
    assert acted.error == "machine agent error: RuntimeError: kaput\ndetails"
    assert missing.error == "parameter 'x' (an integer) is required"
    assert bad_settle.error is not None and bad_settle.error.startswith("settle must be")


async def test_the_http_answers_carry_the_same_error(tmp_path: Path) -> None:
    """Through the agent's HTTP app (no lifespan: nothing is started): a refused
    claim, an unknown command and a refused file operation."""
    (tmp_path / "ws").mkdir()
    app = create_agent_app("m-1", tmp_path / "ws", "tok",
                           options=AgentOptions(sandbox=False, state_dir=str(tmp_path / "s")))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://agent",
                                 headers={"Authorization": "Bearer tok"}) as c:
        claim = await c.post("/claim", json={"machine_id": "m-2", "network": True})
        command = await c.post("/command", json={"command": "nope", "parameters": {}})
        files = await c.post("/files/read", json={"parameters": {"path": "/etc/passwd"}})
        bad = await c.post("/files/read", json={"parameters": {}})
    assert (claim.status_code, claim.json()) == (
        409, {"error": "this agent already serves machine m-1"})
    assert command.status_code == 200
    assert {k: command.json()[k] for k in ("ok", "result", "error")} == {
        "ok": False, "result": None, "error": "unknown command 'nope'"}
    assert files.status_code == 200 and files.json()["ok"] is False
    assert "outside the workspace" in files.json()["error"]
    assert (bad.status_code, bad.json()["error"]) == (
        200, "parameter 'path' (a string) is required")
