"""The independent pass/fail check (cua_version v4 and v5).

When a brain says the task is done, something other than that brain's own
claim decides whether it is:

- a model brain makes a separate model call (its ``verify`` method) on the
  final screenshot and the trajectory, forced to answer through a
  ``report_verdict`` tool (the prompt and the parsing are here);
- the offline brain checks its verify clauses again against the recorded
  results (:mod:`deckhand.brains.offline_verdict`);
- the scripted test double passes, unless its task says
  ``"verdict": {"passed": false, "reason": "…"}``.

The loop and the API call ``brain.verify`` (:class:`~deckhand.brains.base.Brain`).

A failed verdict ends the run as ``failed`` with ``VERIFICATION_FAILED`` and
the verifier's reason.
"""

from __future__ import annotations

import json
import re
from typing import Any

from deckhand.agent.context import task_text, trajectory_text
from deckhand.core.steps import AgentContext, Decision, Outcome, TokenUsage
from deckhand.core.verdicts import Verdict
from deckhand.errors import ErrorCode

VERIFIED_VERSIONS = frozenset({"v4", "v5"})

VERIFIER_SYSTEM_PROMPT = (
    "You are an independent verifier for a computer-use agent. You did not do the work; you "
    "judge it. From the task, the agent's trajectory, its final answer and the final "
    "screenshot (when there is one), decide whether the task is really complete. Judge only "
    "from evidence you can see; a claim without evidence fails. Answer by calling "
    "report_verdict exactly once."
)
REPORT_VERDICT = "report_verdict"
REPORT_VERDICT_DESCRIPTION = "Report whether the task is complete, with a one-sentence reason."
REPORT_VERDICT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "passed": {"type": "boolean", "description": "true only if the task is complete"},
        "reason": {"type": "string", "description": "why, in one or two sentences"},
    },
    "required": ["passed", "reason"],
}


def needs_verification(cua_version: str) -> bool:
    return cua_version in VERIFIED_VERSIONS


def verifier_prompt(context: AgentContext, answer: str, has_screen: bool) -> str:
    screen = ("The final screenshot is attached." if has_screen
              else "There is no screenshot (the machine has no screen).")
    return (
        f"{task_text(context)}\n\n"
        f"The agent's trajectory, one line per step:\n{trajectory_text(context)}\n\n"
        f"The agent's final answer: {answer or '(none)'}\n\n"
        f"{screen} Is the task complete? Call {REPORT_VERDICT}."
    )


def verdict_from_arguments(arguments: Any, by: str, usage: TokenUsage) -> Verdict:
    """A verdict from the ``report_verdict`` tool's arguments (a dict or JSON text)."""
    if isinstance(arguments, str):
        return verdict_from_text(arguments, by, usage)
    if isinstance(arguments, dict) and isinstance(arguments.get("passed"), bool):
        reason = str(arguments.get("reason") or ("complete" if arguments["passed"]
                                                 else "not complete"))
        return Verdict(passed=arguments["passed"], reason=reason, by=by, usage=usage)
    return Verdict(passed=False, reason="The verifier gave no usable verdict.", by=by,
                   usage=usage)


def verdict_from_text(text: str, by: str, usage: TokenUsage) -> Verdict:
    """For servers that answer in text: JSON ``{"passed": …}``, else PASS/FAIL words."""
    match = re.search(r"\{.*\}", text, re.DOTALL)
    if match:
        try:
            data = json.loads(match.group(0))
        except ValueError:
            data = None
        if isinstance(data, dict) and isinstance(data.get("passed"), bool):
            return verdict_from_arguments(data, by, usage)
    low = text.lower()
    if re.search(r"\b(fail|failed|not complete|incomplete)\b", low):
        return Verdict(passed=False, reason=text.strip()[:500] or "failed", by=by, usage=usage)
    if re.search(r"\b(pass|passed|complete|completed)\b", low):
        return Verdict(passed=True, reason=text.strip()[:500], by=by, usage=usage)
    return Verdict(passed=False, reason="The verifier gave no usable verdict.", by=by,
                   usage=usage)


def apply_verdict(decision: Decision, verdict: Verdict) -> Decision:
    """The decision with the verifier's tokens added and, when it failed, the
    run's outcome turned into ``VERIFICATION_FAILED`` with its reason."""
    usage = TokenUsage(
        input_tokens=decision.usage.input_tokens + verdict.usage.input_tokens,
        output_tokens=decision.usage.output_tokens + verdict.usage.output_tokens,
    )
    update: dict[str, Any] = {"usage": usage}
    if not verdict.passed:
        update["outcome"] = Outcome(
            success=False, error_code=ErrorCode.VERIFICATION_FAILED.value,
            message=f"Verification failed: {verdict.reason}",
        )
    return decision.model_copy(update=update)
