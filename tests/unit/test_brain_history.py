"""What a model is told of past steps: v5 compaction of old steps and screens,
steps it cannot replay summarized, one line per step, results as text."""

from __future__ import annotations

import pytest

from deckhand.brains.history import (
    Policy,
    ScreenBudget,
    history,
    layout,
    policy_for,
    result_text,
    step_line,
    trajectory_text,
)
from deckhand.core.actions import ActionResult, Click, RunCommand
from deckhand.core.steps import Decision, StepRecord
from tests.support.fake_providers import observation
from tests.support.steps import ctx, step


def test_v5_compacts_old_steps_and_screens() -> None:
    screens = [observation(1280, 800, color=(i, i, i)) for i in range(300)]
    steps = tuple(step(i + 1, Click(x=i, y=i), obs=screens[i]) for i in range(300))
    h = history(ctx(cua_version="v5", steps=steps, observation=screens[-1]))
    assert 16 <= len(h.turns) <= 16 + 3 * 8
    assert h.summary is not None and len(h.summary) <= 6100
    first_kept = h.turns[0].step.number
    assert f"Step {first_kept - 1}: click at ({first_kept - 2}, {first_kept - 2})" in h.summary
    assert "earlier steps omitted" in h.summary
    assert 3 <= sum(t.screen_after is not None for t in h.turns) <= 3 + 8 - 1
    assert h.turns[-1].screen_after is screens[-1]
    full = history(ctx(cua_version="v4", steps=steps, observation=screens[-1]))
    assert len(full.turns) == 300 and full.summary is None


def test_steps_without_provider_data_are_summarized() -> None:
    steps = (step(1, RunCommand(command="ls"), data=False),
             step(2, RunCommand(command="pwd")))
    h = history(ctx(steps=steps))
    assert h.summary == "Step 1: run `ls`"
    assert [t.step.number for t in h.turns] == [2]


def test_a_human_note_is_told_unless_a_call_carries_it() -> None:
    asked = StepRecord(number=1, human_note="use the blue one", decision=Decision(
        ask_human="which?", provider_data={"calls": [{"id": "c1", "human": True}]}))
    resumed = StepRecord(number=2, human_note="go on", decision=Decision(
        actions=(Click(x=1, y=1),), provider_data={"calls": [{"id": "c2", "actions": [0, 1]}]}))
    turns = history(ctx(steps=(asked, resumed))).turns
    assert [t.untold_note() for t in turns] == [None, "go on"]


def test_step_lines_and_result_texts() -> None:
    ran = step(3, RunCommand(command="make"), Click(x=1, y=2),
               results=(ActionResult(ok=True, output="built\n", exit_code=0),))
    assert step_line(ran) == "Step 3: run `make` → exit 0: built; click at (1, 2) (not done)"
    failed = step(4, Click(x=5, y=5), results=(ActionResult(ok=False, error="no screen"),))
    assert step_line(failed) == "Step 4: click at (5, 5) → failed: no screen"
    assert result_text(None) == "Not performed."
    assert result_text(ActionResult(ok=False)) == "Error: the action failed"
    assert result_text(ActionResult(ok=True, output="", exit_code=2)) == "exit code 2"
    long = result_text(ActionResult(ok=True, output="x" * 50), limit=10)
    assert long == "[… 40 characters cut]\n" + "x" * 10
    assert trajectory_text(ctx()) == "(no steps)"
    assert trajectory_text(ctx(steps=(ran, failed))).count("\n") == 1


@pytest.mark.parametrize("version,budget", [("v5", ScreenBudget()), ("v5", ScreenBudget(2, 5)),
                                            ("v3", ScreenBudget(3, 8))])
def test_screens_and_steps_go_in_chunks_at_the_same_steps(version: str,
                                                          budget: ScreenBudget) -> None:
    """The layout changes only once per chunk: at most keep + chunk - 1 screens,
    and the summary grows only at a step where screens are dropped as well."""
    policy = policy_for(version, budget)
    before = layout(0, policy)
    changes = 0
    for n in range(1, 300):
        now = layout(n, policy)
        shown = n - now.image_cut
        assert shown == n if n <= budget.kept \
            else budget.kept <= shown <= budget.kept + budget.chunk - 1
        assert now.image_cut - before.image_cut in (0, budget.chunk)
        if now.turn_cut != before.turn_cut:
            assert now.image_cut != before.image_cut
            assert n - now.turn_cut >= 16
        changes += now != before
        before = now
    assert changes <= 300 // budget.chunk + 1
    if version != "v5":
        assert before.turn_cut == 0


def test_a_budget_beyond_the_screens_a_run_keeps_is_refused() -> None:
    with pytest.raises(ValueError, match="screens a run keeps"):
        Policy(keep_turns=None, keep_images=8, summary_chars=100, chunk=8)


def test_earlier_turns_stay_as_they_were_between_chunks() -> None:
    """From one step to the next the turns shown before the new one are the same
    steps with the same screens, except at a step where a chunk is dropped."""
    screens = [observation(64, 40, color=(i, i, i)) for i in range(61)]
    steps = [step(i + 1, Click(x=i, y=i), obs=screens[i]) for i in range(60)]
    policy = policy_for("v5")
    seen = []
    for n in range(1, 61):
        h = history(ctx(steps=tuple(steps[:n]), observation=screens[n]), policy)
        seen.append([(t.step.number, t.screen_after) for t in h.turns])
    for n in range(1, 60):
        if layout(n + 1, policy) == layout(n, policy):
            assert seen[n][:-1] == seen[n - 1], n
