"""Defaults a first user meets."""

from __future__ import annotations

from deckhand.config import Settings


def test_one_warm_terminal_by_default() -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.machine_pool_terminal == 1
    assert settings.machine_pool_browser == 0 and settings.machine_pool_desktop == 0
