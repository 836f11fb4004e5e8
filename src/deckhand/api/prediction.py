"""What the inference calls share (predict, ground, session predict): the
screenshot and the trajectory in, the prediction out, one decision through the
resolved brain (verified in v4/v5), and the call's price: the wallet check, the
charge, and its credits and model tokens in the usage summary."""

from __future__ import annotations

import base64
import binascii
from typing import Any, Literal

from fastapi import Response
from pydantic import BaseModel, ConfigDict, Field

from deckhand.agent.verifier import apply_verdict, needs_verification
from deckhand.auth import Principal
from deckhand.brains.base import Brain
from deckhand.brains.resolve import (
    Choice,
)
from deckhand.brains.screen import image_size
from deckhand.core.actions import Action, Click, ClickText, TypeText
from deckhand.core.screens import Observation
from deckhand.core.steps import AgentContext, Decision, StepRecord, TokenUsage
from deckhand.engine.llm_credentials import LlmCredentials
from deckhand.errors import DeckhandError, ErrorCode, InsufficientCredits, NotFound
from deckhand.parse_pyautogui import action_response
from deckhand.pricing import call_credits
from deckhand.services import Services
from deckhand.store import ledger as ledger_store
from deckhand.store import usage as usage_store

B64 = r"^[A-Za-z0-9+/=]+$"
ActionType = Literal["click", "type_text", "key_press", "key_combo", "scroll", "drag", "move",
                     "wait"]
CuaVersion = Literal["v1", "v3", "v4", "v5"]
ACTION_TYPES = ("click", "type_text", "key_press", "key_combo", "scroll", "drag", "move", "wait",
                "done", "fail")
# errors that mean "this brain cannot serve the call", not "the task failed"
_BRAIN_PROBLEMS = (ErrorCode.OFFLINE_BRAIN_UNSUPPORTED.value, ErrorCode.BRAIN_ERROR.value)


def unique_items(v: list[str] | None) -> list[str] | None:
    if v is not None and len(set(v)) != len(v):
        raise ValueError("tools must not repeat")
    return v


class ActionResponse(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action_type: Literal["click", "type_text", "key_press", "key_combo", "scroll", "drag",
                         "move", "wait", "done", "fail"]
    params: dict[str, Any] | None = None
    description: str | None = None
    raw_code: str | None = None


class TrajectoryStep(BaseModel):
    model_config = ConfigDict(extra="forbid")

    screenshot: str = Field(min_length=100, max_length=10485760, pattern=B64)
    actions: list[ActionResponse] = Field(default_factory=list, max_length=10)
    reasoning: str | None = Field(default=None, max_length=16000)


def observation_of(screenshot: str, width: int | None, height: int | None) -> Observation:
    """The screenshot as an observation in the requested screen space."""
    try:
        data = base64.b64decode(screenshot, validate=True)
        true_w, true_h = image_size(data)
    except (binascii.Error, ValueError):
        raise DeckhandError(
            "The screenshot is not base64 of a PNG or JPEG image.",
            code=ErrorCode.INVALID_SCREENSHOT,
            examples={"max_base64_bytes": 10485760, "max_mb": 10, "min_base64_chars": 100,
                      "formats": ["png", "jpeg"]}) from None
    return Observation(screenshot_jpeg=data, width=width or true_w, height=height or true_h)


def trajectory_steps(entries: list[dict[str, Any]]) -> tuple[StepRecord, ...]:
    """Past predictions as steps a brain can summarize."""
    steps = []
    for n, entry in enumerate(entries, start=1):
        did = "; ".join(_describe(a) for a in entry.get("actions") or []) or "nothing"
        text = f"did {did}"
        if entry.get("instruction"):
            text = f"for {entry['instruction']!r} {text}"
        if entry.get("reasoning"):
            text += f" (reasoning: {' '.join(str(entry['reasoning']).split())[:300]})"
        steps.append(StepRecord(number=n, decision=Decision(text=text)))
    return tuple(steps)


def _describe(action: dict[str, Any]) -> str:
    params = action.get("params") or {}
    shown = ", ".join(f"{k}={v!r}" for k, v in params.items())
    return f"{action.get('action_type')}({shown})"


def prediction(decision: Decision, *, include_reasoning: bool,
               include_raw_code: bool) -> dict[str, Any]:
    """The body parts a predict answers with: actions, raw_code, reasoning, status."""
    actions = [a for a in (action_response(x) for x in decision.actions) if a is not None]
    status = "continue"
    if decision.outcome is not None and decision.outcome.success:
        status = "done"
        actions.append({"action_type": "done",
                        "params": {"answer": decision.outcome.answer or decision.text or ""}})
    elif decision.outcome is not None:
        status = "fail"
        actions.append({"action_type": "fail", "params": {
            "reason": decision.outcome.message or decision.text or "The agent gave up.",
            "code": decision.outcome.error_code}})
    elif decision.ask_human is not None:
        status = "fail"
        actions.append({"action_type": "fail",
                        "params": {"reason": decision.ask_human, "needs_human": True}})
    body: dict[str, Any] = {"actions": actions, "status": status}
    if include_raw_code:
        body["raw_code"] = [a["raw_code"] for a in actions if a.get("raw_code")]
    else:
        for a in actions:
            a.pop("raw_code", None)
    reasoning = decision.reasoning or decision.text
    if include_reasoning and reasoning:
        body["reasoning"] = reasoning
    return body


def usage_info(mode: str, decision: Decision, charged: int) -> dict[str, Any]:
    return {"input_tokens": decision.usage.input_tokens,
            "output_tokens": decision.usage.output_tokens,
            "credits_charged": charged, "cost_cents": charged,
            "breakdown": [{"item": "base", "credits": charged}] if charged else None,
            "billed": mode == "live" and charged > 0}


async def afford(svc: Services, caller: Principal, billing_code: str) -> int:
    cost = call_credits(caller.mode, billing_code)
    if cost:
        async with svc.db.read() as conn:
            balance = await ledger_store.balance(conn, caller.account_id)
        if balance is not None and balance < cost:
            raise InsufficientCredits(f"A {billing_code} call costs {cost} credits; "
                                      f"{balance} left.")
    return cost


async def meter(conn: Any, caller: Principal, operation: str, charged: int,
                 usage: TokenUsage) -> None:
    """Count a call's credits and model tokens in the usage summary (GET /v1/usage)."""
    if charged or usage.input_tokens or usage.output_tokens:
        await usage_store.record(conn, account_id=caller.account_id, mode=caller.mode,
                                 endpoint=operation, credits=charged, cost_cents=charged,
                                 input_tokens=usage.input_tokens,
                                 output_tokens=usage.output_tokens,
                                 cache_creation_input_tokens=usage.cache_creation_input_tokens,
                                 cache_read_input_tokens=usage.cache_read_input_tokens)


async def charge(conn: Any, caller: Principal, billing_code: str, operation: str,
                  cost: int, response: Response, usage: TokenUsage) -> int:
    charged, balance = 0, None
    if cost:
        charged, balance = await ledger_store.debit_call(
            conn, account_id=caller.account_id, mode=caller.mode, kind=billing_code,
            credits=cost)
    else:
        balance = await ledger_store.balance(conn, caller.account_id)
    await meter(conn, caller, operation, charged, usage)
    response.headers["X-Credits-Charged"] = str(charged)
    if balance is not None:
        response.headers["X-Credits-Remaining"] = str(max(balance, 0))
    return charged


async def decide(brain: Brain, context: AgentContext) -> Decision:
    """One decision, verified (v4/v5) when it says the task is done."""
    decision = await brain.decide(context)
    outcome = decision.outcome
    if outcome is not None and not outcome.success and outcome.error_code in _BRAIN_PROBLEMS:
        raise DeckhandError(outcome.message or "The brain cannot serve this call.",
                            code=ErrorCode(outcome.error_code))
    if outcome is not None and outcome.success and needs_verification(context.cua_version):
        verdict = await brain.verify(context, outcome.answer or decision.text or "",
                                     context.observation)
        decision = apply_verdict(decision, verdict)
    return await ground_labels(brain, decision, context.observation)


async def ground_labels(brain: Brain, decision: Decision,
                        screen: Observation | None) -> Decision:
    """Actions on a label (the offline brain's ``click "LABEL"`` and ``type
    "TEXT" into "LABEL"``) become actions at the label's point: a run's machine
    would find the label (or the field it names) itself, but an inference call
    has only the posted screenshot, and the contract's actions are
    coordinates. The brain grounds each label on that screenshot (the offline
    brain with text recognition): a click there, and for a type, a click there
    and then the typing. A model brain never answers a label, so its answer is
    unchanged."""
    def on_label(a: Action) -> bool:
        return isinstance(a, ClickText) or (isinstance(a, TypeText) and a.into is not None)

    if screen is None or not any(on_label(a) for a in decision.actions):
        return decision
    actions: list[Action] = []
    for action in decision.actions:
        if isinstance(action, ClickText):
            actions.append(await _click_on(brain, screen, action.label))
        elif isinstance(action, TypeText) and action.into is not None:
            actions += [await _click_on(brain, screen, action.into),
                        action.model_copy(update={"into": None})]
        else:
            actions.append(action)
    return decision.model_copy(update={"actions": tuple(actions)})


async def _click_on(brain: Brain, screen: Observation, label: str) -> Click:
    found = await brain.ground(screen, label)
    if not found.found:
        raise NotFound(f"The element {label[:200]!r} was not found on the screenshot.")
    return Click(x=found.x, y=found.y)


async def run_brain(brains: LlmCredentials, choice: Choice, task: str,
                     context: AgentContext) -> Decision:
    brain = brains.for_choice(choice, task)
    try:
        return await decide(brain, context)
    finally:
        await brain.aclose()
