"""The OpenAI brain: the Responses API with the computer-use tool, plus
function tools for the machine's terminal and files and ``request_human``.

- Tool: ``computer_use_preview`` (display = the screenshot as the model sees
  it, fit into 1280×800; environment ``linux``) for ``computer-use-*``
  models, the GA ``computer`` tool for other models.
- The model answers ``computer_call`` items (``action`` or batched
  ``actions``); coordinates are scaled to the machine's real resolution. The
  next request carries a ``computer_call_output`` with the new screenshot.
- ``pending_safety_checks`` hold the call: the run goes to ``awaiting_human``
  with the checks' messages as the reason. Resuming the run acknowledges
  them: the held action is performed (no model call) and the next
  ``computer_call_output`` carries ``acknowledged_safety_checks``.

Requests are chained: each step's response id rides in its recorded decision
(``Decision.provider_data["response_id"]``), and the next request names it as
``previous_response_id`` and sends only what is new (the outputs of the last
step's calls, its screen, notes) — the history is never resent while the chain
holds, and OpenAI's cache serves the whole conversation. The id is recorded
with the step in the step's one transaction, so after a crash or a restart the
run goes on from the last recorded step's response, never from one whose step
was not recorded. When OpenAI no longer has that response (expired, another
key or project, ``store`` off: ``previous_response_not_found``), or the last
step is not this brain's, the input is rebuilt from the recorded steps (the
model's output items ride in ``provider_data`` too), and the chain starts
again from that response.

Verification and grounding need a general model: ``grounding_model`` if
given, else the main model, else ``gpt-4o`` when the main model is a
computer-use model.
"""

from __future__ import annotations

import functools
import io
from typing import Any

from deckhand.brains import prompts
from deckhand.brains.base import Brain
from deckhand.brains.history import ScreenBudget, Turn, history, policy_for, step_line
from deckhand.brains.keys import xdotool_keys
from deckhand.brains.plan import Plan, call_result_text
from deckhand.brains.providers import Provider
from deckhand.brains.screen import ModelScreen, model_screen, screen_now
from deckhand.brains.tools import (
    POINT,
    REPORT_VERDICT,
    ToolSpec,
    function_specs,
    parse_arguments,
    plan_function_call,
)
from deckhand.brains.usage import token_usage
from deckhand.brains.verdict import judge
from deckhand.core.actions import (
    Action,
    Click,
    Drag,
    KeyPress,
    MoveMouse,
    Screenshot,
    Scroll,
    TypeText,
    Wait,
)
from deckhand.core.screens import Observation
from deckhand.core.steps import AgentContext, Decision, Outcome, TokenUsage
from deckhand.core.verdicts import Grounded, Verdict

PREVIEW_TOOL = "computer_use_preview"
GA_TOOL = "computer"
AUX_MODEL = "gpt-4o"
ENVIRONMENT = "linux"
_BUTTONS = {"left": "left", "right": "right", "wheel": "middle", "middle": "middle"}


class OpenAIBrain(Brain):
    name = "openai"

    def __init__(self, provider: Provider, *, model: str,
                 grounding_model: str | None = None,
                 screens: ScreenBudget | None = None) -> None:
        """``provider``: where the requests go, with whose key (see
        :mod:`deckhand.brains.providers`); ``screens``: how many a rebuilt
        input shows."""
        self.model = model
        self.screens = screens
        self.aux_model = grounding_model or (AUX_MODEL if model.startswith("computer-use")
                                             else model)
        self.provider = provider
        self.client = provider.openai_client()

    async def aclose(self) -> None:
        await self.client.close()

    async def _create(self, **request: Any) -> Any:
        import openai

        try:
            return await self.client.responses.create(**request)
        except openai.APIError as exc:  # the SDK's errors become LLM_* codes here only
            if request.get("previous_response_id") and _chain_lost(exc):
                raise _ChainLost from None
            raise self.provider.error(exc) from None

    # ------------------------------------------------------------------ decide

    async def decide(self, context: AgentContext) -> Decision:
        held = _held_call(context)
        if held is not None:
            return acknowledged(held, context)
        screen = screen_now(context.observation)
        tools: list[dict[str, Any]] = []
        if screen is not None:
            if self.model.startswith("computer-use"):
                tools.append({"type": PREVIEW_TOOL, "display_width": screen.width,
                              "display_height": screen.height, "environment": ENVIRONMENT})
            else:
                tools.append({"type": GA_TOOL})
        tools += [_function(spec) for spec in function_specs(context, screen=False)]
        request: dict[str, Any] = {"model": self.model,
                                   "instructions": prompts.system_prompt(context),
                                   "tools": tools, "truncation": "auto"}
        if context.cua_version == "v1":
            request["parallel_tool_calls"] = False
        previous = chained_from(context)
        response = None
        if previous is not None:
            try:
                response = await self._create(**request, previous_response_id=previous,
                                              input=chained_input(context))
            except _ChainLost:
                response = None  # rebuilt below
        if response is None:
            response = await self._create(**request, input=input_for(context, self.screens))
        return decision_from(response, context, screen)

    # ------------------------------------------------------------------ verify and ground

    async def _forced(self, content: list[dict[str, Any]], spec: ToolSpec,
                      instructions: str | None = None) -> tuple[Any, TokenUsage, str]:
        request: dict[str, Any] = {
            "model": self.aux_model, "input": [_user(*content)], "tools": [_function(spec)],
            "tool_choice": {"type": "function", "name": spec.name},
        }
        if instructions:
            request["instructions"] = instructions
        response = await self._create(**request)
        usage = _usage(response)
        for item in response.output or []:
            if item.type == "function_call" and item.name == spec.name:
                return parse_arguments(item.arguments), usage, ""
        return None, usage, _output_text(response)

    async def verify(self, context: AgentContext, answer: str,
                     screen: Observation | None) -> Verdict:
        content = [_text(prompts.verifier_prompt(context, answer, screen is not None))]
        if screen is not None:
            content.append(_image(model_screen(screen)))
        args, usage, text = await self._forced(content, REPORT_VERDICT,
                                               prompts.VERIFIER_SYSTEM_PROMPT)
        return Verdict(*judge(args, text), by=f"openai {self.aux_model}", usage=usage)

    async def ground(self, observation: Observation, element: str) -> Grounded:
        screen = model_screen(observation)
        args, usage, _ = await self._forced(
            [_text(prompts.ground_prompt(element, screen)), _image(screen)], POINT)
        return Grounded.from_arguments(args, screen, usage) if isinstance(args, dict) \
            else Grounded(found=False, usage=usage)


# --------------------------------------------------------------------------- safety checks


def _held_call(context: AgentContext) -> dict[str, Any] | None:
    """The computer call held by pending safety checks at the last step. A run
    that decides again after such a step was resumed by a human: that is the
    acknowledgement."""
    if not context.steps:
        return None
    data = context.steps[-1].decision.provider_data or {}
    held = data.get("pending")
    return held if isinstance(held, dict) else None


def acknowledged(held: dict[str, Any], context: AgentContext) -> Decision:
    """Perform the held call now that a human acknowledged its safety checks."""
    from pydantic import TypeAdapter

    last = context.steps[-1]
    actions = TypeAdapter(list[Action]).validate_python(held.get("actions") or [])
    calls = []
    for call in (last.decision.provider_data or {}).get("calls", []):
        entry = {k: v for k, v in call.items() if k not in ("error", "held")}
        if call.get("call_id") == held["call_id"]:
            entry["actions"] = [0, len(actions)]
        else:
            entry["error"] = "Not performed: the step was held for a safety check."
        calls.append(entry)
    checks = held.get("checks") or []
    said = "; ".join(str(c.get("message") or c.get("code") or c.get("id")) for c in checks)
    note = f" Their note: {last.human_note}" if last.human_note else ""
    return Decision(
        actions=tuple(actions),
        text=f"A human acknowledged the safety check ({said}); performing the held action."
             + note,
        provider_data={"output": (last.decision.provider_data or {}).get("output", []),
                       "calls": calls, "acknowledged": checks,
                       **_response_id((last.decision.provider_data or {}).get("response_id"))},
    )


# --------------------------------------------------------------------------- the input


def _function(spec: ToolSpec) -> dict[str, Any]:
    return {"type": "function", "name": spec.name, "description": spec.description,
            "parameters": spec.schema, "strict": False}


def _shot(obs: Observation) -> ModelScreen:
    return model_screen(obs)


def _image(screen: ModelScreen) -> dict[str, Any]:
    return {"type": "input_image", "image_url": screen.data_url, "detail": "high"}


def _user(*parts: dict[str, Any]) -> dict[str, Any]:
    return {"role": "user", "content": list(parts)}


def _text(text: str) -> dict[str, Any]:
    return {"type": "input_text", "text": text}


class _ChainLost(Exception):
    """OpenAI no longer has the response a request chains from."""


def _chain_lost(exc: Exception) -> bool:
    return getattr(exc, "code", None) == "previous_response_not_found" or (
        getattr(exc, "param", None) == "previous_response_id"
        and getattr(exc, "status_code", None) in (400, 404))


def _response_id(value: Any) -> dict[str, Any]:
    return {"response_id": value} if isinstance(value, str) and value else {}


def chained_from(context: AgentContext) -> str | None:
    """The response the next request chains from: the last recorded step's,
    when this brain made it (None: the input is the whole history)."""
    if not context.steps:
        return None
    data = context.steps[-1].decision.provider_data or {}
    value = data.get("response_id")
    return value if isinstance(value, str) and value and "output" in data else None


def chained_input(context: AgentContext) -> list[dict[str, Any]]:
    """What a chained request sends: the answers to the last step's calls, and
    the hint — the rest is at OpenAI already."""
    last = Turn(step=context.steps[-1], screen_after=context.observation)
    items = answers(last, True, context.observation)
    if context.hint:
        items.append(_user(_text(prompts.hint_note(context.hint))))
    return items


def input_for(context: AgentContext, budget: ScreenBudget | None = None
              ) -> list[dict[str, Any]]:
    """The Responses API input for ``context``: the whole history (a chain's
    first request, or its rebuild)."""
    h = history(context, policy_for(context.cua_version, budget))
    first = [_text(prompts.opening(context, h.summary))]
    if not h.turns and h.screen is not None:
        first += [_text(prompts.SCREEN_NOW), _image(_shot(h.screen))]
    items: list[dict[str, Any]] = [_user(*first)]
    turns = list(h.turns)
    for i, turn in enumerate(turns):
        data = turn.step.decision.provider_data or {}
        if "output" not in data:
            items += [{"role": "assistant", "content": step_line(turn.step)},
                      _user(_text(prompts.CONTINUE))]
            continue
        acked = i + 1 < len(turns) and "acknowledged" in (
            turns[i + 1].step.decision.provider_data or {})
        if "pending" in data and acked:
            continue  # the acknowledging step carries these items
        items += [dict(item) for item in data["output"]]
        items += answers(turn, turn is turns[-1], h.screen)
    if context.hint:
        items.append(_user(_text(prompts.hint_note(context.hint))))
    return items


def answers(turn: Turn, last: bool, screen: Observation | None) -> list[dict[str, Any]]:
    """The items answering a step's calls: its computer calls' screenshots,
    its function calls' outputs, notes, and (last) the screen now."""
    data = turn.step.decision.provider_data or {}
    items: list[dict[str, Any]] = []
    notes: list[str] = []
    screen_shown = False
    for call in data.get("calls", []):
        text, failed = call_result_text(call, turn.step)
        if call.get("type") == "computer":
            output: dict[str, Any] = {
                "type": "computer_call_output", "call_id": call["call_id"],
                "output": {"type": "computer_screenshot",
                           "image_url": (_shot(turn.screen_after).data_url
                                         if turn.screen_after is not None
                                         else placeholder_screen())}}
            if data.get("acknowledged"):
                output["acknowledged_safety_checks"] = data["acknowledged"]
            items.append(output)
            screen_shown = screen_shown or turn.screen_after is not None
            if failed:
                notes.append(f"The computer action did not work: {text}")
        else:
            items.append({"type": "function_call_output", "call_id": call["call_id"],
                          "output": text})
    note = turn.untold_note()
    if note:
        notes.append(prompts.human_note(note))
    if last and not screen_shown and screen is not None:
        items.append(_user(_text(prompts.SCREEN_NOW), _image(_shot(screen))))
    if notes:
        items.append(_user(_text("\n".join(notes))))
    return items


@functools.cache
def placeholder_screen() -> str:
    """A tiny grey image for a past screen that is no longer kept (compaction):
    the Responses API wants a screenshot in every computer_call_output."""
    import base64

    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (16, 10), (128, 128, 128)).save(out, format="JPEG")
    return "data:image/jpeg;base64," + base64.b64encode(out.getvalue()).decode()


# --------------------------------------------------------------------------- the answer


def _usage(response: Any) -> TokenUsage:
    return token_usage(response, ("input_tokens",), "output_tokens",
                       details="input_tokens_details")


def _output_text(response: Any) -> str:
    parts = []
    for item in response.output or []:
        if item.type == "message":
            for c in item.content or []:
                if getattr(c, "type", None) == "output_text":
                    parts.append(c.text)
    return "\n".join(parts)


def decision_from(response: Any, context: AgentContext, screen: ModelScreen | None) -> Decision:
    usage = _usage(response)
    plan = Plan(context)
    output: list[dict[str, Any]] = []
    reasoning: list[str] = []
    pending: dict[str, Any] | None = None
    for item in response.output or []:
        output.append(item.model_dump(mode="json", exclude_none=True))
        if item.type == "reasoning":
            reasoning += [s.text for s in (getattr(item, "summary", None) or [])
                          if getattr(s, "text", None)]
        elif item.type == "computer_call":
            call = {"call_id": item.call_id, "type": "computer"}
            raw = list(item.actions) if getattr(item, "actions", None) else [item.action]
            produced = computer_actions([a for a in raw if a is not None], screen)
            checks = [c.model_dump(mode="json", exclude_none=True)
                      for c in (item.pending_safety_checks or [])]
            if checks and not isinstance(produced, str):
                pending = {"call_id": item.call_id, "checks": checks,
                           "actions": [a.model_dump(mode="json") for a in produced]}
                plan.add({**call, "held": True}, "Held for a safety check.")
            else:
                plan.add(call, produced)
        elif item.type == "function_call":
            call = {"call_id": item.call_id, "type": "function", "name": item.name}
            plan_function_call(plan, call, item.name, item.arguments, screen)
    text = _output_text(response).strip() or None
    thought = "\n".join(reasoning) or None
    if pending is not None:
        said = "; ".join(str(c.get("message") or c.get("code") or "a safety check")
                         for c in pending["checks"])
        return Decision(text=text, reasoning=thought, usage=usage,
                        ask_human=f"Safety check: {said}",
                        provider_data={"output": output, "calls": plan.calls,
                                       "pending": pending,
                                       **_response_id(getattr(response, "id", None))})
    if not plan.calls:
        return Decision(text=text, reasoning=thought, usage=usage,
                        outcome=Outcome(success=True, answer=text or "Done."))
    return Decision(actions=tuple(plan.actions), text=text, reasoning=thought,
                    ask_human=plan.ask_human, usage=usage,
                    provider_data={"output": output, "calls": plan.calls,
                                   **_response_id(getattr(response, "id", None))})


def computer_actions(raw: list[Any], screen: ModelScreen | None) -> list[Action] | str:
    """``computer_call`` action(s) → actions (coordinates scaled to the real screen)."""
    if screen is None:
        return "This machine has no screen."
    out: list[Action] = []
    for a in raw:
        kind = getattr(a, "type", None)
        try:
            if kind in ("click", "double_click"):
                button = _BUTTONS.get(getattr(a, "button", None) or "left")
                if button is None:
                    return f"The {a.button} mouse button is not supported."
                x, y = screen.to_real(a.x, a.y)
                out.append(Click(x=x, y=y, button=button,  # type: ignore[arg-type]
                                 count=2 if kind == "double_click" else 1))
            elif kind == "move":
                x, y = screen.to_real(a.x, a.y)
                out.append(MoveMouse(x=x, y=y))
            elif kind == "drag":
                path = a.path or []
                if len(path) < 2:
                    return "A drag needs at least two points."
                (x, y), (tx, ty) = (screen.to_real(path[0].x, path[0].y),
                                    screen.to_real(path[-1].x, path[-1].y))
                out.append(Drag(x=x, y=y, to_x=tx, to_y=ty))
            elif kind == "keypress":
                out.append(KeyPress(keys=xdotool_keys(a.keys)))
            elif kind == "type":
                out.append(TypeText(text=a.text))
            elif kind == "scroll":
                x, y = screen.to_real(a.x, a.y)
                dx, dy = a.scroll_x or 0, a.scroll_y or 0
                if abs(dy) >= abs(dx):
                    direction = "down" if dy >= 0 else "up"
                    amount = abs(dy)
                else:
                    direction = "right" if dx > 0 else "left"
                    amount = abs(dx)
                clicks = min(max(round(amount / 100), 1), 50)
                out.append(Scroll(direction=direction, amount=clicks, x=x, y=y))
            elif kind == "wait":
                out.append(Wait(seconds=2))
            elif kind == "screenshot":
                out.append(Screenshot())
            else:
                return f"The computer action {kind!r} is not supported."
        except (AttributeError, TypeError, ValueError) as exc:
            return f"Invalid {kind} action: {exc}"
    return out
