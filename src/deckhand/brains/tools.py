"""The client tools a model is offered, written once for every provider, and
what a call to one of them comes to.

A :class:`ToolSpec` is a name, a description and the JSON schema of the
arguments: Anthropic sends the schema as a tool's ``input_schema``, OpenAI's
Responses API and Chat Completions as a function's ``parameters``, so each
brain only wraps a spec in its wire format. The function tools (the screen,
the terminal and files) serve the two OpenAI brains, whose computer tools
differ; Anthropic has its own computer, bash and editor tools.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from deckhand.brains.keys import xdotool_keys
from deckhand.brains.plan import Plan
from deckhand.brains.screen import ModelScreen
from deckhand.core import actions
from deckhand.core.steps import AgentContext


@dataclass(frozen=True)
class ToolSpec:
    """A client tool as every provider takes it: its name, what it is for, and
    the JSON schema of its arguments."""

    name: str
    description: str
    schema: dict[str, Any]


def _obj(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": required}


REQUEST_HUMAN = ToolSpec(
    "request_human",
    "Ask a human for help or approval and wait for the answer. Use it when you cannot go on "
    "without a person: credentials, a CAPTCHA, an irreversible or sensitive action to "
    "approve, or a choice only they can make.",
    _obj({"question": {"type": "string", "description": "what you need"}}, ["question"]))

REPORT_VERDICT = ToolSpec(
    "report_verdict",
    "Report whether the task is complete, with a one-sentence reason.",
    _obj({"passed": {"type": "boolean", "description": "true only if the task is complete"},
          "reason": {"type": "string", "description": "why, in one or two sentences"}},
         ["passed", "reason"]))

# core.verdicts.Grounded reads its arguments
POINT = ToolSpec("point", "Report where the element is.", _obj({
    "found": {"type": "boolean", "description": "false if the element is not visible"},
    "x": {"type": "integer", "description": "x of the element's centre, in image pixels"},
    "y": {"type": "integer", "description": "y of the element's centre, in image pixels"},
}, ["found"]))

_XY = {"x": {"type": "integer", "description": "pixels from the left of the screenshot"},
       "y": {"type": "integer", "description": "pixels from the top of the screenshot"}}

SCREEN_FUNCTIONS: dict[str, ToolSpec] = {spec.name: spec for spec in (
    ToolSpec("click", "Click at a point of the screenshot.", _obj({
        **_XY, "button": {"type": "string", "enum": ["left", "right", "middle"]}}, ["x", "y"])),
    ToolSpec("double_click", "Double-click at a point of the screenshot.",
             _obj(_XY, ["x", "y"])),
    ToolSpec("type_text", "Type text with the keyboard.",
             _obj({"text": {"type": "string"}}, ["text"])),
    ToolSpec("key", "Press a key or a combination, e.g. Return, ctrl+s, alt+Tab.",
             _obj({"keys": {"type": "string"}}, ["keys"])),
    ToolSpec("scroll", "Scroll at a point of the screenshot.", _obj({
        **_XY, "direction": {"type": "string", "enum": ["up", "down", "left", "right"]},
        "amount": {"type": "integer", "description": "wheel clicks, 1-50"}},
        ["direction"])),
    ToolSpec("drag", "Drag with the left button from (x, y) to (to_x, to_y).", _obj({
        **_XY, "to_x": {"type": "integer"}, "to_y": {"type": "integer"}},
        ["x", "y", "to_x", "to_y"])),
    ToolSpec("move", "Move the mouse to a point of the screenshot.", _obj(_XY, ["x", "y"])),
    ToolSpec("wait", "Wait a few seconds for the screen to settle.",
             _obj({"seconds": {"type": "number"}}, ["seconds"])),
    ToolSpec("screenshot", "Look at the screen again without acting.", _obj({}, [])),
)}
TERMINAL_FUNCTIONS: dict[str, ToolSpec] = {spec.name: spec for spec in (
    ToolSpec("run_command", ("Run a shell command in the machine's persistent bash session; "
                             "returns its output and exit code."),
             _obj({"command": {"type": "string"}}, ["command"])),
    ToolSpec("read_file", "Read a text file on the machine.",
             _obj({"path": {"type": "string"}}, ["path"])),
    ToolSpec("write_file", "Write (create or replace) a text file on the machine.",
             _obj({"path": {"type": "string"}, "content": {"type": "string"}},
                  ["path", "content"])),
)}


def function_specs(context: AgentContext, *, screen: bool) -> list[ToolSpec]:
    """The function tools offered for ``context`` (the screen's only when it is
    driven through functions rather than a provider's computer tool)."""
    specs: list[ToolSpec] = []
    if screen:
        specs += SCREEN_FUNCTIONS.values()
    if context.terminal:
        specs += TERMINAL_FUNCTIONS.values()
    specs.append(REQUEST_HUMAN)
    return specs


def parse_arguments(raw: Any) -> dict[str, Any] | str:
    """A function call's arguments (OpenAI sends them as JSON text), or why
    they cannot be read."""
    if isinstance(raw, dict):
        return raw
    try:
        value = json.loads(raw or "{}")
    except (TypeError, ValueError):
        return f"The arguments are not valid JSON: {str(raw)[:200]}"
    return value if isinstance(value, dict) else "The arguments must be a JSON object."


def plan_function_call(plan: Plan, call: dict[str, object], name: str, raw_arguments: Any,
                       screen: ModelScreen | None) -> None:
    """Add a function call to ``plan``: the actions it comes to, the human it
    asks for, or why it comes to nothing."""
    args = parse_arguments(raw_arguments)
    if isinstance(args, str):
        plan.add(call, args)
    elif name == REQUEST_HUMAN.name:
        plan.request_human(call, args)
    else:
        plan.add(call, function_actions(name, args, screen))


def function_actions(name: str, args: dict[str, Any],
                     screen: ModelScreen | None) -> list[actions.Action] | str:
    """A function call → actions (screen coordinates scaled to the real screen)."""
    try:
        if name in TERMINAL_FUNCTIONS:
            if name == "run_command":
                return [actions.RunCommand(command=str(args["command"]))]
            if name == "read_file":
                return [actions.ReadFile(path=str(args["path"]))]
            return [actions.WriteFile(path=str(args["path"]),
                                      content=str(args.get("content", "")))]
        if name not in SCREEN_FUNCTIONS:
            return f"Unknown function {name!r}."
        if screen is None:
            return "This machine has no screen."
        def at(kx: str, ky: str) -> tuple[int, int]:
            assert screen is not None
            return screen.to_real(float(args[kx]), float(args[ky]))

        if name in ("click", "double_click"):
            x, y = at("x", "y")
            button: Any = args.get("button") or "left"  # the Click model checks it
            return [actions.Click(x=x, y=y, button=button,
                                  count=2 if name == "double_click" else 1)]
        if name == "type_text":
            return [actions.TypeText(text=str(args["text"]))]
        if name == "key":
            keys = args["keys"]
            return [actions.KeyPress(keys=xdotool_keys(keys if isinstance(keys, list)
                                                       else str(keys).split("+")))]
        if name == "scroll":
            at_x, at_y = at("x", "y") if "x" in args and "y" in args else (None, None)
            amount = min(max(int(args.get("amount") or 3), 1), 50)
            return [actions.Scroll(direction=args.get("direction") or "down", amount=amount,
                                   x=at_x, y=at_y)]
        if name == "drag":
            x, y = at("x", "y")
            to_x, to_y = at("to_x", "to_y")
            return [actions.Drag(x=x, y=y, to_x=to_x, to_y=to_y)]
        if name == "move":
            x, y = at("x", "y")
            return [actions.MoveMouse(x=x, y=y)]
        if name == "wait":
            return [actions.Wait(seconds=min(max(float(args.get("seconds") or 1), 0.0), 60.0))]
        return [actions.Screenshot()]
    except (KeyError, TypeError, ValueError) as exc:
        return f"Invalid arguments for {name}: {exc}"
