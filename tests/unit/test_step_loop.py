"""One round trip per step: the loop asks a machine that can for the settled
screen with the step's last action, and the verifier looks at that screen
instead of asking the machine again."""

from __future__ import annotations

import pytest

from deckhand.agent.loop import run_step
from deckhand.brains.scripted import ScriptedBrain
from deckhand.core.actions import Action, ActionResult, Click
from deckhand.core.screens import Observation
from deckhand.core.steps import AgentContext, Decision

pytestmark = pytest.mark.asyncio


def _screen(tag: bytes) -> Observation:
    return Observation(screenshot_jpeg=b"\xff\xd8" + tag, width=8, height=8)


class SettlingMachine:
    """Records which calls the loop makes; every screen it returns is new."""

    def __init__(self) -> None:
        self.machine_id = "m"
        self.calls: list[str] = []

    async def act(self, action: Action) -> ActionResult:
        self.calls.append("act")
        return ActionResult(ok=True)

    async def act_and_observe(self, action: Action, *, settle: object = None
                              ) -> tuple[ActionResult, Observation | None]:
        self.calls.append("act_and_observe")
        return ActionResult(ok=True), _screen(b"after")

    async def observe(self) -> Observation | None:
        self.calls.append("observe")
        return _screen(b"before")

    async def health(self) -> bool:
        return True


class PlainMachine(SettlingMachine):
    """Answers ``act_and_observe`` with the result only (no settled screen to
    give), as the Machine protocol allows."""

    async def act_and_observe(self, action: Action, *, settle: object = None
                              ) -> tuple[ActionResult, Observation | None]:
        self.calls.append("act_and_observe")
        return ActionResult(ok=True), None


async def _decided(_: Decision) -> None:
    return None


def _context(cua: str = "v5") -> AgentContext:
    return AgentContext(run_id="r", task="t", cua_version=cua)


async def test_the_last_action_of_a_step_brings_back_the_settled_screen() -> None:
    machine = SettlingMachine()
    brain = ScriptedBrain([{"actions": [{"kind": "click", "x": 1, "y": 1},
                                        {"kind": "click", "x": 2, "y": 2}]}])
    outcome = await run_step(brain, machine, _context(), _decided)
    assert machine.calls == ["observe", "act", "act_and_observe"]
    assert list(outcome.decision.actions) == [Click(x=1, y=1), Click(x=2, y=2)]
    assert all(r.ok for r in outcome.results)


async def test_the_verifier_sees_the_screen_returned_with_the_action() -> None:
    machine = SettlingMachine()
    brain = ScriptedBrain([{"actions": [{"kind": "click", "x": 1, "y": 1}],
                            "outcome": {"success": True, "answer": "done"}}])
    outcome = await run_step(brain, machine, _context("v5"), _decided)
    assert machine.calls == ["observe", "act_and_observe"]  # no second look for the verdict
    assert outcome.verdict is not None and outcome.verdict.passed


async def test_a_machine_that_returns_no_screen_is_observed_again_for_the_verdict() -> None:
    machine = PlainMachine()
    brain = ScriptedBrain([{"actions": [{"kind": "click", "x": 1, "y": 1}],
                            "outcome": {"success": True, "answer": "done"}}])
    outcome = await run_step(brain, machine, _context("v5"), _decided)
    assert machine.calls == ["observe", "act_and_observe", "observe"]
    assert outcome.verdict is not None and outcome.verdict.passed
