"""What a model brain is shown (screens, history, compaction), v5 recovery,
and the verifier's offline and scripted checks."""

from __future__ import annotations

import json

from deckhand.agent.context import remember
from deckhand.agent.recovery import REPEATS, same_screen, with_recovery_hint
from deckhand.agent.verifier import apply_verdict, offline_verdict, scripted_verdict
from deckhand.brains.history import history
from deckhand.brains.keys import xdotool_keys
from deckhand.brains.offline import next_decision
from deckhand.brains.plan import Plan
from deckhand.brains.screen import fit, model_screen
from deckhand.core.actions import ActionResult, Click, ReadFile, RunCommand, Wait
from deckhand.core.steps import OBSERVATIONS_KEPT, AgentContext, Decision, Outcome, StepRecord
from tests.support.fake_providers import observation, screenshot


def ctx(**kw) -> AgentContext:  # type: ignore[no-untyped-def]
    return AgentContext(run_id="r", task=kw.pop("task", "t"), **kw)


def step(n: int, *actions, results=None, obs=None, data=True) -> StepRecord:  # type: ignore[no-untyped-def]
    d = Decision(actions=actions, provider_data={"calls": []} if data else None)
    return StepRecord(number=n, decision=d, observation=obs,
                      results=results if results is not None
                      else tuple(ActionResult(ok=True) for _ in actions))


def test_fit_and_scaling_round_trip() -> None:
    assert fit(2560, 1600) == (1280, 800)
    assert fit(1920, 1080) == (1280, 720)
    assert fit(1024, 768) == (1024, 768)  # never enlarged
    assert fit(800, 2000) == (320, 800)
    s = model_screen(observation(1920, 1080))
    assert (s.width, s.height, s.real_width, s.real_height) == (1280, 720, 1920, 1080)
    assert s.to_real(0, 0) == (0, 0)
    assert s.to_real(1280, 720) == (1919, 1079)  # clamped onto the screen
    assert s.to_real(640.4, 360) == (961, 540)
    assert s.to_model(961, 540) == (641, 360)


def test_a_png_that_fits_is_passed_through() -> None:
    from deckhand.core.screens import Observation

    png = screenshot(800, 600, fmt="PNG")
    s = model_screen(Observation(screenshot_jpeg=png, width=800, height=600))
    assert s.data == png and s.media_type == "image/png"


def test_keys_in_the_machines_naming() -> None:
    assert xdotool_keys(["CTRL", "ENTER"]) == "ctrl+Return"
    assert xdotool_keys(["alt", "f4"]) == "alt+F4"
    assert xdotool_keys(["ArrowDown"]) == "Down"
    assert xdotool_keys(["cmd", "c"]) == "super+c"


def test_v5_compacts_old_steps_and_screens() -> None:
    screens = [observation(1280, 800, color=(i, i, i)) for i in range(300)]
    steps = tuple(step(i + 1, Click(x=i, y=i), obs=screens[i]) for i in range(300))
    h = history(ctx(cua_version="v5", steps=steps, observation=screens[-1]))
    assert len(h.turns) == 16
    assert h.summary is not None and len(h.summary) <= 6100
    assert "Step 284: click at (283, 283)" in h.summary
    assert "earlier steps omitted" in h.summary
    assert sum(t.screen_after is not None for t in h.turns) == 3
    assert h.turns[-1].screen_after is screens[-1]
    full = history(ctx(cua_version="v4", steps=steps, observation=screens[-1]))
    assert len(full.turns) == 300 and full.summary is None


def test_steps_without_provider_data_are_summarized() -> None:
    steps = (step(1, RunCommand(command="ls"), data=False),
             step(2, RunCommand(command="pwd")))
    h = history(ctx(steps=steps))
    assert h.summary == "Step 1: run `ls`"
    assert [t.step.number for t in h.turns] == [2]


def test_remember_forgets_old_screens() -> None:
    steps: list[StepRecord] = []
    for i in range(OBSERVATIONS_KEPT + 3):
        remember(steps, step(i + 1, obs=observation(320, 240)))
    kept = [s.observation is not None for s in steps]
    assert kept == [False] * 3 + [True] * OBSERVATIONS_KEPT


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


def test_recovery_hint_only_when_repeating_without_effect_in_v5() -> None:
    same = observation(640, 480)
    steps = tuple(step(i + 1, Click(x=5, y=5), obs=same) for i in range(REPEATS))
    stuck = ctx(cua_version="v5", steps=steps, observation=same)
    hinted = with_recovery_hint(stuck)
    assert hinted.hint is not None and "Re-plan" in hinted.hint
    assert "click at (5, 5)" in hinted.hint
    assert with_recovery_hint(stuck.model_copy(update={"cua_version": "v4"})).hint is None
    changed = stuck.model_copy(update={"observation": observation(640, 480, color=(200, 0, 0))})
    assert with_recovery_hint(changed).hint is None
    varied = stuck.model_copy(update={"steps": steps[:-1] + (step(3, Click(x=6, y=5),
                                                                   obs=same),)})
    assert with_recovery_hint(varied).hint is None
    waiting = tuple(step(i + 1, Wait(seconds=1), obs=same) for i in range(REPEATS))
    assert with_recovery_hint(ctx(cua_version="v5", steps=waiting, observation=same)).hint \
        is None


def test_same_screen_tolerates_reencoding() -> None:
    from deckhand.core.screens import Observation

    a = observation(640, 480)
    b = Observation(screenshot_jpeg=screenshot(640, 480, fmt="PNG"), width=640, height=480)
    assert same_screen(a, b)
    assert not same_screen(a, observation(640, 480, color=(250, 250, 0)))


def _offline_run(task: str, outputs: list[str]) -> AgentContext:
    """Steps as the offline brain would record them, with the given outputs."""
    context = ctx(task=task)
    outputs = list(outputs)
    while True:
        d = next_decision(context)
        if d.outcome is not None:
            return context.model_copy(update={"steps": (*context.steps, StepRecord(
                number=len(context.steps) + 1, decision=d))})
        results = tuple(
            ActionResult(ok=True, output=outputs.pop(0), exit_code=0)
            if isinstance(a, RunCommand) else ActionResult(ok=True, output="x")
            for a in d.actions)
        context = context.model_copy(update={"steps": (*context.steps, StepRecord(
            number=len(context.steps) + 1, decision=d, results=results))})


def test_offline_verdict_checks_the_verify_clauses_again() -> None:
    task = 'Run `echo 2.31` and verify the output matches `^2\\.` then run `true`'
    done = _offline_run(task, ["2.31\n", ""])
    verdict = offline_verdict(done)
    assert verdict.passed and "1 verify clause hold" in verdict.reason
    # the same trajectory with the output changed after the fact fails the check
    tampered = list(done.steps)
    tampered[0] = tampered[0].model_copy(update={"results": (
        ActionResult(ok=True, output="3.0\n", exit_code=0),)})
    bad = offline_verdict(done.model_copy(update={"steps": tuple(tampered)}))
    assert not bad.passed and "does not match" in bad.reason
    assert offline_verdict(ctx(task="Run `ls`", steps=())).passed


def test_offline_verdict_on_a_file_check() -> None:
    task = 'write "hello" to /tmp/a.txt then verify /tmp/a.txt contains "hello"'
    context = ctx(task=task, steps=(
        step(1, RunCommand(command="x")),
        StepRecord(number=2, decision=Decision(actions=(ReadFile(path="/tmp/a.txt"),)),
                   results=(ActionResult(ok=True, output="goodbye"),)),
    ))
    verdict = offline_verdict(context)
    assert not verdict.passed and "/tmp/a.txt does not contain" in verdict.reason


def test_scripted_verdict_and_apply() -> None:
    task = json.dumps({"script": [], "verdict": {"passed": False, "reason": "nope"}})
    verdict = scripted_verdict(ctx(task=task))
    assert not verdict.passed and verdict.reason == "nope"
    assert scripted_verdict(ctx(task="plain")).passed
    d = Decision(outcome=Outcome(success=True, answer="ok"))
    failed = apply_verdict(d, verdict)
    assert failed.outcome is not None and failed.outcome.error_code == "VERIFICATION_FAILED"
    assert failed.outcome.message == "Verification failed: nope"
