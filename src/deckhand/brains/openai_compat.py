"""The OpenAI-compatible brain: Chat Completions with image inputs and
function calling, for local or hosted servers that speak OpenAI's wire
protocol (vLLM, Ollama, llama.cpp, LM Studio) at a base URL.

The model gets the screenshot (fit into 1280×800) as an image and calls
functions whose coordinates are pixels of that image; they are scaled to the
machine's real resolution. The same function definitions (terminal, files,
``request_human``) serve the ``openai`` brain's Responses API.

With no model configured the brain asks the server (``GET /models``) and uses
the first model it serves, which suits single-model servers.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from deckhand.agent.context import (
    REQUEST_HUMAN_DESCRIPTION,
    ModelScreen,
    Plan,
    call_result_text,
    history,
    model_screen,
    step_line,
    system_prompt,
    task_text,
    xdotool_keys,
)
from deckhand.agent.verifier import (
    REPORT_VERDICT,
    REPORT_VERDICT_DESCRIPTION,
    REPORT_VERDICT_SCHEMA,
    VERIFIER_SYSTEM_PROMPT,
    verdict_from_arguments,
    verdict_from_text,
    verifier_prompt,
)
from deckhand.brains.base import Brain
from deckhand.brains.providers import Provider
from deckhand.brains.resolve import GROUND_TOOL, GROUND_TOOL_SCHEMA
from deckhand.core.actions import (
    Action,
    Click,
    Drag,
    KeyPress,
    MoveMouse,
    ReadFile,
    RunCommand,
    Screenshot,
    Scroll,
    TypeText,
    Wait,
    WriteFile,
)
from deckhand.core.screens import Observation
from deckhand.core.steps import AgentContext, Decision, TokenUsage
from deckhand.core.verdicts import Grounded, Verdict
from deckhand.errors import ErrorCode, LlmError

MAX_TOKENS = 4096


def _obj(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": required}


_XY = {"x": {"type": "integer", "description": "pixels from the left of the screenshot"},
       "y": {"type": "integer", "description": "pixels from the top of the screenshot"}}

# name → (description, JSON schema of the arguments)
SCREEN_FUNCTIONS: dict[str, tuple[str, dict[str, Any]]] = {
    "click": ("Click at a point of the screenshot.", _obj({
        **_XY, "button": {"type": "string", "enum": ["left", "right", "middle"]}}, ["x", "y"])),
    "double_click": ("Double-click at a point of the screenshot.", _obj(_XY, ["x", "y"])),
    "type_text": ("Type text with the keyboard.",
                  _obj({"text": {"type": "string"}}, ["text"])),
    "key": ("Press a key or a combination, e.g. Return, ctrl+s, alt+Tab.",
            _obj({"keys": {"type": "string"}}, ["keys"])),
    "scroll": ("Scroll at a point of the screenshot.", _obj({
        **_XY, "direction": {"type": "string", "enum": ["up", "down", "left", "right"]},
        "amount": {"type": "integer", "description": "wheel clicks, 1-50"}},
        ["direction"])),
    "drag": ("Drag with the left button from (x, y) to (to_x, to_y).", _obj({
        **_XY, "to_x": {"type": "integer"}, "to_y": {"type": "integer"}},
        ["x", "y", "to_x", "to_y"])),
    "move": ("Move the mouse to a point of the screenshot.", _obj(_XY, ["x", "y"])),
    "wait": ("Wait a few seconds for the screen to settle.",
             _obj({"seconds": {"type": "number"}}, ["seconds"])),
    "screenshot": ("Look at the screen again without acting.", _obj({}, [])),
}
TERMINAL_FUNCTIONS: dict[str, tuple[str, dict[str, Any]]] = {
    "run_command": (("Run a shell command in the machine's persistent bash session; "
                     "returns its output and exit code."),
                    _obj({"command": {"type": "string"}}, ["command"])),
    "read_file": ("Read a text file on the machine.",
                  _obj({"path": {"type": "string"}}, ["path"])),
    "write_file": ("Write (create or replace) a text file on the machine.",
                   _obj({"path": {"type": "string"}, "content": {"type": "string"}},
                        ["path", "content"])),
}
REQUEST_HUMAN = ("request_human", REQUEST_HUMAN_DESCRIPTION,
                 _obj({"question": {"type": "string", "description": "what you need"}},
                      ["question"]))


def function_specs(context: AgentContext, *, screen: bool) -> list[tuple[str, str, dict[str, Any]]]:
    """(name, description, schema) of the functions offered for ``context``."""
    specs = []
    if screen:
        specs += [(n, d, p) for n, (d, p) in SCREEN_FUNCTIONS.items()]
    if context.terminal:
        specs += [(n, d, p) for n, (d, p) in TERMINAL_FUNCTIONS.items()]
    specs.append(REQUEST_HUMAN)
    return specs


def parse_arguments(raw: Any) -> dict[str, Any] | str:
    if isinstance(raw, dict):
        return raw
    try:
        value = json.loads(raw or "{}")
    except (TypeError, ValueError):
        return f"The arguments are not valid JSON: {str(raw)[:200]}"
    return value if isinstance(value, dict) else "The arguments must be a JSON object."


def function_actions(name: str, args: dict[str, Any],
                     screen: ModelScreen | None) -> list[Action] | str:
    """A function call → actions (screen coordinates scaled to the real screen)."""
    try:
        if name in TERMINAL_FUNCTIONS:
            if name == "run_command":
                return [RunCommand(command=str(args["command"]))]
            if name == "read_file":
                return [ReadFile(path=str(args["path"]))]
            return [WriteFile(path=str(args["path"]), content=str(args.get("content", "")))]
        if name not in SCREEN_FUNCTIONS:
            return f"Unknown function {name!r}."
        if screen is None:
            return "This machine has no screen."
        def at(kx: str, ky: str) -> tuple[int, int]:
            assert screen is not None
            return screen.to_real(float(args[kx]), float(args[ky]))

        if name in ("click", "double_click"):
            x, y = at("x", "y")
            button = args.get("button") or "left"
            return [Click(x=x, y=y, button=button, count=2 if name == "double_click" else 1)]
        if name == "type_text":
            return [TypeText(text=str(args["text"]))]
        if name == "key":
            keys = args["keys"]
            return [KeyPress(keys=xdotool_keys(keys if isinstance(keys, list)
                                               else str(keys).split("+")))]
        if name == "scroll":
            x, y = at("x", "y") if "x" in args and "y" in args else (None, None)
            amount = min(max(int(args.get("amount") or 3), 1), 50)
            return [Scroll(direction=args.get("direction") or "down", amount=amount, x=x, y=y)]
        if name == "drag":
            x, y = at("x", "y")
            to_x, to_y = at("to_x", "to_y")
            return [Drag(x=x, y=y, to_x=to_x, to_y=to_y)]
        if name == "move":
            x, y = at("x", "y")
            return [MoveMouse(x=x, y=y)]
        if name == "wait":
            return [Wait(seconds=min(max(float(args.get("seconds") or 1), 0.0), 60.0))]
        return [Screenshot()]
    except (KeyError, TypeError, ValueError) as exc:
        return f"Invalid arguments for {name}: {exc}"


class OpenAICompatBrain(Brain):
    name = "openai_compat"

    def __init__(self, provider: Provider, *, model: str | None = None,
                 grounding_model: str | None = None) -> None:
        """``provider``: the server's base URL and key (see
        :mod:`deckhand.brains.providers`); ``model`` None: the first it serves."""
        self.model = model
        self.grounding_model = grounding_model
        self.provider = provider
        self.client = provider.openai_client()

    async def aclose(self) -> None:
        await self.client.close()

    async def _call(self, make: Callable[[], Any]) -> Any:
        import openai

        try:
            return await make()
        except openai.APIError as exc:  # the SDK's errors become LLM_* codes here only
            raise self.provider.error(exc) from None

    async def _model(self) -> str:
        if self.model is None:
            page = await self._call(lambda: self.client.models.list())
            ids = [m.id for m in getattr(page, "data", [])]
            if not ids:
                raise LlmError("The OpenAI-compatible server serves no model; set "
                               "DECKHAND_OPENAI_COMPAT_MODEL.",
                               code=ErrorCode.LLM_UPSTREAM_ERROR)
            self.model = ids[0]
        return self.model

    # ------------------------------------------------------------------ decide

    async def decide(self, context: AgentContext) -> Decision:
        model = await self._model()
        screen = model_screen(context.observation) if context.observation else None
        tools = [{"type": "function", "function": {"name": n, "description": d, "parameters": p}}
                 for n, d, p in function_specs(context, screen=screen is not None)]
        request: dict[str, Any] = {
            "model": model, "messages": messages_for(context, screen), "tools": tools,
            "tool_choice": "auto", "max_tokens": MAX_TOKENS,
        }
        if context.cua_version == "v1":
            request["parallel_tool_calls"] = False
        response = await self._call(lambda: self.client.chat.completions.create(**request))
        return decision_from(response, context, screen)

    # ------------------------------------------------------------------ verify and ground

    async def _forced(self, model: str, messages: list[dict[str, Any]], name: str,
                      description: str, schema: dict[str, Any]) -> tuple[Any, TokenUsage, str]:
        response = await self._call(lambda: self.client.chat.completions.create(
            model=model, messages=messages, max_tokens=1024,
            tools=[{"type": "function", "function": {"name": name, "description": description,
                                                     "parameters": schema}}],
            tool_choice={"type": "function", "function": {"name": name}},
        ))
        usage = _usage(response)
        message = response.choices[0].message if response.choices else None
        for call in (getattr(message, "tool_calls", None) or []):
            if call.function.name == name:
                return parse_arguments(call.function.arguments), usage, ""
        return None, usage, (getattr(message, "content", None) or "")

    async def verify(self, context: AgentContext, answer: str,
                     screen: Observation | None) -> Verdict:
        model = await self._model()
        content: list[dict[str, Any]] = [
            {"type": "text", "text": verifier_prompt(context, answer, screen is not None)}]
        if screen is not None:
            content.append(_image(model_screen(screen)))
        args, usage, text = await self._forced(
            model, [{"role": "system", "content": VERIFIER_SYSTEM_PROMPT},
                    {"role": "user", "content": content}],
            REPORT_VERDICT, REPORT_VERDICT_DESCRIPTION, REPORT_VERDICT_SCHEMA)
        by = f"openai_compat {model}"
        return verdict_from_arguments(args, by, usage) if isinstance(args, dict) \
            else verdict_from_text(text, by, usage)

    async def ground(self, observation: Observation, element: str) -> Grounded:
        model = self.grounding_model or await self._model()
        screen = model_screen(observation)
        args, usage, _ = await self._forced(
            model, [{"role": "user", "content": [
                {"type": "text", "text": (
                    f"Find this element in the screenshot ({screen.width}×{screen.height} "
                    f"pixels): {element}\nCall {GROUND_TOOL} with the pixel coordinates of "
                    "its centre, or with found=false if it is not there.")},
                _image(screen)]}],
            GROUND_TOOL, "Report where the element is.", GROUND_TOOL_SCHEMA)
        return Grounded.from_arguments(args, screen, usage) if isinstance(args, dict) \
            else Grounded(found=False, usage=usage)


# --------------------------------------------------------------------------- the conversation


def _image(screen: ModelScreen) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": screen.data_url}}


def _screen_message(screen: ModelScreen, label: str) -> dict[str, Any]:
    return {"role": "user", "content": [
        {"type": "text", "text": f"{label} ({screen.width}×{screen.height} pixels; "
                                 "coordinates are pixels of this image):"},
        _image(screen)]}


def messages_for(context: AgentContext, screen: ModelScreen | None) -> list[dict[str, Any]]:
    h = history(context)
    intro = task_text(context)
    if h.summary:
        intro += f"\n\nEarlier steps (summarized):\n{h.summary}"
    messages: list[dict[str, Any]] = [{"role": "system", "content": system_prompt(context)},
                                      {"role": "user", "content": intro}]
    for turn in h.turns:
        data = turn.step.decision.provider_data or {}
        message = data.get("message")
        if not isinstance(message, dict):
            messages += [{"role": "assistant", "content": step_line(turn.step)},
                         {"role": "user", "content": "Continue."}]
        else:
            messages.append(message)
            for call in data.get("calls", []):
                text, _ = call_result_text(call, turn.step)
                messages.append({"role": "tool", "tool_call_id": call["id"], "content": text})
            if turn.step.human_note and not any(c.get("human") for c in data.get("calls", [])):
                messages.append({"role": "user",
                                 "content": f"Note from a human: {turn.step.human_note}"})
        if turn.screen_after is not None and turn is not h.turns[-1]:
            messages.append(_screen_message(model_screen(turn.screen_after),
                                            f"The screen after step {turn.step.number}"))
    if screen is not None:
        messages.append(_screen_message(screen, "The screen now"))
    if context.hint:
        messages.append({"role": "user", "content": f"Note: {context.hint}"})
    return messages


def _usage(response: Any) -> TokenUsage:
    u = getattr(response, "usage", None)
    if u is None:
        return TokenUsage()
    return TokenUsage(input_tokens=getattr(u, "prompt_tokens", 0) or 0,
                      output_tokens=getattr(u, "completion_tokens", 0) or 0)


def decision_from(response: Any, context: AgentContext, screen: ModelScreen | None) -> Decision:
    usage = _usage(response)
    if not response.choices:
        raise LlmError("The server's answer had no choices.", code=ErrorCode.LLM_UPSTREAM_ERROR)
    message = response.choices[0].message
    text = (message.content or "").strip() or None
    calls = list(getattr(message, "tool_calls", None) or [])
    if not calls:
        from deckhand.core.steps import Outcome

        return Decision(text=text, usage=usage, outcome=Outcome(success=True,
                                                                answer=text or "Done."))
    plan = Plan(context)
    raw_calls = []
    for n, call in enumerate(calls):
        call_id = getattr(call, "id", None) or f"call_{n}"
        name = call.function.name
        raw_calls.append({"id": call_id, "type": "function",
                          "function": {"name": name, "arguments": call.function.arguments or ""}})
        entry: dict[str, Any] = {"id": call_id, "name": name}
        args = parse_arguments(call.function.arguments)
        if isinstance(args, str):
            plan.add(entry, args)
        elif name == "request_human":
            plan.human(entry, str(args.get("question") or "The agent needs a human."))
        else:
            plan.add(entry, function_actions(name, args, screen))
    return Decision(actions=tuple(plan.actions), text=text, ask_human=plan.ask_human,
                    usage=usage, provider_data={
                        "message": {"role": "assistant", "content": message.content,
                                    "tool_calls": raw_calls},
                        "calls": plan.calls})
