"""The OpenAI-compatible brain: Chat Completions with image inputs and
function calling, for local or hosted servers that speak OpenAI's wire
protocol (vLLM, Ollama, llama.cpp, LM Studio) at a base URL.

The model gets the screenshot (fit into 1280×800) as an image and calls
functions whose coordinates are pixels of that image; they are scaled to the
machine's real resolution. The functions are :mod:`deckhand.brains.tools`'s,
whose terminal, files and ``request_human`` functions the ``openai`` brain
offers too.

With no model configured the brain asks the server (``GET /models``) and uses
the first model it serves, which suits single-model servers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from deckhand.brains import prompts
from deckhand.brains.base import Brain
from deckhand.brains.history import ScreenBudget, history, policy_for, step_line
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
from deckhand.core.screens import Observation
from deckhand.core.steps import AgentContext, Decision, TokenUsage
from deckhand.core.verdicts import Grounded, Verdict
from deckhand.errors import ErrorCode, LlmError

MAX_TOKENS = 4096


class OpenAICompatBrain(Brain):
    name = "openai_compat"

    def __init__(self, provider: Provider, *, model: str | None = None,
                 grounding_model: str | None = None,
                 screens: ScreenBudget | None = None) -> None:
        """``provider``: the server's base URL and key (see
        :mod:`deckhand.brains.providers`); ``model`` None: the first it serves;
        ``screens``: how many it is shown."""
        self.model = model
        self.screens = screens
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
        screen = screen_now(context.observation)
        tools = [_function(spec) for spec in function_specs(context, screen=screen is not None)]
        request: dict[str, Any] = {
            "model": model, "messages": messages_for(context, screen, self.screens),
            "tools": tools,
            "tool_choice": "auto", "max_tokens": MAX_TOKENS,
        }
        if context.cua_version == "v1":
            request["parallel_tool_calls"] = False
        response = await self._call(lambda: self.client.chat.completions.create(**request))
        return decision_from(response, context, screen)

    # ------------------------------------------------------------------ verify and ground

    async def _forced(self, model: str, messages: list[dict[str, Any]], spec: ToolSpec
                      ) -> tuple[Any, TokenUsage, str]:
        response = await self._call(lambda: self.client.chat.completions.create(
            model=model, messages=messages, max_tokens=1024, tools=[_function(spec)],
            tool_choice={"type": "function", "function": {"name": spec.name}},
        ))
        usage = _usage(response)
        message = response.choices[0].message if response.choices else None
        for call in (getattr(message, "tool_calls", None) or []):
            if call.function.name == spec.name:
                return parse_arguments(call.function.arguments), usage, ""
        return None, usage, (getattr(message, "content", None) or "")

    async def verify(self, context: AgentContext, answer: str,
                     screen: Observation | None) -> Verdict:
        model = await self._model()
        content = [_text(prompts.verifier_prompt(context, answer, screen is not None))]
        if screen is not None:
            content.append(_image(model_screen(screen)))
        args, usage, text = await self._forced(
            model, [{"role": "system", "content": prompts.VERIFIER_SYSTEM_PROMPT},
                    {"role": "user", "content": content}], REPORT_VERDICT)
        return Verdict(*judge(args, text), by=f"openai_compat {model}", usage=usage)

    async def ground(self, observation: Observation, element: str) -> Grounded:
        model = self.grounding_model or await self._model()
        screen = model_screen(observation)
        args, usage, _ = await self._forced(
            model, [{"role": "user", "content": [_text(prompts.ground_prompt(element, screen)),
                                                  _image(screen)]}], POINT)
        return Grounded.from_arguments(args, screen, usage) if isinstance(args, dict) \
            else Grounded(found=False, usage=usage)


# --------------------------------------------------------------------------- the conversation


def _function(spec: ToolSpec) -> dict[str, Any]:
    return {"type": "function", "function": {"name": spec.name, "description": spec.description,
                                             "parameters": spec.schema}}


def _text(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


def _image(screen: ModelScreen) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": screen.data_url}}


def _screen_message(screen: ModelScreen, label: str) -> dict[str, Any]:
    return {"role": "user", "content": [
        _text(f"{label} ({screen.width}×{screen.height} pixels; "
              "coordinates are pixels of this image):"),
        _image(screen)]}


def messages_for(context: AgentContext, screen: ModelScreen | None,
                 budget: ScreenBudget | None = None) -> list[dict[str, Any]]:
    """The conversation, byte-stable from one step to the next: request n+1
    repeats request n's messages (the current screen is "the screen after step
    n" in both) until a chunk of screens is dropped, so a server's prefix cache
    (vLLM's automatic prefix caching, llama.cpp's prompt cache) reuses it."""
    h = history(context, policy_for(context.cua_version, budget))
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": prompts.system_prompt(context)},
        {"role": "user", "content": prompts.opening(context, h.summary)}]
    if h.opening_screen is not None:
        messages.append(_screen_message(model_screen(h.opening_screen),
                                        "The screen at the start"))
    for turn in h.turns:
        data = turn.step.decision.provider_data or {}
        message = data.get("message")
        if not isinstance(message, dict):
            messages += [{"role": "assistant", "content": step_line(turn.step)},
                         {"role": "user", "content": prompts.CONTINUE}]
        else:
            messages.append(message)
            for call in data.get("calls", []):
                text, _ = call_result_text(call, turn.step)
                messages.append({"role": "tool", "tool_call_id": call["id"], "content": text})
            note = turn.untold_note()
            if note:
                messages.append({"role": "user", "content": prompts.human_note(note)})
        if turn.screen_after is not None:
            messages.append(_screen_message(model_screen(turn.screen_after),
                                            f"The screen after step {turn.step.number}"))
    if context.hint:
        messages.append({"role": "user", "content": prompts.hint_note(context.hint)})
    return messages


def _usage(response: Any) -> TokenUsage:
    return token_usage(response, ("prompt_tokens",), "completion_tokens",
                       details="prompt_tokens_details")


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
        plan_function_call(plan, {"id": call_id, "name": name}, name, call.function.arguments,
                           screen)
    return Decision(actions=tuple(plan.actions), text=text, ask_human=plan.ask_human,
                    usage=usage, provider_data={
                        "message": {"role": "assistant", "content": message.content,
                                    "tool_calls": raw_calls},
                        "calls": plan.calls})
