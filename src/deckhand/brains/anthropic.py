"""The Anthropic brain: the Messages API (beta) with Claude's computer-use
tool, the bash and text-editor tools mapped onto the machine's terminal and
files, and a ``request_human`` tool.

Tools (pinned to the ``anthropic`` SDK this project depends on):

- ``computer_20251124`` with the beta header ``computer-use-2025-11-24``;
  its display is the screenshot as the model sees it (fit into 1280×800),
  and coordinates are scaled back to the machine's real resolution;
- ``bash_20250124`` → :class:`RunCommand` in the machine's terminal session;
- ``text_editor_20250728`` (``str_replace_based_edit_tool``): ``view`` →
  :class:`ReadFile`, ``create`` → :class:`WriteFile`, ``str_replace`` and
  ``insert`` → a small Python edit run in the terminal;
- ``request_human`` (a client tool) → the run asks for a human.

The conversation is rebuilt from the recorded steps on every call (the raw
assistant content and the tool-use ids ride in ``Decision.provider_data``),
so a run continues after a crash like any other.
"""

from __future__ import annotations

import base64
import json
import shlex
from typing import Any

from deckhand.brains import prompts
from deckhand.brains.base import Brain
from deckhand.brains.history import ScreenBudget, history, policy_for, step_line
from deckhand.brains.plan import Plan, call_result_text, call_results
from deckhand.brains.providers import Provider
from deckhand.brains.screen import ModelScreen, model_screen, screen_now
from deckhand.brains.tools import POINT, REPORT_VERDICT, REQUEST_HUMAN, ToolSpec
from deckhand.brains.usage import token_usage
from deckhand.brains.verdict import verdict_from_arguments
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
from deckhand.core.steps import AgentContext, Decision, Outcome, TokenUsage
from deckhand.core.verdicts import Grounded, Verdict

COMPUTER_TOOL = "computer_20251124"
COMPUTER_BETA = "computer-use-2025-11-24"
BASH_TOOL = "bash_20250124"
EDITOR_TOOL = "text_editor_20250728"
EDITOR_NAME = "str_replace_based_edit_tool"
MAX_TOKENS = 4096
EDIT_TIMEOUT_MS = 30_000

_CLICKS = {"left_click": ("left", 1), "right_click": ("right", 1), "middle_click": ("middle", 1),
           "double_click": ("left", 2), "triple_click": ("left", 3)}


class AnthropicBrain(Brain):
    name = "anthropic"

    def __init__(self, provider: Provider, *, model: str,
                 grounding_model: str | None = None,
                 screens: ScreenBudget | None = None) -> None:
        """``provider``: where the requests go, with whose key (see
        :mod:`deckhand.brains.providers`); ``screens``: how many it is shown."""
        self.model = model
        self.screens = screens
        self.grounding_model = grounding_model or model
        self.provider = provider
        self.client = provider.anthropic_client()

    async def aclose(self) -> None:
        await self.client.close()

    # ------------------------------------------------------------------ decide

    async def decide(self, context: AgentContext) -> Decision:
        screen = screen_now(context.observation)
        tools: list[dict[str, Any]] = []
        if screen is not None:
            tools.append({"type": COMPUTER_TOOL, "name": "computer",
                          "display_width_px": screen.width, "display_height_px": screen.height})
        if context.terminal:
            tools += [{"type": BASH_TOOL, "name": "bash"},
                      {"type": EDITOR_TOOL, "name": EDITOR_NAME}]
        tools.append(_tool(REQUEST_HUMAN))
        response = await self._create(
            model=self.model, max_tokens=MAX_TOKENS, system=system_blocks(context),
            messages=messages_for(context, self.screens), tools=tools,
            tool_choice={"type": "auto",
                         "disable_parallel_tool_use": context.cua_version == "v1"},
        )
        return decision_from(response, context, screen)

    async def _create(self, **request: Any) -> Any:
        import anthropic

        try:
            return await self.client.beta.messages.create(betas=[COMPUTER_BETA], **request)
        except anthropic.APIError as exc:  # the SDK's errors become LLM_* codes here only
            raise self.provider.error(exc) from None

    # ------------------------------------------------------------------ verify and ground

    async def _forced(self, spec: ToolSpec, content: list[dict[str, Any]], **request: Any
                      ) -> tuple[Any, TokenUsage, str]:
        """One call forced through the tool ``spec``: (its input, None when the
        model did not call it; the tokens; the answer's text)."""
        response = await self._create(
            **request, messages=[{"role": "user", "content": content}], tools=[_tool(spec)],
            tool_choice={"type": "tool", "name": spec.name})
        usage = _usage(response)
        for block in response.content:
            if block.type == "tool_use" and block.name == spec.name:
                return block.input, usage, ""
        return None, usage, "".join(b.text for b in response.content if b.type == "text")

    async def verify(self, context: AgentContext, answer: str,
                     screen: Observation | None) -> Verdict:
        content: list[dict[str, Any]] = [
            _text(prompts.verifier_prompt(context, answer, screen is not None))]
        if screen is not None:
            content.append(_image(model_screen(screen)))
        called, usage, text = await self._forced(
            REPORT_VERDICT, content, model=self.model, max_tokens=1024,
            system=prompts.VERIFIER_SYSTEM_PROMPT)
        judged = verdict_from_arguments(text if called is None else called)
        return Verdict(*judged, by=f"anthropic {self.model}", usage=usage)

    async def ground(self, observation: Observation, element: str) -> Grounded:
        screen = model_screen(observation)
        called, usage, _ = await self._forced(
            POINT, [_text(prompts.ground_prompt(element, screen)), _image(screen)],
            model=self.grounding_model, max_tokens=512)
        return Grounded(found=False, usage=usage) if called is None \
            else Grounded.from_arguments(called, screen, usage)


# --------------------------------------------------------------------------- the conversation


def _tool(spec: ToolSpec) -> dict[str, Any]:
    return {"name": spec.name, "description": spec.description, "input_schema": spec.schema}


def _text(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


def _image(screen: ModelScreen) -> dict[str, Any]:
    return {"type": "image",
            "source": {"type": "base64", "media_type": screen.media_type, "data": screen.b64}}


CACHE = {"type": "ephemeral"}
MAX_BREAKPOINTS = 4  # the Messages API's limit on cache_control blocks


def messages_for(context: AgentContext, budget: ScreenBudget | None = None
                 ) -> list[dict[str, Any]]:
    """The Messages API conversation for ``context``, with cache breakpoints
    (``cache_control``) on the last turns and on the turn where the text-only
    part ended a step ago (see :func:`mark_breakpoints`)."""
    h = history(context, policy_for(context.cua_version, budget))
    first: list[dict[str, Any]] = [_text(prompts.opening(context, h.summary))]
    if h.opening_screen is not None:
        first += [_text(prompts.SCREEN_AT_START), _image(model_screen(h.opening_screen))]
    messages: list[dict[str, Any]] = [{"role": "user", "content": first}]
    users: list[int] = []  # each turn's user message
    for turn in h.turns:
        data = turn.step.decision.provider_data or {}
        content = data.get("content")
        after = model_screen(turn.screen_after) if turn.screen_after is not None else None
        if not content:  # a step this brain did not make: tell it as text
            messages.append({"role": "assistant", "content": [_text(step_line(turn.step))]})
            user: list[dict[str, Any]] = [_text(prompts.CONTINUE)]
            if after is not None:
                user.append(_image(after))
            users.append(len(messages))
            messages.append({"role": "user", "content": user})
            continue
        messages.append({"role": "assistant", "content": content})
        calls = [c for c in data.get("calls", []) if isinstance(c, dict)]
        screen_call = max((i for i, c in enumerate(calls) if c.get("name") == "computer"),
                          default=None)
        user = []
        for i, call in enumerate(calls):
            text, failed = _tool_result_text(call, turn.step)
            block: dict[str, Any] = {"type": "tool_result", "tool_use_id": call["id"],
                                     "content": [_text(text)]}
            if failed:
                block["is_error"] = True
            if i == screen_call and after is not None:
                block["content"].append(_image(after))
            user.append(block)
        # the same whether or not the turn is the last: a turn once sent never changes
        if screen_call is None and after is not None:
            user += [_text(prompts.SCREEN_AFTER), _image(after)]
        note = turn.untold_note()
        if note:
            user.append(_text(prompts.human_note(note)))
        users.append(len(messages))
        messages.append({"role": "user", "content": user})
    stable = users[h.stable_turn] if h.stable_turn is not None else 0
    mark_breakpoints(messages, [stable, *users[-2:]] if users else [0])
    if context.hint:  # after the last breakpoint: the next request has no hint here
        messages[-1]["content"].append(_text(prompts.hint_note(context.hint)))
    return messages


def mark_breakpoints(messages: list[dict[str, Any]], at: list[int]) -> None:
    """``cache_control`` on the last block of the user messages ``at`` (the
    system prompt has the first of the API's four). Request n+1 repeats request
    n up to n's last user message, so its breakpoint there reads what n wrote;
    the one where the text part ended a step ago survives a chunk of screens
    dropped after it."""
    for index in sorted(set(at))[-(MAX_BREAKPOINTS - 1):]:
        content = messages[index]["content"]
        content[-1] = {**content[-1], "cache_control": CACHE}


def system_blocks(context: AgentContext) -> list[dict[str, Any]]:
    """The system prompt, its breakpoint caching the tools and the system prompt."""
    return [{**_text(prompts.system_prompt(context)), "cache_control": CACHE}]


def _tool_result_text(call: dict[str, Any], step: Any) -> tuple[str, bool]:
    text, failed = call_result_text(call, step)
    view = call.get("view")
    if not failed and isinstance(view, dict):
        results = call_results(call, step)
        if results and results[0] is not None:
            content = results[0].output or str(results[0].data.get("content") or "")
            return _numbered(content, view.get("range")), False
    return text, failed


def _numbered(content: str, view_range: Any) -> str:
    lines = content.split("\n")
    start, end = 1, len(lines)
    if isinstance(view_range, list) and len(view_range) == 2:
        start = max(1, int(view_range[0]))
        end = len(lines) if int(view_range[1]) == -1 else min(len(lines), int(view_range[1]))
    return "\n".join(f"{n:6}\t{lines[n - 1]}" for n in range(start, end + 1))


# --------------------------------------------------------------------------- the answer


def _usage(response: Any) -> TokenUsage:
    return token_usage(response, ("input_tokens", "cache_creation_input_tokens",
                                  "cache_read_input_tokens"), "output_tokens",
                       created="cache_creation_input_tokens", read="cache_read_input_tokens")


def decision_from(response: Any, context: AgentContext, screen: ModelScreen | None) -> Decision:
    content: list[dict[str, Any]] = []
    texts: list[str] = []
    thinking: list[str] = []
    plan = Plan(context)
    for block in response.content:
        if block.type == "text":
            texts.append(block.text)
            content.append({"type": "text", "text": block.text})
        elif block.type == "thinking":
            thinking.append(block.thinking)
            content.append({"type": "thinking", "thinking": block.thinking,
                            "signature": block.signature})
        elif block.type == "tool_use":
            tool_input = dict(block.input) if isinstance(block.input, dict) else {}
            content.append({"type": "tool_use", "id": block.id, "name": block.name,
                            "input": tool_input})
            call: dict[str, Any] = {"id": block.id, "name": block.name}
            if block.name == REQUEST_HUMAN.name:
                plan.request_human(call, tool_input)
            elif block.name == "computer":
                plan.add(call, computer_actions(tool_input, screen))
            elif block.name == "bash":
                plan.add(call, bash_actions(tool_input))
            elif block.name == EDITOR_NAME:
                if tool_input.get("command") == "view":
                    call["view"] = {"range": tool_input.get("view_range")}
                plan.add(call, editor_actions(tool_input))
            else:
                plan.add(call, f"Unknown tool {block.name!r}.")
    text = "\n".join(t for t in texts if t.strip()) or None
    usage = _usage(response)
    reasoning = "\n".join(thinking) or None
    if not plan.calls:
        if getattr(response, "stop_reason", None) == "refusal":
            return Decision(text=text, reasoning=reasoning, usage=usage, outcome=Outcome(
                success=False, error_code="AGENT_FAILED",
                message=f"The model refused to continue: {text or 'no reason given'}"))
        return Decision(text=text, reasoning=reasoning, usage=usage,
                        outcome=Outcome(success=True, answer=text or "Done."))
    return Decision(actions=tuple(plan.actions), text=text, reasoning=reasoning,
                    ask_human=plan.ask_human, usage=usage,
                    provider_data={"content": content, "calls": plan.calls})


def computer_actions(tool_input: dict[str, Any], screen: ModelScreen | None) -> list[Action] | str:
    """The ``computer`` tool's input → actions (coordinates scaled to the real screen)."""
    if screen is None:
        return "This machine has no screen."
    action = tool_input.get("action")

    def point(name: str = "coordinate") -> tuple[int, int] | None:
        value = tool_input.get(name)
        if isinstance(value, (list, tuple)) and len(value) == 2:
            return screen.to_real(value[0], value[1])
        return None

    try:
        if action in _CLICKS:
            at = point()
            if at is None:
                return f"{action} needs a coordinate."
            button, count = _CLICKS[action]
            return [Click(x=at[0], y=at[1], button=button, count=count)]  # type: ignore[arg-type]
        if action == "mouse_move":
            at = point()
            return [MoveMouse(x=at[0], y=at[1])] if at else "mouse_move needs a coordinate."
        if action == "left_click_drag":
            start, end = point("start_coordinate"), point()
            if start is None or end is None:
                return "left_click_drag needs start_coordinate and coordinate."
            return [Drag(x=start[0], y=start[1], to_x=end[0], to_y=end[1])]
        if action == "type":
            return [TypeText(text=str(tool_input.get("text") or ""))]
        if action == "key":
            return [KeyPress(keys=str(tool_input.get("text") or ""))]
        if action == "scroll":
            at = point()
            amount = int(tool_input.get("scroll_amount") or 3)
            return [Scroll(direction=tool_input.get("scroll_direction") or "down",
                           amount=min(max(amount, 1), 50),
                           x=at[0] if at else None, y=at[1] if at else None)]
        if action == "wait":
            return [Wait(seconds=min(float(tool_input.get("duration") or 1), 60.0))]
        if action == "screenshot":
            return [Screenshot()]
    except (TypeError, ValueError) as exc:
        return f"Invalid {action} input: {exc}"
    return f"The computer action {action!r} is not supported here."


def bash_actions(tool_input: dict[str, Any]) -> list[Action] | str:
    if tool_input.get("restart"):
        return [RunCommand(command="cd ~", timeout_ms=EDIT_TIMEOUT_MS)]
    command = tool_input.get("command")
    if not isinstance(command, str) or not command.strip():
        return "bash needs a command."
    return [RunCommand(command=command)]


_STR_REPLACE = """
p = a["path"]; s = open(p).read(); n = s.count(a["old"])
if n != 1:
    print(("No" if n == 0 else str(n)) + " occurrences of old_str in " + p
          + "; it must appear exactly once."); raise SystemExit(1)
open(p, "w").write(s.replace(a["old"], a["new"], 1)); print("Edited " + p)
"""
_INSERT = """
p = a["path"]; lines = open(p).read().splitlines(keepends=True); at = a["line"]
if not 0 <= at <= len(lines):
    print("insert_line must be between 0 and " + str(len(lines))); raise SystemExit(1)
text = a["text"] if a["text"].endswith("\\n") else a["text"] + "\\n"
lines.insert(at, text); open(p, "w").write("".join(lines)); print("Edited " + p)
"""


def _python_edit(script: str, **args: Any) -> RunCommand:
    payload = base64.b64encode(json.dumps(args).encode()).decode()
    code = f"import base64, json\na = json.loads(base64.b64decode('{payload}'))\n{script}"
    return RunCommand(command=f"python3 -c {shlex.quote(code)}", timeout_ms=EDIT_TIMEOUT_MS)


def editor_actions(tool_input: dict[str, Any]) -> list[Action] | str:
    command, path = tool_input.get("command"), tool_input.get("path")
    if not isinstance(path, str) or not path:
        return "The editor needs a path."
    if command == "view":
        return [ReadFile(path=path)]
    if command == "create":
        return [WriteFile(path=path, content=str(tool_input.get("file_text") or ""))]
    if command == "str_replace":
        return [_python_edit(_STR_REPLACE, path=path, old=str(tool_input.get("old_str") or ""),
                             new=str(tool_input.get("new_str") or ""))]
    if command == "insert":
        text = tool_input.get("insert_text", tool_input.get("new_str"))
        return [_python_edit(_INSERT, path=path, line=int(tool_input.get("insert_line") or 0),
                             text=str(text or ""))]
    return f"The editor command {command!r} is not supported."
