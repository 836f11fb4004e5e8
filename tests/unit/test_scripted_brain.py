"""The scripted brain: the test double that plays back decisions."""

from __future__ import annotations

import json

import pytest

from deckhand.brains.scripted import DEFAULT_ANSWER, ScriptedBrain, parse_script
from deckhand.core.actions import ActionResult, RunCommand, Wait, WriteFile
from deckhand.core.steps import AgentContext, Decision, Outcome, StepRecord, TokenUsage
from deckhand.errors import BrainError


def context(task: str = "scripted", steps: int = 0) -> AgentContext:
    decision = Decision(text="earlier")
    return AgentContext(
        run_id="run_1",
        task=task,
        steps=tuple(StepRecord(number=n + 1, decision=decision) for n in range(steps)),
    )


async def test_returns_the_decision_for_the_step_number() -> None:
    script = [
        Decision(actions=(RunCommand(command="echo 1"),), text="one"),
        Decision(ask_human="go on?"),
        Decision(outcome=Outcome(success=False, error_code="VERIFICATION_FAILED", message="no")),
    ]
    brain = ScriptedBrain(script)
    assert brain.name == "scripted"
    assert [await brain.decide(context(steps=n)) for n in range(3)] == script
    # pure: asking again for the same context gives the same decision
    assert await brain.decide(context(steps=1)) == script[1]


async def test_an_exhausted_script_succeeds() -> None:
    brain = ScriptedBrain([Decision(text="thinking")], answer="all done")
    decision = await brain.decide(context(steps=1))
    assert decision.outcome == Outcome(success=True, answer="all done")
    assert (await ScriptedBrain([]).decide(context())).outcome == Outcome(
        success=True, answer=DEFAULT_ANSWER
    )


def test_dict_entries_become_decisions() -> None:
    decisions = parse_script([
        {"actions": [{"kind": "terminal", "command": "sleep 30"},
                     {"kind": "write_file", "path": "/tmp/a", "content": "x"},
                     {"kind": "wait", "seconds": 0.5}],
         "text": "working", "usage": {"input_tokens": 10, "output_tokens": 2}},
        {"outcome": {"success": True, "answer": "ok"}},
    ])
    assert decisions[0].actions == (
        RunCommand(command="sleep 30"), WriteFile(path="/tmp/a", content="x"), Wait(seconds=0.5)
    )
    assert decisions[0].usage == TokenUsage(input_tokens=10, output_tokens=2)
    assert decisions[1].outcome == Outcome(success=True, answer="ok")


@pytest.mark.parametrize(
    ("entry", "needle"),
    [
        ({"action": []}, "unknown keys: action"),
        ({"actions": [{"kind": "teleport"}]}, "not a valid decision"),
        ({"actions": [{"kind": "terminal", "command": "x", "typo": 1}]}, "not a valid decision"),
        ("run ls", "not an object"),
    ],
)
def test_malformed_entries_are_rejected(entry: object, needle: str) -> None:
    with pytest.raises(BrainError, match=needle):
        parse_script([entry])  # type: ignore[list-item]


async def test_from_task_reads_a_json_script() -> None:
    task = json.dumps({"script": [
        {"actions": [{"kind": "terminal", "command": "sleep 30"}]},
        {"outcome": {"success": True, "answer": "ok"}},
    ]})
    brain = ScriptedBrain.from_task(task)
    first = await brain.decide(context(task))
    assert first.actions == (RunCommand(command="sleep 30"),)
    second = await brain.decide(context(task, steps=1))
    assert second.outcome == Outcome(success=True, answer="ok")


async def test_from_task_with_plain_text_succeeds_at_once() -> None:
    brain = ScriptedBrain.from_task("Open the pod bay doors")
    decision = await brain.decide(context("Open the pod bay doors"))
    assert decision.outcome == Outcome(success=True, answer=DEFAULT_ANSWER)
    assert (await ScriptedBrain.from_task('{"not": "a script"}').decide(context())).outcome


def test_from_task_takes_an_answer_and_rejects_a_bad_script() -> None:
    assert ScriptedBrain.from_task('{"script": [], "answer": "fine"}').answer == "fine"
    with pytest.raises(BrainError):
        ScriptedBrain.from_task('{"script": {"actions": []}}')
    with pytest.raises(BrainError):
        ScriptedBrain.from_task('{"script": [{"outcome": "yes"}]}')


async def test_without_a_script_it_reads_each_runs_task() -> None:
    brain = ScriptedBrain()
    task_a = json.dumps({"script": [{"text": "a"}]})
    task_b = json.dumps({"script": [{"ask_human": "b?"}]})
    assert (await brain.decide(context(task_a))).text == "a"
    assert (await brain.decide(context(task_b))).ask_human == "b?"
    assert (await brain.decide(context(task_b, steps=1))).outcome == Outcome(
        success=True, answer=DEFAULT_ANSWER
    )
    bad = await brain.decide(context('{"script": [{"bogus": 1}]}'))
    assert bad.outcome is not None and bad.outcome.error_code == "BRAIN_ERROR"
    assert "unknown keys: bogus" in (bad.outcome.message or "")


async def test_results_do_not_change_the_script() -> None:
    brain = ScriptedBrain([Decision(text="a"), Decision(text="b")])
    failed = StepRecord(number=1, decision=Decision(text="a"),
                        results=(ActionResult(ok=False, error="boom"),))
    ctx = AgentContext(run_id="r", task="t", steps=(failed,))
    assert (await brain.decide(ctx)).text == "b"
