"""Inference without a machine (the contract's ``predict`` and ``sessions``
tags): a screenshot and an instruction in, structured actions out, through
the same brains that drive runs.

- POST /v1/predict — stateless; an optional client-sent trajectory;
- /v1/sessions* — the server keeps the trajectory (api/sessions.py);
- POST /v1/ground — where is an element (x, y);
- POST /v1/parse — pyautogui code → actions (parsed, never executed);
- GET /v1/models — the brains, the cua_versions and the action types.

Coordinates are in the screen space the request names (``screen_width`` ×
``screen_height``, else the screenshot's true size); the model sees the
screenshot fit into 1280×800 and its answer is scaled back.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Header, Request, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator

from deckhand.api.deps import principal, services
from deckhand.api.llm_request import LlmConfig, llm_request
from deckhand.api.prediction import (
    ACTION_TYPES,
    B64,
    ActionType,
    CuaVersion,
    TrajectoryStep,
    afford,
    charge,
    meter,
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
    ANTHROPIC,
    OFFLINE,
    OPENAI,
    OPENAI_COMPAT,
    SCRIPTED,
)
from deckhand.core.steps import AgentContext, Decision
from deckhand.errors import NotFound
from deckhand.parse_pyautogui import parse as parse_code
from deckhand.services import Services

predict_r = router(tags=["predict"])

Svc = Annotated[Services, Depends(services)]
Caller = Annotated[Principal, Depends(principal)]


# --------------------------------------------------------------------------- bodies


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
        return unique_items(v)


class GroundRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    screenshot: str = Field(min_length=100, max_length=10485760, pattern=B64)
    element: str = Field(min_length=1, max_length=32000)
    screen_width: int | None = Field(default=None, ge=320, le=3840)
    screen_height: int | None = Field(default=None, ge=240, le=2160)


class ParseRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(min_length=1, max_length=50000)


# --------------------------------------------------------------------------- predict


@endpoint(predict_r, "POST", "/v1/predict", operation_id="predict", scopes=("predict",),
          idempotent=True, response_model=dict[str, Any], responses=STREAM_RESPONSE)
async def predict(
    body: PredictRequest, request: Request, response: Response, svc: Svc, caller: Caller,
    x_llm_provider: Annotated[str | None, Header()] = None,
    x_llm_api_key: Annotated[str | None, Header()] = None,
    x_llm_model: Annotated[str | None, Header()] = None,
) -> dict[str, Any] | ResultStream:
    """With ``Accept: text/event-stream``: keep-alives, then the answer as one
    ``result`` event (api/result_stream.py)."""
    llm = llm_request(body.llm, x_llm_provider, x_llm_api_key, x_llm_model)
    observation = observation_of(body.screenshot, body.screen_width, body.screen_height)
    for step in body.trajectory:
        observation_of(step.screenshot, None, None)  # each must be an image too
    cost = await afford(svc, caller, "predict")
    async with svc.db.read() as conn:
        choice = await svc.brains.choose(conn, account_id=caller.account_id, mode=caller.mode,
                                         model=body.model, llm=llm)
    entries = [{"actions": [a.model_dump(exclude_none=True) for a in s.actions],
                "reasoning": s.reasoning} for s in body.trajectory]
    context = AgentContext(
        run_id=request.state.request_id, task=body.instruction, instructions=body.instructions,
        system_prompt=body.system_prompt, cua_version=body.cua_version,
        steps=trajectory_steps(entries), observation=observation, terminal=False,
        allowed_actions=tuple(body.tools) if body.tools else None, max_actions=body.max_actions)

    async def answer() -> dict[str, Any]:
        decision = await run_brain(svc.brains, choice, body.instruction, context)
        async with svc.db.write() as conn:
            charged = await charge(conn, caller, "predict", "predict", cost, response,
                                   decision.usage)
        return {"request_id": request.state.request_id,
                **prediction(decision, include_reasoning=body.include_reasoning,
                             include_raw_code=body.include_raw_code),
                "cua_version": body.cua_version, "screen_width": observation.width,
                "screen_height": observation.height, "model": choice.model,
                "brain": choice.brain, "llm": choice.llm,
                "usage": usage_info(caller.mode, decision, charged)}

    if wants_stream(request):
        return ResultStream(request, answer())
    return await answer()


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
    cost = await afford(svc, caller, "ground")
    async with svc.db.read() as conn:
        choice = await svc.brains.choose(conn, account_id=caller.account_id, mode=caller.mode,
                                         model=None, llm=llm)
    brain = svc.brains.for_choice(choice)
    try:
        found = await brain.ground(observation, body.element)
    finally:
        await brain.aclose()
    if not found.found:  # not charged; the model's tokens were spent all the same
        async with svc.db.write() as conn:
            await meter(conn, caller, "ground", 0, found.usage)
        raise NotFound(f"The element {body.element[:200]!r} was not found on the screenshot.")
    async with svc.db.write() as conn:
        charged = await charge(conn, caller, "ground", "ground", cost, response, found.usage)
    decision = Decision(usage=found.usage)
    return {"request_id": request.state.request_id, "x": found.x, "y": found.y,
            "screen_width": observation.width, "screen_height": observation.height,
            "usage": usage_info(caller.mode, decision, charged)}


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
                   "works without a network; grounds visible text labels on a screenshot "
                   "with text recognition (docs/offline-brain.md).")),
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
