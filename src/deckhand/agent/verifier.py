"""The independent pass/fail check (cua_version v4 and v5).

When a brain says the task is done, something other than that brain's own
claim decides whether it is:

- a model brain makes a separate model call (its ``verify`` method) on the
  final screenshot and the trajectory, forced to answer through a
  ``report_verdict`` tool (the prompt is in :mod:`deckhand.brains.prompts`, the
  reading of the answer in :mod:`deckhand.brains.verdict`);
- the offline brain checks its verify clauses again against the recorded
  results (:mod:`deckhand.brains.offline_verdict`);
- the scripted test double passes, unless its task says
  ``"verdict": {"passed": false, "reason": "…"}``.

The loop and the API call ``brain.verify`` (:class:`~deckhand.brains.base.Brain`).
What is left here is the agent's side: which versions verify, and what a
verdict does to the decision.

A failed verdict ends the run as ``failed`` with ``VERIFICATION_FAILED`` and
the verifier's reason.
"""

from __future__ import annotations

from typing import Any

from deckhand.core.steps import Decision, Outcome
from deckhand.core.verdicts import Verdict
from deckhand.errors import ErrorCode

VERIFIED_VERSIONS = frozenset({"v4", "v5"})


def needs_verification(cua_version: str) -> bool:
    return cua_version in VERIFIED_VERSIONS


def apply_verdict(decision: Decision, verdict: Verdict) -> Decision:
    """The decision with the verifier's tokens added and, when it failed, the
    run's outcome turned into ``VERIFICATION_FAILED`` with its reason."""
    usage = decision.usage + verdict.usage
    update: dict[str, Any] = {"usage": usage}
    if not verdict.passed:
        update["outcome"] = Outcome(
            success=False, error_code=ErrorCode.VERIFICATION_FAILED.value,
            message=f"Verification failed: {verdict.reason}",
        )
    return decision.model_copy(update=update)
