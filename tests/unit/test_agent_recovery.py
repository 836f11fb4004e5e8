"""Recovery (v5): a hint to re-plan when the same actions change nothing."""

from __future__ import annotations

from deckhand.agent.recovery import REPEATS, same_screen, with_recovery_hint
from deckhand.core.actions import Click, Wait
from tests.support.fake_providers import observation, screenshot
from tests.support.steps import ctx, step


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
