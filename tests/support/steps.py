"""Contexts and recorded steps for the unit tests of the brains and the agent:
a step as the runner would record it, with results for each of its actions."""

from __future__ import annotations

from typing import Any

from deckhand.core.actions import Action, ActionResult
from deckhand.core.screens import Observation
from deckhand.core.steps import AgentContext, Decision, StepRecord


def ctx(**kw: Any) -> AgentContext:
    return AgentContext(run_id="r", task=kw.pop("task", "t"), **kw)


def step(n: int, *actions: Action, results: tuple[ActionResult, ...] | None = None,
         obs: Observation | None = None, data: bool = True) -> StepRecord:
    """Step ``n`` that did ``actions`` (each ok unless ``results`` says otherwise);
    ``data`` False records it without provider data, as another brain's step."""
    d = Decision(actions=actions, provider_data={"calls": []} if data else None)
    return StepRecord(number=n, decision=d, observation=obs,
                      results=results if results is not None
                      else tuple(ActionResult(ok=True) for _ in actions))
