"""A brain that plays back a fixed script: the test double shipped in the
package, so tests (and integration tests through the public API) can drive
the real agent loop without a model.

The decision for step *n* is script entry *n* (``n = len(context.steps)``),
so the brain is a pure function of the context and survives a crash and
rebuild like any other. When the script is exhausted it ends the run as
succeeded with ``answer`` (default ``"Script complete."``).

Script entries are :class:`~deckhand.brains.base.Decision` objects, or dicts
of the same shape (JSON-able)::

    {
      "actions": [                      # optional, performed in order
        {"kind": "terminal", "command": "echo hi", "timeout_ms": 5000},
        {"kind": "write_file", "path": "/tmp/a.txt", "content": "x"},
        {"kind": "read_file", "path": "/tmp/a.txt"},
        {"kind": "wait", "seconds": 1.5}
      ],
      "text": "what this step does",     # optional
      "reasoning": "…",                  # optional
      "ask_human": "Approve?",           # optional: run goes to awaiting_human
      "outcome": {                       # optional: the run ends
        "success": false, "answer": null,
        "error_code": "VERIFICATION_FAILED", "message": "…"
      },
      "usage": {"input_tokens": 10, "output_tokens": 5}   # optional
    }

Unknown keys are an error (a typo should not silently do nothing).

:meth:`ScriptedBrain.from_task` reads a script from a task whose text is a
JSON object ``{"script": [entry, …], "answer": "…"}`` (``answer`` optional),
e.g. ``{"script": [{"actions": [{"kind": "terminal", "command": "sleep 30"}]},
{"outcome": {"success": true, "answer": "ok"}}]}``. Any other task text gives
an empty script (the run succeeds at once). A ``ScriptedBrain()`` built
without a script does the same on every decision from ``context.task``, so
one instance can serve every run.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from deckhand.brains.base import Brain
from deckhand.core.screens import Observation
from deckhand.core.steps import AgentContext, Decision, Outcome
from deckhand.core.verdicts import Verdict
from deckhand.errors import BrainError, ErrorCode

DEFAULT_ANSWER = "Script complete."

ScriptEntry = Decision | Mapping[str, Any]


class ScriptedBrain(Brain):
    name = "scripted"

    def __init__(
        self, script: Sequence[ScriptEntry] | None = None, *, answer: str = DEFAULT_ANSWER
    ) -> None:
        """``script`` None: read the script from each context's task (see
        :meth:`from_task`). Raises :class:`BrainError` on a malformed entry."""
        self.script = None if script is None else parse_script(script)
        self.answer = answer

    @classmethod
    def from_task(cls, task: str) -> ScriptedBrain:
        """A brain playing the script in ``task`` (a JSON object with a
        ``script`` list), or an empty script for any other text."""
        script, answer = _script_in_task(task)
        return cls(script, answer=answer)

    async def decide(self, context: AgentContext) -> Decision:
        if self.script is not None:
            script, answer = self.script, self.answer
        else:
            try:
                entries, answer = _script_in_task(context.task)
                script = parse_script(entries)
            except BrainError as exc:
                return Decision(
                    text=exc.message,
                    outcome=Outcome(
                        success=False, error_code=ErrorCode.BRAIN_ERROR.value, message=exc.message
                    ),
                )
        n = len(context.steps)
        if n < len(script):
            return script[n]
        return Decision(
            text="The script is complete.", outcome=Outcome(success=True, answer=answer)
        )

    async def verify(self, context: AgentContext, answer: str,
                     screen: Observation | None) -> Verdict:
        """The verdict the script gives, else a pass."""
        return scripted_verdict(context)


def parse_script(entries: Sequence[ScriptEntry]) -> tuple[Decision, ...]:
    """Decisions from ``Decision`` objects or dicts; :class:`BrainError` if
    an entry is malformed."""
    decisions = []
    for index, entry in enumerate(entries):
        if isinstance(entry, Decision):
            decisions.append(entry)
            continue
        if not isinstance(entry, Mapping):
            raise BrainError(f"script entry {index} is not an object")
        unknown = sorted(set(entry) - set(Decision.model_fields))
        if unknown:
            raise BrainError(f"script entry {index} has unknown keys: {', '.join(unknown)}")
        try:
            decisions.append(Decision.model_validate(dict(entry)))
        except ValidationError as exc:
            raise BrainError(f"script entry {index} is not a valid decision: {exc}") from exc
    return tuple(decisions)


def _script_in_task(task: str) -> tuple[Sequence[ScriptEntry], str]:
    text = task.strip()
    if not text.startswith("{"):
        return [], DEFAULT_ANSWER
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return [], DEFAULT_ANSWER
    if not isinstance(data, dict) or "script" not in data:
        return [], DEFAULT_ANSWER
    script = data["script"]
    if not isinstance(script, list):
        raise BrainError("the task's \"script\" must be a list of decisions")
    answer = data.get("answer", DEFAULT_ANSWER)
    if not isinstance(answer, str):
        raise BrainError("the task's \"answer\" must be a string")
    return script, answer


def scripted_verdict(context: AgentContext) -> Verdict:
    """Pass, unless the task's JSON carries ``"verdict": {"passed": false, …}``
    (so tests can drive a failed verification without a model)."""
    try:
        data = json.loads(context.task) if context.task.lstrip().startswith("{") else None
    except ValueError:
        data = None
    verdict = data.get("verdict") if isinstance(data, dict) else None
    if isinstance(verdict, dict) and isinstance(verdict.get("passed"), bool):
        return Verdict(verdict["passed"], str(verdict.get("reason") or ""), by="scripted")
    return Verdict(True, "Scripted runs pass unless the script gives a verdict.", by="scripted")
