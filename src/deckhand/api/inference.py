"""Inference without a machine (the contract's ``predict`` and ``sessions``
tags): a screenshot and an instruction in, structured actions out, through
the same brains that drive runs.

- POST /v1/predict — stateless; an optional client-sent trajectory;
- /v1/sessions* — the server keeps the trajectory (2-hour idle lifetime);
- POST /v1/ground — where is an element (x, y);
- POST /v1/parse — pyautogui code → actions (parsed, never executed);
- GET /v1/models — the brains, the cua_versions and the action types.

Coordinates are in the screen space the request names (``screen_width`` ×
``screen_height``, else the screenshot's true size); the model sees the
screenshot fit into 1280×800 and its answer is scaled back.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any, Literal

from fastapi import Depends, Header, Path, Request, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator

from deckhand.agent.context import image_size
from deckhand.agent.verifier import apply_verdict, needs_verification, verify
from deckhand.api.deps import principal, services
from deckhand.api.llm_request import LlmConfig, llm_request
from deckhand.api.routing import endpoint, router
from deckhand.auth import Principal
from deckhand.brains.base import AgentContext, Decision, StepRecord, TokenUsage
from deckhand.brains.resolve import (
    ANTHROPIC,
    OFFLINE,
    OPENAI,
    OPENAI_COMPAT,
    SCRIPTED,
    BrainResolver,
    Choice,
    close_brain,
    parse_model,
)
from deckhand.errors import DeckhandError, ErrorCode, InsufficientCredits, NotFound
from deckhand.machines.base import Observation
from deckhand.parse_pyautogui import action_response
from deckhand.parse_pyautogui import parse as parse_code
from deckhand.pricing import call_credits
from deckhand.services import Services
from deckhand.store import ledger as ledger_store
from deckhand.store import sessions as sessions_store
from deckhand.store import usage as usage_store
from deckhand.store.types import iso

predict_r = router(tags=["predict"])
sessions_r = router(tags=["sessions"])

Svc = Annotated[Services, Depends(services)]
Caller = Annotated[Principal, Depends(principal)]
B64 = r"^[A-Za-z0-9+/=]+$"
ActionType = Literal["click", "type_text", "key_press", "key_combo", "scroll", "drag", "move",
                     "wait"]
CuaVersion = Literal["v1", "v3", "v4", "v5"]
SessionIdParam = Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_-]+$",
                                     description="Stateful CUA session identifier.")]
ACTION_TYPES = ("click", "type_text", "key_press", "key_combo", "scroll", "drag", "move", "wait",
                "done", "fail")
# errors that mean "this brain cannot serve the call", not "the task failed"
_BRAIN_PROBLEMS = (ErrorCode.OFFLINE_BRAIN_UNSUPPORTED.value, ErrorCode.BRAIN_ERROR.value)


# --------------------------------------------------------------------------- bodies


def _unique(v: list[str] | None) -> list[str] | None:
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


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    screenshot: str = Field(min_length=100, max_length=10485760, pattern=B64)
    instruction: str = Field(min_length=1, max_length=32000)
    cua_version: CuaVersion = "v5"
    model: str | None = Field(default=None, min_length=1, max_length=512)
    system_prompt: str | None = Field(default=None, max_length=16000)
    instructions: str | None = Field(default=None, max_length=16000)
    screen_width: int | None = Field(default=None, ge=320, le=3840)
    screen_height: int | None = Field(default=None, ge=240, le=2160)
    trajectory: list[TrajectoryStep] = Field(default_factory=list, max_length=20)
    max_actions: int = Field(default=5, ge=1, le=10)
    tools: list[ActionType] | None = Field(default=None, min_length=1, max_length=8)
    include_reasoning: bool = True
    include_raw_code: bool = True
    llm: LlmConfig | None = None

    @field_validator("tools")
    @classmethod
    def _tools_unique(cls, v: list[str] | None) -> list[str] | None:
        return _unique(v)


class CreateSessionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cua_version: CuaVersion = "v5"
    model: str | None = Field(default=None, min_length=1, max_length=512)
    screen_width: int = Field(default=1920, ge=320, le=3840)
    screen_height: int = Field(default=1080, ge=240, le=2160)
    max_trajectory_length: int = Field(default=3, ge=1, le=20)
    system_prompt: str | None = Field(default=None, max_length=16000)
    instructions: str | None = Field(default=None, max_length=16000)
    tools: list[ActionType] | None = Field(default=None, min_length=1, max_length=8)
    metadata: dict[str, Any] | None = None
    llm: LlmConfig | None = None

    @field_validator("tools")
    @classmethod
    def _tools_unique(cls, v: list[str] | None) -> list[str] | None:
        return _unique(v)

    @field_validator("metadata")
    @classmethod
    def _metadata_size(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        import json

        if v is not None and (len(v) > 32 or len(json.dumps(v).encode()) > 16384):
            raise ValueError("at most 32 keys and 16,384 bytes")
        return v


class SessionPredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    screenshot: str = Field(min_length=100, max_length=10485760, pattern=B64)
    instruction: str = Field(min_length=1, max_length=32000)
    include_reasoning: bool = True
    include_raw_code: bool = True


class GroundRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    screenshot: str = Field(min_length=100, max_length=10485760, pattern=B64)
    element: str = Field(min_length=1, max_length=32000)
    screen_width: int | None = Field(default=None, ge=320, le=3840)
    screen_height: int | None = Field(default=None, ge=240, le=2160)


class ParseRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(min_length=1, max_length=50000)


# --------------------------------------------------------------------------- helpers


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


def _trajectory_steps(entries: list[dict[str, Any]]) -> tuple[StepRecord, ...]:
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


def _usage(mode: str, decision: Decision, charged: int) -> dict[str, Any]:
    return {"input_tokens": decision.usage.input_tokens,
            "output_tokens": decision.usage.output_tokens,
            "credits_charged": charged, "cost_cents": charged,
            "breakdown": [{"item": "base", "credits": charged}] if charged else None,
            "billed": mode == "live" and charged > 0}


async def _afford(svc: Services, caller: Principal, billing_code: str) -> int:
    cost = call_credits(caller.mode, billing_code)
    if cost:
        async with svc.db.read() as conn:
            balance = await ledger_store.balance(conn, caller.account_id)
        if balance is not None and balance < cost:
            raise InsufficientCredits(f"A {billing_code} call costs {cost} credits; "
                                      f"{balance} left.")
    return cost


async def _meter(conn: Any, caller: Principal, operation: str, charged: int,
                 usage: TokenUsage) -> None:
    """Count a call's credits and model tokens in the usage summary (GET /v1/usage)."""
    if charged or usage.input_tokens or usage.output_tokens:
        await usage_store.record(conn, account_id=caller.account_id, mode=caller.mode,
                                 endpoint=operation, credits=charged, cost_cents=charged,
                                 input_tokens=usage.input_tokens,
                                 output_tokens=usage.output_tokens)


async def _charge(conn: Any, caller: Principal, billing_code: str, operation: str,
                  cost: int, response: Response, usage: TokenUsage) -> int:
    charged, balance = 0, None
    if cost:
        charged, balance = await ledger_store.debit_call(
            conn, account_id=caller.account_id, mode=caller.mode, kind=billing_code,
            credits=cost)
    else:
        balance = await ledger_store.balance(conn, caller.account_id)
    await _meter(conn, caller, operation, charged, usage)
    response.headers["X-Credits-Charged"] = str(charged)
    if balance is not None:
        response.headers["X-Credits-Remaining"] = str(max(balance, 0))
    return charged


async def _decide(brain: Any, context: AgentContext) -> Decision:
    """One decision, verified (v4/v5) when it says the task is done."""
    decision = await brain.decide(context)
    outcome = decision.outcome
    if outcome is not None and not outcome.success and outcome.error_code in _BRAIN_PROBLEMS:
        raise DeckhandError(outcome.message or "The brain cannot serve this call.",
                            code=ErrorCode(outcome.error_code))
    if outcome is not None and outcome.success and needs_verification(context.cua_version):
        verdict = await verify(brain, context, outcome.answer or decision.text or "",
                               context.observation)
        decision = apply_verdict(decision, verdict)
    return decision


def _choice_of_session(session: Any) -> Choice:
    brain, model = parse_model(session.model)
    return Choice(brain=brain or OFFLINE, model=model, llm=session.llm,
                  sealed_key=session.key_sealed)


def _stored_model(choice: Choice) -> str:
    return f"{choice.brain}:{choice.model}" if choice.model else choice.brain


def _session_info(s: Any) -> dict[str, Any]:
    return {"session_id": s.id, "cua_version": s.cua_version,
            "screen_size": f"{s.screen_width}x{s.screen_height}", "step_count": s.step_count,
            "created_at": iso(s.created_at), "expires_at": iso(s.expires_at),
            "total_credits_used": s.total_credits,
            "usage": {"input_tokens": s.input_tokens, "output_tokens": s.output_tokens},
            "llm": s.llm, "metadata": s.metadata}


# --------------------------------------------------------------------------- predict


@endpoint(predict_r, "POST", "/v1/predict", operation_id="predict", scopes=("predict",),
          idempotent=True)
async def predict(
    body: PredictRequest, request: Request, response: Response, svc: Svc, caller: Caller,
    x_llm_provider: Annotated[str | None, Header()] = None,
    x_llm_api_key: Annotated[str | None, Header()] = None,
    x_llm_model: Annotated[str | None, Header()] = None,
) -> dict[str, Any]:
    llm = llm_request(body.llm, x_llm_provider, x_llm_api_key, x_llm_model)
    observation = observation_of(body.screenshot, body.screen_width, body.screen_height)
    for step in body.trajectory:
        observation_of(step.screenshot, None, None)  # each must be an image too
    cost = await _afford(svc, caller, "predict")
    async with svc.db.read() as conn:
        choice = await svc.brains.choose(conn, account_id=caller.account_id, mode=caller.mode,
                                         model=body.model, llm=llm)
    entries = [{"actions": [a.model_dump(exclude_none=True) for a in s.actions],
                "reasoning": s.reasoning} for s in body.trajectory]
    context = AgentContext(
        run_id=request.state.request_id, task=body.instruction, instructions=body.instructions,
        system_prompt=body.system_prompt, cua_version=body.cua_version,
        steps=_trajectory_steps(entries), observation=observation, terminal=False,
        allowed_actions=tuple(body.tools) if body.tools else None, max_actions=body.max_actions)
    decision = await _run_brain(svc.brains, choice, body.instruction, context)
    async with svc.db.write() as conn:
        charged = await _charge(conn, caller, "predict", "predict", cost, response,
                                decision.usage)
    return {"request_id": request.state.request_id,
            **prediction(decision, include_reasoning=body.include_reasoning,
                         include_raw_code=body.include_raw_code),
            "cua_version": body.cua_version, "screen_width": observation.width,
            "screen_height": observation.height, "model": choice.model, "brain": choice.brain,
            "llm": choice.llm, "usage": _usage(caller.mode, decision, charged)}


async def _run_brain(brains: BrainResolver, choice: Choice, task: str,
                     context: AgentContext) -> Decision:
    brain = brains.for_choice(choice, task)
    try:
        return await _decide(brain, context)
    finally:
        await close_brain(brain)


@endpoint(predict_r, "POST", "/v1/ground", operation_id="ground", scopes=("ground",),
          idempotent=True)
async def ground(
    body: GroundRequest, request: Request, response: Response, svc: Svc, caller: Caller,
    x_llm_provider: Annotated[str | None, Header()] = None,
    x_llm_api_key: Annotated[str | None, Header()] = None,
    x_llm_model: Annotated[str | None, Header()] = None,
) -> dict[str, Any]:
    llm = llm_request(None, x_llm_provider, x_llm_api_key, x_llm_model)
    observation = observation_of(body.screenshot, body.screen_width, body.screen_height)
    cost = await _afford(svc, caller, "ground")
    async with svc.db.read() as conn:
        choice = await svc.brains.choose(conn, account_id=caller.account_id, mode=caller.mode,
                                         model=None, llm=llm)
    brain = svc.brains.for_choice(choice)
    try:
        locate = getattr(brain, "ground", None)
        if locate is None:
            raise DeckhandError(
                f"The {choice.brain} brain cannot ground elements on a screenshot; configure a "
                "model (ANTHROPIC_API_KEY, OPENAI_API_KEY or an OpenAI-compatible base URL) or "
                "send your own key with X-LLM-Provider and X-LLM-Api-Key.",
                code=ErrorCode.OFFLINE_BRAIN_UNSUPPORTED)
        found = await locate(observation, body.element)
    finally:
        await close_brain(brain)
    if not found.found:  # not charged; the model's tokens were spent all the same
        async with svc.db.write() as conn:
            await _meter(conn, caller, "ground", 0, found.usage)
        raise NotFound(f"The element {body.element[:200]!r} was not found on the screenshot.")
    async with svc.db.write() as conn:
        charged = await _charge(conn, caller, "ground", "ground", cost, response, found.usage)
    decision = Decision(usage=found.usage)
    return {"request_id": request.state.request_id, "x": found.x, "y": found.y,
            "screen_width": observation.width, "screen_height": observation.height,
            "usage": _usage(caller.mode, decision, charged)}


@endpoint(predict_r, "POST", "/v1/parse", operation_id="parse", scopes=("parse",))
async def parse(body: ParseRequest) -> dict[str, Any]:
    return {"actions": parse_code(body.code)}


@endpoint(predict_r, "GET", "/v1/models", operation_id="listModels", scope_policy="none")
async def list_models(svc: Svc) -> dict[str, Any]:
    brains = svc.brains
    managed = brains.managed()
    models = []
    for name, description in (
        (OFFLINE, ("Deterministic planner for a documented set of instructions; no model, "
                   "works without a network (docs/offline-brain.md).")),
        (ANTHROPIC, ("Claude through the Messages API with the computer-use tool "
                     "(computer_20251124), bash and the text editor.")),
        (OPENAI, "OpenAI Responses API with the computer-use tool (computer_call)."),
        (OPENAI_COMPAT, ("Chat Completions with image inputs and function calling, for "
                         "OpenAI-compatible servers (vLLM, Ollama, llama.cpp, LM Studio).")),
        (SCRIPTED, "Test double that plays back a script given in the task."),
    ):
        model = brains.default_model(name)
        models.append({
            "id": f"{name}:{model}" if model else name, "description": description,
            "brain": name, "model": model, "configured": brains.configured(name),
            "default": name == managed, "byok": name in (ANTHROPIC, OPENAI),
        })
    return {"models": models, "cua_versions": CUA_VERSIONS, "action_types": list(ACTION_TYPES)}


CUA_VERSIONS = [
    {"id": "v1", "description": "Baseline: one action per step.",
     "avg_step_time": "one model call per step", "latest": False,
     "features": ["single action per step"]},
    {"id": "v3", "description": "Lean: several actions per step, no verification.",
     "avg_step_time": "one model call per step", "latest": False,
     "features": ["multiple actions per step"]},
    {"id": "v4", "description": "Autonomous with an independent verifier: when the agent says "
                                "it is done, a separate check on the final screenshot and the "
                                "trajectory decides succeeded or VERIFICATION_FAILED.",
     "avg_step_time": "one model call per step, plus one to verify the end", "latest": False,
     "features": ["multiple actions per step", "independent verifier"]},
    {"id": "v5", "description": "v4 plus recovery: repeated actions that change nothing on the "
                                "screen make the agent re-plan, and old screenshots are "
                                "compacted so long runs stay within the model's context.",
     "avg_step_time": "one model call per step, plus one to verify the end", "latest": True,
     "features": ["multiple actions per step", "independent verifier",
                  "stuck detection and re-planning", "screenshot compaction"]},
]


# --------------------------------------------------------------------------- sessions


@endpoint(sessions_r, "POST", "/v1/sessions", operation_id="createSession", scopes=("session",),
          idempotent=True)
async def create_session(
    body: CreateSessionRequest, request: Request, response: Response, svc: Svc, caller: Caller,
    x_llm_provider: Annotated[str | None, Header()] = None,
    x_llm_api_key: Annotated[str | None, Header()] = None,
    x_llm_model: Annotated[str | None, Header()] = None,
) -> dict[str, Any]:
    llm = llm_request(body.llm, x_llm_provider, x_llm_api_key, x_llm_model)
    async with svc.db.write() as conn:
        choice = await svc.brains.choose(conn, account_id=caller.account_id, mode=caller.mode,
                                         model=body.model, llm=llm)
        session = await sessions_store.insert(conn, {
            "account_id": caller.account_id, "mode": caller.mode,
            "cua_version": body.cua_version, "model": _stored_model(choice),
            "screen_width": body.screen_width, "screen_height": body.screen_height,
            "max_trajectory_length": body.max_trajectory_length,
            "system_prompt": body.system_prompt, "instructions": body.instructions,
            "tools": body.tools, "metadata": body.metadata, "llm": choice.llm,
            "key_sealed": choice.sealed_key,
        })
        charged = await _charge(conn, caller, "session_create", "createSession", 0, response,
                                TokenUsage())
    return {"request_id": request.state.request_id, "session_id": session.id,
            "cua_version": session.cua_version,
            "screen_size": f"{session.screen_width}x{session.screen_height}",
            "created_at": iso(session.created_at), "expires_at": iso(session.expires_at),
            "brain": choice.brain, "model": choice.model, "llm": choice.llm,
            "usage": _usage(caller.mode, Decision(), charged)}


@endpoint(sessions_r, "GET", "/v1/sessions", operation_id="listSessions", scopes=("session",))
async def list_sessions(svc: Svc, caller: Caller) -> dict[str, Any]:
    async with svc.db.write() as conn:  # listing also forgets expired sessions
        rows = await sessions_store.list_active(conn, caller.account_id, caller.mode)
    return {"sessions": [_session_info(s) for s in rows]}


@endpoint(sessions_r, "GET", "/v1/sessions/{session_id}", operation_id="getSession",
          scopes=("session",))
async def get_session(session_id: SessionIdParam, svc: Svc, caller: Caller) -> dict[str, Any]:
    async with svc.db.read() as conn:
        session = await sessions_store.get_owned(conn, session_id, caller.account_id,
                                                 caller.mode)
    return _session_info(session)


@endpoint(sessions_r, "DELETE", "/v1/sessions/{session_id}", operation_id="deleteSession",
          scopes=("session",))
async def delete_session(session_id: SessionIdParam, svc: Svc, caller: Caller) -> dict[str, Any]:
    async with svc.db.write() as conn:
        session = await sessions_store.get_owned(conn, session_id, caller.account_id,
                                                 caller.mode)
        await sessions_store.remove(conn, session)
    return {"status": "ok", "session_id": session_id}


@endpoint(sessions_r, "POST", "/v1/sessions/{session_id}/reset", operation_id="resetSession",
          scopes=("session",))
async def reset_session(session_id: SessionIdParam, svc: Svc, caller: Caller) -> dict[str, Any]:
    async with svc.db.write() as conn:
        session = await sessions_store.get_owned(conn, session_id, caller.account_id,
                                                 caller.mode)
        await sessions_store.reset(conn, session)
    return {"status": "ok", "session_id": session_id}


@endpoint(sessions_r, "POST", "/v1/sessions/{session_id}/predict", operation_id="sessionPredict",
          scopes=("session",), idempotent=True)
async def session_predict(
    session_id: SessionIdParam, body: SessionPredictRequest, request: Request,
    response: Response, svc: Svc, caller: Caller,
) -> dict[str, Any]:
    async with svc.db.read() as conn:
        session = await sessions_store.get_owned(conn, session_id, caller.account_id,
                                                 caller.mode)
    observation = observation_of(body.screenshot, session.screen_width, session.screen_height)
    cost = await _afford(svc, caller, "session_predict")
    tools = tuple(session.tools) if session.tools else None
    context = AgentContext(
        run_id=session.id, task=body.instruction, instructions=session.instructions,
        system_prompt=session.system_prompt, cua_version=session.cua_version,
        steps=_trajectory_steps(list(session.trajectory or [])), observation=observation,
        terminal=False, allowed_actions=tools)
    decision = await _run_brain(svc.brains, _choice_of_session(session), body.instruction,
                                context)
    body_parts = prediction(decision, include_reasoning=True, include_raw_code=False)
    async with svc.db.write() as conn:
        session = await sessions_store.get_owned(conn, session_id, caller.account_id,
                                                 caller.mode)
        charged = await _charge(conn, caller, "session_predict", "sessionPredict", cost,
                                response, decision.usage)
        session = await sessions_store.record_step(
            conn, session, {"instruction": body.instruction[:2000],
                            "actions": body_parts["actions"],
                            "reasoning": (body_parts.get("reasoning") or "")[:4000],
                            "status": body_parts["status"],
                            "usage": {"input_tokens": decision.usage.input_tokens,
                                      "output_tokens": decision.usage.output_tokens}},
            credits=charged, input_tokens=decision.usage.input_tokens,
            output_tokens=decision.usage.output_tokens)
    shown = prediction(decision, include_reasoning=body.include_reasoning,
                       include_raw_code=body.include_raw_code)
    return {"request_id": request.state.request_id, "session_id": session.id,
            "step": session.step_count, **shown, "cua_version": session.cua_version,
            "usage": _usage(caller.mode, decision, charged)}
