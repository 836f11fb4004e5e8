"""The prompts every model brain sends, written once."""

from __future__ import annotations

from deckhand.brains import prompts
from deckhand.brains.screen import model_screen
from deckhand.brains.tools import POINT, REPORT_VERDICT
from deckhand.core.actions import ActionResult, RunCommand
from deckhand.core.steps import AgentContext, Decision, StepRecord
from tests.support.fake_providers import observation


def ctx(**kw) -> AgentContext:  # type: ignore[no-untyped-def]
    return AgentContext(run_id="r", task=kw.pop("task", "Open the report"), **kw)


def test_system_prompt_and_opening() -> None:
    assert prompts.system_prompt(ctx()) == prompts.DEFAULT_SYSTEM_PROMPT
    assert prompts.system_prompt(ctx(system_prompt="Be brief.")) == "Be brief."
    assert prompts.opening(ctx(), None) == "Task: Open the report"
    with_all = prompts.opening(ctx(instructions="Use Firefox."), "Step 1: run `ls`")
    assert with_all == ("Task: Open the report\n\nInstructions: Use Firefox.\n\n"
                        "Earlier steps (summarized):\nStep 1: run `ls`")


def test_ground_prompt_names_the_tool_and_the_image_size() -> None:
    text = prompts.ground_prompt("the Save button", model_screen(observation(2560, 1600)))
    assert text.startswith("Find this element in the screenshot (1280×800 pixels): "
                           "the Save button\n")
    assert f"Call {POINT.name} " in text


def test_verifier_prompt_carries_the_trajectory_and_the_answer() -> None:
    done = StepRecord(number=1, decision=Decision(actions=(RunCommand(command="ls"),)),
                      results=(ActionResult(ok=True, output="report.pdf", exit_code=0),))
    text = prompts.verifier_prompt(ctx(steps=(done,)), "", has_screen=False)
    assert "Step 1: run `ls` → exit 0: report.pdf" in text
    assert "The agent's final answer: (none)" in text
    assert "There is no screenshot" in text and text.endswith(f"Call {REPORT_VERDICT.name}.")
    assert REPORT_VERDICT.name in prompts.VERIFIER_SYSTEM_PROMPT
    shown = prompts.verifier_prompt(ctx(), "opened", has_screen=True)
    assert "The final screenshot is attached." in shown and "(no steps)" in shown
