"""Stateful inference sessions (the contract's ``sessions`` tag): the brain
and the bring-your-own-key choice are fixed at creation, the server keeps the
last ``max_trajectory_length`` predictions (2-hour idle lifetime), and each
predict is told them."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Header, Path, Request, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator

from deckhand.api.deps import principal, services
from deckhand.api.llm_request import LlmConfig, llm_request
from deckhand.api.prediction import (
    B64,
    ActionType,
    CuaVersion,
    afford,
    charge,
    observation_of,
    prediction,
    run_brain,
    trajectory_steps,
    unique_items,
    usage_info,
)
from deckhand.api.result_stream import STREAM_RESPONSE, ResultStream, wants_stream
from deckhand.api.routing import endpoint, router
from deckhand.auth import Principal
from deckhand.brains.resolve import (
    OFFLINE,
    Choice,
    parse_model,
)
from deckhand.core.clock import iso
from deckhand.core.steps import AgentContext, Decision, TokenUsage
from deckhand.services import Services
from deckhand.store import sessions as sessions_store
from deckhand.store.records import Session

r = router(tags=["sessions"])

Svc = Annotated[Services, Depends(services)]
Caller = Annotated[Principal, Depends(principal)]
SessionIdParam = Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_-]+$",
                                     description="Stateful CUA session identifier.")]


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
        return unique_items(v)

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


def _choice_of_session(session: Session) -> Choice:
    brain, model = parse_model(session.model)
    return Choice(brain=brain or OFFLINE, model=model, llm=session.llm,
                  sealed_key=session.key_sealed)


def _trajectory_for(session: Any, choice: Choice, instruction: str) -> list[dict[str, Any]]:
    """The past predictions a brain is told of. A model reads them all as the
    story so far. The offline brain counts them as the clauses of *this*
    instruction already done, so it is given only the trailing predictions for
    the same instruction since its last ``done`` or ``fail``: a new
    instruction starts at its first clause (``click "Delete"`` after
    ``click "Archive"`` is a click, not "done")."""
    entries = list(session.trajectory or [])
    if choice.brain != OFFLINE:
        return entries
    same: list[dict[str, Any]] = []
    for entry in reversed(entries):
        if entry.get("instruction") != instruction[:2000] or \
                entry.get("status") in ("done", "fail"):
            break
        same.append(entry)
    return same[::-1]


def _stored_model(choice: Choice) -> str:
    return f"{choice.brain}:{choice.model}" if choice.model else choice.brain


def _session_info(s: Any) -> dict[str, Any]:
    return {"session_id": s.id, "cua_version": s.cua_version,
            "screen_size": f"{s.screen_width}x{s.screen_height}", "step_count": s.step_count,
            "created_at": iso(s.created_at), "expires_at": iso(s.expires_at),
            "total_credits_used": s.total_credits,
            "usage": {"input_tokens": s.input_tokens, "output_tokens": s.output_tokens},
            "llm": s.llm, "metadata": s.metadata}


# --------------------------------------------------------------------------- sessions


@endpoint(r, "POST", "/v1/sessions", operation_id="createSession", scopes=("session",),
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
        charged = await charge(conn, caller, "session_create", "createSession", 0, response,
                                TokenUsage())
    return {"request_id": request.state.request_id, "session_id": session.id,
            "cua_version": session.cua_version,
            "screen_size": f"{session.screen_width}x{session.screen_height}",
            "created_at": iso(session.created_at), "expires_at": iso(session.expires_at),
            "brain": choice.brain, "model": choice.model, "llm": choice.llm,
            "usage": usage_info(caller.mode, Decision(), charged)}


@endpoint(r, "GET", "/v1/sessions", operation_id="listSessions", scopes=("session",))
async def list_sessions(svc: Svc, caller: Caller) -> dict[str, Any]:
    async with svc.db.write() as conn:  # listing also forgets expired sessions
        rows = await sessions_store.list_active(conn, caller.account_id, caller.mode)
    return {"sessions": [_session_info(s) for s in rows]}


@endpoint(r, "GET", "/v1/sessions/{session_id}", operation_id="getSession",
          scopes=("session",))
async def get_session(session_id: SessionIdParam, svc: Svc, caller: Caller) -> dict[str, Any]:
    async with svc.db.read() as conn:
        session = await sessions_store.get_owned(conn, session_id, caller.account_id,
                                                 caller.mode)
    return _session_info(session)


@endpoint(r, "DELETE", "/v1/sessions/{session_id}", operation_id="deleteSession",
          scopes=("session",))
async def delete_session(session_id: SessionIdParam, svc: Svc, caller: Caller) -> dict[str, Any]:
    async with svc.db.write() as conn:
        session = await sessions_store.get_owned(conn, session_id, caller.account_id,
                                                 caller.mode)
        await sessions_store.remove(conn, session)
    return {"status": "ok", "session_id": session_id}


@endpoint(r, "POST", "/v1/sessions/{session_id}/reset", operation_id="resetSession",
          scopes=("session",))
async def reset_session(session_id: SessionIdParam, svc: Svc, caller: Caller) -> dict[str, Any]:
    async with svc.db.write() as conn:
        session = await sessions_store.get_owned(conn, session_id, caller.account_id,
                                                 caller.mode)
        await sessions_store.reset(conn, session)
    return {"status": "ok", "session_id": session_id}


@endpoint(r, "POST", "/v1/sessions/{session_id}/predict", operation_id="sessionPredict",
          scopes=("session",), idempotent=True, response_model=dict[str, Any],
          responses=STREAM_RESPONSE)
async def session_predict(
    session_id: SessionIdParam, body: SessionPredictRequest, request: Request,
    response: Response, svc: Svc, caller: Caller,
) -> dict[str, Any] | ResultStream:
    """With ``Accept: text/event-stream``: keep-alives, then the answer as one
    ``result`` event (api/result_stream.py)."""
    async with svc.db.read() as conn:
        session = await sessions_store.get_owned(conn, session_id, caller.account_id,
                                                 caller.mode)
    observation = observation_of(body.screenshot, session.screen_width, session.screen_height)
    cost = await afford(svc, caller, "session_predict")
    tools = tuple(session.tools) if session.tools else None
    choice = _choice_of_session(session)
    context = AgentContext(
        run_id=session.id, task=body.instruction, instructions=session.instructions,
        system_prompt=session.system_prompt, cua_version=session.cua_version,
        steps=trajectory_steps(_trajectory_for(session, choice, body.instruction)),
        observation=observation,
        terminal=False, allowed_actions=tools)

    async def answer() -> dict[str, Any]:
        decision = await run_brain(svc.brains, choice, body.instruction, context)
        body_parts = prediction(decision, include_reasoning=True, include_raw_code=False)
        async with svc.db.write() as conn:
            fresh = await sessions_store.get_owned(conn, session_id, caller.account_id,
                                                   caller.mode)
            charged = await charge(conn, caller, "session_predict", "sessionPredict", cost,
                                   response, decision.usage)
            fresh = await sessions_store.record_step(
                conn, fresh, {"instruction": body.instruction[:2000],
                              "actions": body_parts["actions"],
                              "reasoning": (body_parts.get("reasoning") or "")[:4000],
                              "status": body_parts["status"],
                              "usage": {"input_tokens": decision.usage.input_tokens,
                                        "output_tokens": decision.usage.output_tokens}},
                credits=charged, input_tokens=decision.usage.input_tokens,
                output_tokens=decision.usage.output_tokens)
        shown = prediction(decision, include_reasoning=body.include_reasoning,
                           include_raw_code=body.include_raw_code)
        return {"request_id": request.state.request_id, "session_id": fresh.id,
                "step": fresh.step_count, **shown, "cua_version": fresh.cua_version,
                "usage": usage_info(caller.mode, decision, charged)}

    if wants_stream(request):
        return ResultStream(request, answer())
    return await answer()
