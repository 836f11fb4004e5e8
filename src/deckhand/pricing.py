"""What things cost, in credits (1 credit = 1 cent)."""

from __future__ import annotations

RUN_STEP_CREDITS = 5
RUN_STEP_CREDITS_BY_VERSION = {"v1": 8}


def step_credits(mode: str, cua_version: str) -> int:
    """One completed agent step. Test keys never pay."""
    if mode == "test":
        return 0
    return RUN_STEP_CREDITS_BY_VERSION.get(cua_version, RUN_STEP_CREDITS)
