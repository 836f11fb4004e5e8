"""The offline brain's verdict on a finished task: its verify clauses checked
again against the recorded results, so "done" rests on what the machine
answered and not on the planner having reached the end of its plan.

Every recorded action is checked too: an action that missed (``ok`` false,
such as a ``type`` whose text landed in no field) fails the verdict with
the machine's reason, whatever the verify clauses say; a verify clause on
the screen is checked against the text its step read."""

from __future__ import annotations

import re

from deckhand.brains import offline_parse as p
from deckhand.core.actions import ActionResult, RunCommand
from deckhand.core.describe import describe
from deckhand.core.steps import AgentContext
from deckhand.core.verdicts import Verdict


def offline_verdict(context: AgentContext) -> Verdict:
    """Check the task's verify clauses again against the recorded results.

    Clause *k* is done at step *k* (see :mod:`deckhand.brains.offline`): an
    output or exit-code check looks at the last command before step *k*; a
    file check at what step *k* read.
    """
    clauses = p.parse_task(context.task)
    if isinstance(clauses, p.ParseError):
        return Verdict(False, f"The task cannot be read: {clauses.reason}.", by="offline")
    steps = context.steps
    missed = _first_miss(context)
    if missed is not None:
        return Verdict(False, missed, by="offline verify clauses")
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
            content = result.content if result is not None and result.ok else None
            if content is None:
                problem = f"{clause.path} was not read"
            elif clause.text not in content:
                problem = f"{clause.path} does not contain {clause.text!r}"
        elif isinstance(clause, p.VerifyScreenShows):
            result = steps[k].results[-1] if k < len(steps) and steps[k].results else None
            screen = result.data.get("text") if result is not None and result.ok else None
            if not isinstance(screen, str):
                problem = "the screen was not read"
            elif not shows(screen, clause.text, loose=result is not None
                            and result.data.get("text_source") == "ocr"):
                problem = f"the screen does not show {clause.text!r}"
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


def _first_miss(context: AgentContext) -> str | None:
    """The first recorded action that did not succeed, in words, or None."""
    for step in context.steps:
        for action, result in zip(step.decision.actions, step.results, strict=False):
            if not result.ok:
                return (f"Step {step.number} failed on the machine ({describe(action)}): "
                        f"{result.error or 'no reason given'}.")
    return None


def shows(screen: str, wanted: str, *, loose: bool) -> bool:
    """Whether ``wanted`` is in ``screen``: case and spacing ignored; with
    text recognition (``loose``) punctuation between words is ignored too."""
    def norm(t: str) -> str:
        t = " ".join(t.lower().split())
        return re.sub(r"[^\w@.]+", "", t) if loose else t
    return bool(norm(wanted)) and norm(wanted) in norm(screen)


def _last_command(context: AgentContext, before: int) -> ActionResult | None:
    for step in reversed(context.steps[:before]):
        pairs = list(zip(step.decision.actions, step.results, strict=False))
        for action, result in reversed(pairs):
            if isinstance(action, RunCommand):
                return result
    return None

