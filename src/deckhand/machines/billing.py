"""Machine runtime metering, at the contract's rates (1 credit = 1 cent):
5 credits an hour for a running Linux machine (9 for Windows), 1 an hour
while stopped (storage only), nothing for test keys.

A machine meters in segments: from ``billing_since`` at its current rate.
The time is counted to the second; whole credits are debited when a segment
ends (start, stop, terminate) and by the periodic sweep, and what is left
below one credit is carried (in millicredits) to the next segment, so
nothing is rounded away and nothing is charged twice.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from deckhand.store.records import Machine

RUNNING_CREDITS_PER_HOUR = {"linux": 5, "windows": 9}
STOPPED_CREDITS_PER_HOUR = 1
RUNNING_STATES = frozenset({"running", "starting", "stopping", "restarting"})
STOPPED_STATES = frozenset({"stopped", "suspended"})
TTL_MIN_MINUTES, TTL_MAX_MINUTES = 5, 10080


def running_rate(os_type: str, *, test: bool) -> int:
    return 0 if test else RUNNING_CREDITS_PER_HOUR.get(os_type, 5)


def stopped_rate(*, test: bool) -> int:
    return 0 if test else STOPPED_CREDITS_PER_HOUR


def rate(row: Machine) -> int:
    """Credits an hour in the machine's current state."""
    test = row.mode == "test"
    if row.status in RUNNING_STATES:
        return running_rate(row.os_type, test=test)
    if row.status in STOPPED_STATES:
        return stopped_rate(test=test)
    return 0


def accrued_millicredits(row: Machine, now: datetime) -> int:
    """What the current segment owes so far, in millicredits (carry included)."""
    if row.billing_since is None:
        return int(row.billing_carry or 0)
    seconds = max(0.0, (now - row.billing_since).total_seconds())
    return int(row.billing_carry or 0) + int(seconds * rate(row) * 1000 // 3600)


def settlement(row: Machine, now: datetime) -> tuple[int, int]:
    """(whole credits to debit now, millicredits to carry)."""
    owed = accrued_millicredits(row, now)
    return owed // 1000, owed % 1000


def pricing_card() -> dict[str, Any]:
    return {
        "currency": "credits",
        "credit_value_cents": 1,
        "runtime": {
            "linux": {"running_credits_per_hour": RUNNING_CREDITS_PER_HOUR["linux"],
                      "stopped_credits_per_hour": STOPPED_CREDITS_PER_HOUR},
            "windows": {"running_credits_per_hour": RUNNING_CREDITS_PER_HOUR["windows"],
                        "stopped_credits_per_hour": STOPPED_CREDITS_PER_HOUR,
                        "available": False},
        },
        "billing_granularity": "per second, debited in whole credits; the remainder "
                               "carries to the next segment",
        "test_mode": "test keys are never billed (every rate is 0)",
        "insufficient_funds": "a running machine is stopped (suspended_for_billing: true) "
                              "when the wallet cannot pay its runtime",
        "ttl_minutes": {"min": TTL_MIN_MINUTES, "max": TTL_MAX_MINUTES,
                        "clear": 0},
    }
