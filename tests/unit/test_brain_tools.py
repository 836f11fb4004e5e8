"""The function tools: which are offered, how their arguments are read, and
the actions a call comes to."""

from __future__ import annotations

from deckhand.brains.plan import Plan
from deckhand.brains.screen import model_screen
from deckhand.brains.tools import (
    REQUEST_HUMAN,
    function_actions,
    function_specs,
    parse_arguments,
    plan_function_call,
)
from deckhand.core.actions import Click, KeyPress, RunCommand, Scroll, Wait, WriteFile
from deckhand.core.steps import AgentContext
from tests.support.fake_providers import observation


def ctx(**kw) -> AgentContext:  # type: ignore[no-untyped-def]
    return AgentContext(run_id="r", task="t", **kw)


def test_the_functions_offered_follow_the_machine() -> None:
    names = [s.name for s in function_specs(ctx(), screen=True)]
    assert names[0] == "click" and "run_command" in names and names[-1] == REQUEST_HUMAN.name
    bare = [s.name for s in function_specs(ctx(terminal=False), screen=False)]
    assert bare == [REQUEST_HUMAN.name]
    assert REQUEST_HUMAN.schema["required"] == ["question"]


def test_arguments_are_read_from_json() -> None:
    assert parse_arguments('{"x": 1}') == {"x": 1}
    assert parse_arguments({"x": 1}) == {"x": 1}
    assert parse_arguments(None) == {}
    assert parse_arguments("[1]") == "The arguments must be a JSON object."
    assert str(parse_arguments("{nope")).startswith("The arguments are not valid JSON")


def test_calls_become_actions_on_the_real_screen() -> None:
    screen = model_screen(observation(2560, 1600))
    assert function_actions("click", {"x": 640, "y": 400}, screen) == [Click(x=1280, y=800)]
    assert function_actions("key", {"keys": "ctrl+enter"}, screen) == [KeyPress(keys="ctrl+Return")]
    assert function_actions("scroll", {"direction": "up"}, screen) == \
        [Scroll(direction="up", amount=3)]
    assert function_actions("wait", {"seconds": 500}, screen) == [Wait(seconds=60.0)]
    assert function_actions("write_file", {"path": "/a"}, None) == [WriteFile(path="/a", content="")]
    assert function_actions("click", {"x": 1, "y": 1}, None) == "This machine has no screen."
    assert function_actions("fly", {}, screen) == "Unknown function 'fly'."
    assert str(function_actions("click", {"x": 1}, screen)).startswith("Invalid arguments")


def test_a_call_goes_into_the_plan() -> None:
    plan = Plan(ctx())
    plan_function_call(plan, {"id": "1"}, "run_command", '{"command": "ls"}', None)
    plan_function_call(plan, {"id": "2"}, REQUEST_HUMAN.name, '{"question": "Which?"}', None)
    plan_function_call(plan, {"id": "3"}, "run_command", "{bad", None)
    assert plan.actions == [RunCommand(command="ls")] and plan.ask_human == "Which?"
    assert plan.calls[1]["human"] is True and "not valid JSON" in plan.calls[2]["error"]
