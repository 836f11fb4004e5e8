"""A decision's tool calls within the context's limits, and what each call is
answered with on the next step."""

from __future__ import annotations

from deckhand.brains.plan import Plan, call_result_text, contract_action_type
from deckhand.core.actions import (
    ActionResult,
    Click,
    KeyPress,
    RunCommand,
    Screenshot,
    TypeText,
    Wait,
)
from deckhand.core.steps import Decision, StepRecord
from tests.support.steps import ctx


def test_plan_limits() -> None:
    plan = Plan(ctx(cua_version="v3", max_actions=2, allowed_actions=("click",),
                    terminal=False))
    plan.add({"id": 1}, [Click(x=1, y=1)])
    plan.add({"id": 2}, [Wait(seconds=1)])
    plan.add({"id": 3}, [RunCommand(command="ls")])
    plan.add({"id": 4}, [Click(x=2, y=2), Click(x=3, y=3)])
    plan.add({"id": 5}, [Click(x=4, y=4)])
    assert plan.actions == [Click(x=1, y=1), Click(x=2, y=2)]
    errors = [c.get("error") for c in plan.calls]
    assert "wait is not allowed" in errors[1] and "no terminal" in errors[2]
    assert plan.calls[3]["actions"] == [1, 2] and "first 1" in plan.calls[3]["note"]
    assert "at most 2" in errors[4]
    mixed = Plan(ctx(allowed_actions=("click",)))
    mixed.add({"id": 1}, [Click(x=1, y=1), Wait(seconds=1)])  # a batch: the allowed part runs
    assert mixed.actions == [Click(x=1, y=1)] and "not allowed" in mixed.calls[0]["note"]


def test_contract_action_types() -> None:
    assert contract_action_type(Click(x=1, y=1)) == "click"
    assert contract_action_type(TypeText(text="a")) == "type_text"
    assert contract_action_type(KeyPress(keys="ctrl+s")) == "key_combo"
    assert contract_action_type(KeyPress(keys="Return")) == "key_press"
    assert contract_action_type(Wait(seconds=1)) == "wait"
    assert contract_action_type(RunCommand(command="ls")) is None
    assert contract_action_type(Screenshot()) is None


def test_request_human_and_call_results() -> None:
    plan = Plan(ctx(cua_version="v1"))
    plan.request_human({"id": "h"}, {})
    plan.request_human({"id": "h2"}, {"question": "Which account?"})
    plan.add({"id": "a"}, [RunCommand(command="ls")])
    plan.add({"id": "b"}, [RunCommand(command="pwd")])
    assert plan.ask_human == "The agent needs a human.\nWhich account?"
    assert "one action per step" in plan.calls[3]["error"]
    step = StepRecord(number=1, human_note="the work one",
                      decision=Decision(actions=tuple(plan.actions)),
                      results=(ActionResult(ok=True, output="a.txt", exit_code=0),))
    assert call_result_text(plan.calls[0], step) == ("The human answered: the work one", False)
    assert call_result_text(plan.calls[2], step) == ("exit code 0\na.txt", False)
    assert call_result_text(plan.calls[3], step)[1] is True
