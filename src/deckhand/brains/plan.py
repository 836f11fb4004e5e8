"""One decision's tool calls: the actions they come to, within the context's
limits, and what each call is answered with on the next step.

Every model brain turns its provider's tool calls into a :class:`Plan`; the
plan's ``calls`` ride in ``Decision.provider_data`` so the next request can
answer each call with what it came to (:func:`call_result_text`), even after a
crash.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from deckhand.brains.history import result_text
from deckhand.core.actions import Action, ActionResult, KeyPress, Screenshot
from deckhand.core.steps import AgentContext, StepRecord

NO_QUESTION = "The agent needs a human."
# action kind -> the contract's action_type (a key press is key_press or key_combo)
_CONTRACT_TYPES = {"click": "click", "type": "type_text", "scroll": "scroll", "drag": "drag",
                   "move": "move", "wait": "wait"}


def contract_action_type(action: Action) -> str | None:
    """The contract's ``ActionResponse.action_type`` of an action (None: not a
    screen action the contract can express)."""
    if isinstance(action, KeyPress):
        return "key_combo" if "+" in action.keys.strip("+") else "key_press"
    return _CONTRACT_TYPES.get(action.kind)


class Plan:
    """The actions of one decision, built call by call from a model's tool
    calls, with the context's limits applied: one action per step in v1,
    ``max_actions``, ``allowed_actions``. Each call remembers which actions it
    produced (or why it produced none), so its result can be told to the
    model on the next step."""

    def __init__(self, context: AgentContext) -> None:
        self.limit = 1 if context.cua_version == "v1" else context.max_actions
        self.allowed = context.allowed_actions
        self.terminal = context.terminal
        self.actions: list[Action] = []
        self.calls: list[dict[str, object]] = []
        self.ask_human: str | None = None

    def add(self, call: dict[str, object], produced: Sequence[Action] | str) -> None:
        """Record ``call`` (JSON: its id, name, input…) with the actions it
        produced, or an error message."""
        entry = dict(call)
        if isinstance(produced, str):
            entry["error"] = produced
            self.calls.append(entry)
            return
        kept = [a for a in produced if self._refusal(a) is None]
        notes = sorted({r for r in map(self._refusal, produced) if r is not None})
        room = None if self.limit is None else self.limit - len(self.actions)
        if produced and not kept:
            entry["error"] = "Not performed: " + " ".join(notes)
        elif room is not None and kept and room <= 0:
            entry["error"] = ("Not performed: one action per step (cua_version v1)."
                              if self.limit == 1
                              else f"Not performed: at most {self.limit} actions per step.")
        else:
            if room is not None and len(kept) > room:
                kept = kept[:room]
                notes.append(f"Only the first {room} action(s) were performed.")
            start = len(self.actions)
            self.actions.extend(kept)
            entry["actions"] = [start, len(self.actions)]
            if notes:
                entry["note"] = " ".join(notes)
        self.calls.append(entry)

    def _refusal(self, action: Action) -> str | None:
        kind = contract_action_type(action)
        if isinstance(action, Screenshot):
            return None
        if kind is None and not self.terminal:
            return "There is no terminal or file system here."
        if self.allowed is not None and kind not in self.allowed:
            return (f"The action type {kind or action.kind} is not allowed here "
                    f"(allowed: {', '.join(self.allowed)}).")
        return None

    def human(self, call: dict[str, object], question: str) -> None:
        entry = dict(call)
        entry["human"] = True
        self.calls.append(entry)
        self.ask_human = question if self.ask_human is None else f"{self.ask_human}\n{question}"

    def request_human(self, call: dict[str, object], arguments: Mapping[str, object]) -> None:
        """A ``request_human`` tool call, whichever provider made it (a model
        that asks without a question still gets a human)."""
        self.human(call, str(arguments.get("question") or NO_QUESTION))


def call_results(call: Mapping[str, object], step: StepRecord) -> list[ActionResult | None]:
    """The results of the actions a recorded call produced."""
    span = call.get("actions")
    if not isinstance(span, list):
        return []
    start, end = int(span[0]), int(span[1])
    return [step.results[i] if i < len(step.results) else None for i in range(start, end)]


def call_result_text(call: Mapping[str, object], step: StepRecord) -> tuple[str, bool]:
    """(what a recorded call came to, as text for the model; whether it failed)."""
    if call.get("human"):
        note = step.human_note
        return (f"The human answered: {note}" if note
                else "A human looked and resumed the run without a note."), False
    if isinstance(call.get("error"), str):
        return str(call["error"]), True
    results = call_results(call, step)
    note = f"\n{call['note']}" if isinstance(call.get("note"), str) else ""
    if not results:
        return "Done." + note, False
    failed = any(r is None or not r.ok for r in results)
    return "\n".join(result_text(r) for r in results) + note, failed
