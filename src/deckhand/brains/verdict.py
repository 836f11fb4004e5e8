"""What a verifier model's answer says: passed or not, and why.

The model is forced to call ``report_verdict``, but OpenAI-compatible servers
may answer in text instead, so text is read too: JSON ``{"passed": …}``, else
PASS/FAIL words. Anything else fails: a verdict nobody can read is no evidence
that the task is done.
"""

from __future__ import annotations

import json
import re
from typing import Any, NamedTuple

UNUSABLE = "The verifier gave no usable verdict."


class Judgement(NamedTuple):
    passed: bool
    reason: str


def verdict_from_arguments(arguments: Any) -> Judgement:
    """The ``report_verdict`` tool's arguments (a dict or JSON text)."""
    if isinstance(arguments, str):
        return verdict_from_text(arguments)
    if isinstance(arguments, dict) and isinstance(arguments.get("passed"), bool):
        reason = str(arguments.get("reason") or ("complete" if arguments["passed"]
                                                 else "not complete"))
        return Judgement(arguments["passed"], reason)
    return Judgement(False, UNUSABLE)


def verdict_from_text(text: str) -> Judgement:
    """For servers that answer in text: JSON ``{"passed": …}``, else PASS/FAIL words."""
    match = re.search(r"\{.*\}", text, re.DOTALL)
    if match:
        try:
            data = json.loads(match.group(0))
        except ValueError:
            data = None
        if isinstance(data, dict) and isinstance(data.get("passed"), bool):
            return verdict_from_arguments(data)
    low = text.lower()
    if re.search(r"\b(fail|failed|not complete|incomplete)\b", low):
        return Judgement(False, text.strip()[:500] or "failed")
    if re.search(r"\b(pass|passed|complete|completed)\b", low):
        return Judgement(True, text.strip()[:500])
    return Judgement(False, UNUSABLE)


def judge(arguments: Any, text: str) -> Judgement:
    """The forced call's arguments when the model made it with an object, else
    what its text says."""
    return verdict_from_arguments(arguments) if isinstance(arguments, dict) \
        else verdict_from_text(text)
