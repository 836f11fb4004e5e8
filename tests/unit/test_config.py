"""Defaults a first user meets."""

from __future__ import annotations

import pytest

from deckhand.config import Settings


def test_one_warm_terminal_by_default() -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.machine_pool_terminal == 1
    assert settings.machine_pool_browser == 0 and settings.machine_pool_desktop == 0


def test_screen_budgets_fit_in_the_screens_a_run_keeps() -> None:
    from deckhand.config import SCREENS_IN_MEMORY
    from deckhand.core.steps import OBSERVATIONS_KEPT

    assert SCREENS_IN_MEMORY == OBSERVATIONS_KEPT
    s = Settings(anthropic_screens_kept=4, screens_chunk=9)
    assert (s.anthropic_screens_kept, s.screens_chunk) == (4, 9)
    with pytest.raises(ValueError, match="SCREENS_KEPT"):
        Settings(anthropic_screens_kept=5, screens_chunk=9)
