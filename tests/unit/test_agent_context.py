"""The steps a run keeps in memory: old screens are forgotten."""

from __future__ import annotations

from deckhand.agent.context import remember
from deckhand.core.steps import OBSERVATIONS_KEPT, StepRecord
from tests.support.fake_providers import observation
from tests.support.steps import step


def test_remember_forgets_old_screens() -> None:
    steps: list[StepRecord] = []
    for i in range(OBSERVATIONS_KEPT + 3):
        remember(steps, step(i + 1, obs=observation(320, 240)))
    kept = [s.observation is not None for s in steps]
    assert kept == [False] * 3 + [True] * OBSERVATIONS_KEPT
