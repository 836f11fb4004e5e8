"""The steps a run keeps in memory between decisions.

Everything a model is shown of them (the screen scaled for it, the history,
the prompts) is the brains' and lives in :mod:`deckhand.brains`.
"""

from __future__ import annotations

from deckhand.core.steps import OBSERVATIONS_KEPT, StepRecord

__all__ = ["remember"]


def remember(steps: list[StepRecord], step: StepRecord) -> None:
    """Append ``step``; forget screens older than :data:`OBSERVATIONS_KEPT` steps,
    so a long run's memory holds a bounded number of screenshots."""
    steps.append(step)
    old = len(steps) - OBSERVATIONS_KEPT - 1
    if old >= 0 and steps[old].observation is not None:
        steps[old] = steps[old].model_copy(update={"observation": None})
