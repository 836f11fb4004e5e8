"""The verifier's offline and scripted checks, and a verdict applied to a decision."""

from __future__ import annotations

import json

from deckhand.agent.verifier import apply_verdict
from deckhand.brains.offline import next_decision
from deckhand.brains.offline_verdict import offline_verdict
from deckhand.brains.scripted import scripted_verdict
from deckhand.core.actions import ActionResult, ReadFile, RunCommand
from deckhand.core.steps import AgentContext, Decision, Outcome, StepRecord
from tests.support.steps import ctx, step


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
