"""The independent pass/fail check (cua_version v4 and v5).

When a brain says the task is done, something other than that brain's own
claim decides whether it is:

- a model brain makes a separate model call (its ``verify`` method) on the
  final screenshot and the trajectory, forced to answer through a
  ``report_verdict`` tool;
- the offline brain's verify clauses are checked again against the recorded
  results (:func:`offline_verdict`);
- the scripted test double passes, unless its task says
  ``"verdict": {"passed": false, "reason": "…"}``.

A failed verdict ends the run as ``failed`` with ``VERIFICATION_FAILED`` and
the verifier's reason.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Protocol

from deckhand.core.actions import ActionResult, RunCommand
from deckhand.core.screens import Observation
from deckhand.core.steps import AgentContext, Decision, Outcome, TokenUsage
from deckhand.errors import ErrorCode

VERIFIED_VERSIONS = frozenset({"v4", "v5"})


@dataclass(frozen=True)
class Verdict:
    passed: bool
    reason: str
    by: str = ""
    usage: TokenUsage = field(default_factory=TokenUsage)


class ModelVerifier(Protocol):
    async def verify(self, context: AgentContext, answer: str,
                     screen: Observation | None) -> Verdict: ...


def needs_verification(cua_version: str) -> bool:
    return cua_version in VERIFIED_VERSIONS


async def verify(brain: Any, context: AgentContext, answer: str,
                 screen: Observation | None) -> Verdict:
    """The verdict on ``context`` (whose last step is the one that claims the
    task is done) from the verifier that fits ``brain``."""
    own = getattr(brain, "verify", None)
    if own is not None:
        return await own(context, answer, screen)  # type: ignore[no-any-return]
    if getattr(brain, "name", None) == "offline":
        return offline_verdict(context)
    return scripted_verdict(context)


# --------------------------------------------------------------------------- offline


def offline_verdict(context: AgentContext) -> Verdict:
    """Check the task's verify clauses again against the recorded results.

    Clause *k* is done at step *k* (see :mod:`deckhand.brains.offline`): an
    output or exit-code check looks at the last command before step *k*; a
    file check at what step *k* read.
    """
    from deckhand.brains import offline_parse as p

    clauses = p.parse_task(context.task)
    if isinstance(clauses, p.ParseError):
        return Verdict(False, f"The task cannot be read: {clauses.reason}.", by="offline")
    steps = context.steps
    checked = 0
    for k, clause in enumerate(clauses):
        problem: str | None = None
        if isinstance(clause, (p.VerifyOutputMatches, p.VerifyOutputContains, p.VerifyExitCode)):
            last = _last_command(context, before=k)
            if last is None:
                problem = "no command ran before it"
            elif isinstance(clause, p.VerifyOutputMatches):
                if re.search(clause.pattern, last.output, re.MULTILINE) is None:
                    problem = f"the output does not match `{clause.pattern}`"
            elif isinstance(clause, p.VerifyOutputContains):
                if clause.text not in last.output:
                    problem = f"the output does not contain {clause.text!r}"
            elif last.exit_code != clause.code:
                problem = f"the exit code is {last.exit_code}, not {clause.code}"
        elif isinstance(clause, p.VerifyFileContains):
            result = steps[k].results[0] if k < len(steps) and steps[k].results else None
            content = _content(result) if result is not None and result.ok else None
            if content is None:
                problem = f"{clause.path} was not read"
            elif clause.text not in content:
                problem = f"{clause.path} does not contain {clause.text!r}"
        else:
            continue
        checked += 1
        if problem is not None:
            source = " ".join(clause.source.split()) or clause.render()
            return Verdict(False, f"The check {source!r} does not hold: {problem}.",
                           by="offline verify clauses")
    if not checked:
        return Verdict(True, "The task has no verify clauses to check.",
                       by="offline verify clauses")
    return Verdict(True, f"All {checked} verify clause{'s' if checked > 1 else ''} hold.",
                   by="offline verify clauses")


def _last_command(context: AgentContext, before: int) -> ActionResult | None:
    for step in reversed(context.steps[:before]):
        pairs = list(zip(step.decision.actions, step.results, strict=False))
        for action, result in reversed(pairs):
            if isinstance(action, RunCommand):
                return result
    return None


def _content(result: ActionResult) -> str:
    content = result.data.get("content")
    if not result.output and isinstance(content, str):
        return content
    return result.output


# --------------------------------------------------------------------------- scripted


def scripted_verdict(context: AgentContext) -> Verdict:
    try:
        data = json.loads(context.task) if context.task.lstrip().startswith("{") else None
    except ValueError:
        data = None
    verdict = data.get("verdict") if isinstance(data, dict) else None
    if isinstance(verdict, dict) and isinstance(verdict.get("passed"), bool):
        return Verdict(verdict["passed"], str(verdict.get("reason") or ""), by="scripted")
    return Verdict(True, "Scripted runs pass unless the script gives a verdict.", by="scripted")


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
