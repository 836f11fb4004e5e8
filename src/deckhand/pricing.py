"""What things cost, in credits (1 credit = 1 cent)."""

from __future__ import annotations

RUN_STEP_CREDITS = 5
RUN_STEP_CREDITS_BY_VERSION = {"v1": 8}


def step_credits(mode: str, cua_version: str) -> int:
    """One completed agent step. Test keys never pay."""
    if mode == "test":
        return 0
    return RUN_STEP_CREDITS_BY_VERSION.get(cua_version, RUN_STEP_CREDITS)

# Inference calls (the contract's x-billing-code), per call.
CALL_CREDITS = {"predict": 5, "session_predict": 5, "ground": 3, "session_create": 0}


def call_credits(mode: str, billing_code: str) -> int:
    """One inference call. Test keys never pay."""
    if mode == "test":
        return 0
    return CALL_CREDITS.get(billing_code, 0)
