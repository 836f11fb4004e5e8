"""Runs (the contract's ``runs`` tag): start, list, get, cancel, resume, events."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

from fastapi import Body, Depends, Header, Path, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator

from deckhand import ids
from deckhand.api.deps import principal, services
from deckhand.api.llm_request import LlmConfig, llm_request
from deckhand.api.routing import endpoint, router
from deckhand.api.sse import event_stream, resume_cursor
from deckhand.auth import Principal
from deckhand.engine.submit import RunSpec
from deckhand.errors import NotFound
from deckhand.events.webhooks import check_webhook_url, parse_allow_hosts
from deckhand.services import Services
from deckhand.store import events as events_store
from deckhand.store import runs as runs_store
from deckhand.store import steps as steps_store
from deckhand.store.runs import TERMINAL
from deckhand.views import run_view

r = router(tags=["runs"])

RunStatus = Literal["queued", "running", "awaiting_human", "succeeded", "failed", "cancelled",
                    "timed_out"]
RunIdParam = Annotated[str, Path(description="Run UUID.")]
CANCEL_CONFIRM_SECONDS = 3.0
EVENTS_PAGE = 500


class RunRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    machine_id: str = Field(min_length=1, max_length=128,
                            description="Target machine id (must be owned by the key's account).")
    task: str = Field(min_length=1, max_length=16000,
                      description="Natural-language task to drive to completion.")
    cua_version: Literal["v1", "v3", "v4", "v5"] = Field(
        default="v5", description="CUA engine version. Defaults to the latest (v5).")
    instructions: str | None = Field(default=None, max_length=16000,
                                     description="Appended to the base agent prompt.")
    system_prompt: str | None = Field(default=None, max_length=32000,
                                      description="Replaces the base agent prompt.")
    model: str | None = Field(
        default=None,
        description="Model selection, e.g. `anthropic/claude-...` (resolved server-side).")
    max_steps: int = Field(default=50, ge=1, le=1000, description="Hard cap on agent steps.")
    deadline_seconds: int | None = Field(default=None, ge=1, le=86400,
                                         description="Wall-clock budget in seconds.")
    on_awaiting_human: Literal["pause", "fail", "cancel"] = Field(
        default="pause",
        description="What to do when the agent needs a human: pause, fail or cancel.")
    awaiting_human_timeout_seconds: int | None = Field(
        default=None, ge=1, le=86400, description="How long a paused run waits for a human.")
    webhook_url: str | None = Field(default=None, max_length=2048,
                                    description="HTTPS URL for HMAC-signed run-event deliveries.")
    metadata: dict[str, Any] | None = Field(
        default=None, description="Opaque key/value map echoed back (at most 50 keys).")
    llm: LlmConfig | None = Field(
        default=None, description="Model provider and models for this run (bring your own key).")

    @field_validator("metadata")
    @classmethod
    def _metadata_size(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        if v is not None and len(v) > 50:
            raise ValueError("at most 50 keys")
        return v


class ResumeRunRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: str | None = Field(default=None, max_length=2000,
                             description="Recorded on the run timeline.")


Svc = Annotated[Services, Depends(services)]
Caller = Annotated[Principal, Depends(principal)]


class RunUsage(BaseModel):
    """A run's model tokens (the ``usage`` of a run, additive to the contract)."""

    input_tokens: int = Field(description="Deckhand: model input tokens of the run's steps.")
    output_tokens: int = Field(description="Deckhand: model output tokens.")
    cache_creation_input_tokens: int = Field(
        description="Deckhand: the input tokens written to the provider's prompt cache "
        "(part of input_tokens).")
    cache_read_input_tokens: int = Field(
        description="Deckhand: the input tokens read from the provider's prompt cache "
        "(part of input_tokens; OpenAI's cached tokens).")


# the run's body as served (the contract's RunResponse plus additive fields): our
# OpenAPI shows the additive usage
RUN_RESPONSE = {200: {"content": {"application/json": {"schema": {
    "type": "object", "additionalProperties": True,
    "properties": {"usage": RunUsage.model_json_schema()}}}}}}


def _check_run_id(run_id: str) -> None:
    if not ids.is_uuid(run_id):
        raise NotFound(f"Run {run_id} not found.")


@endpoint(r, "POST", "/v1/runs", operation_id="createRun", scopes=("runs:write",),
          idempotent=True, responses=RUN_RESPONSE)
async def create_run(
    body: RunRequest, request: Request, response: Response, svc: Svc, caller: Caller,
    x_llm_provider: Annotated[str | None, Header()] = None,
    x_llm_api_key: Annotated[str | None, Header()] = None,
    x_llm_model: Annotated[str | None, Header()] = None,
) -> dict[str, Any]:
    llm = llm_request(body.llm, x_llm_provider, x_llm_api_key, x_llm_model)
    if body.webhook_url:
        await check_webhook_url(body.webhook_url,
                                parse_allow_hosts(svc.settings.webhook_allow_hosts))
    spec = RunSpec(**body.model_dump(exclude={"llm"}), llm=llm)
    async with svc.db.write() as conn:
        done = await svc.submitter.submit(conn, account_id=caller.account_id, mode=caller.mode,
                                          spec=spec, request_id=request.state.request_id)
    response.headers["X-Credits-Charged"] = "0"
    if done.balance is not None:
        response.headers["X-Credits-Remaining"] = str(max(done.balance, 0))
    return run_view(done.run, webhook_secret=done.webhook_secret)


@endpoint(r, "GET", "/v1/runs", operation_id="listRuns", scopes=("runs:read",))
async def list_runs(
    request: Request, svc: Svc, caller: Caller,
    status: RunStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
    starting_after: Annotated[str | None, Query(
        description="Deckhand: a run id; list the runs created before it.")] = None,
) -> dict[str, Any]:
    async with svc.db.read() as conn:
        cursor = None
        if starting_after is not None:
            _check_run_id(starting_after)
            cursor = await runs_store.get_owned(conn, starting_after, caller.account_id,
                                                caller.mode)
        rows, more = await runs_store.list_owned(conn, caller.account_id, caller.mode,
                                                 status=status, limit=limit,
                                                 starting_after=cursor)
    return {"object": "list", "data": [run_view(x) for x in rows], "has_more": more,
            "request_id": request.state.request_id}


@endpoint(r, "GET", "/v1/runs/{run_id}", operation_id="getRun", scopes=("runs:read",),
          responses=RUN_RESPONSE)
async def get_run(run_id: RunIdParam, svc: Svc, caller: Caller) -> dict[str, Any]:
    _check_run_id(run_id)
    async with svc.db.read() as conn:
        run = await runs_store.get_owned(conn, run_id, caller.account_id, caller.mode)
    return run_view(run)


@endpoint(r, "GET", "/v1/runs/{run_id}/events", operation_id="streamRunEvents",
          scopes=("runs:read",), response_class=StreamingResponse)
async def stream_run_events(
    run_id: RunIdParam, svc: Svc, caller: Caller,
    after: Annotated[int | None, Query(ge=0)] = None,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
    accept: Annotated[str | None, Header()] = None,
) -> Response:
    """SSE; with ``Accept: application/json`` (Deckhand) the events recorded so
    far after the cursor, as a list, without waiting."""
    _check_run_id(run_id)
    start = resume_cursor(after, last_event_id)
    async with svc.db.read() as conn:
        await runs_store.get_owned(conn, run_id, caller.account_id, caller.mode)
        if accept and "application/json" in accept and "text/event-stream" not in accept:
            batch = await events_store.after(conn, run_id, start, limit=EVENTS_PAGE + 1)
            return JSONResponse({"object": "list",
                                 "data": [e.as_dict() for e in batch[:EVENTS_PAGE]],
                                 "has_more": len(batch) > EVENTS_PAGE})
    return event_stream(svc.db, svc.notifier, run_id, start)


@endpoint(r, "POST", "/v1/runs/{run_id}/cancel", operation_id="cancelRun",
          scopes=("runs:write",))
async def cancel_run(run_id: RunIdParam, svc: Svc, caller: Caller) -> dict[str, Any]:
    _check_run_id(run_id)
    with svc.notifier.subscribe("events", run_id) as waiter:
        async with svc.db.write() as conn:
            run = await runs_store.get_owned(conn, run_id, caller.account_id, caller.mode)
            run = await svc.lifecycle.request_cancel(conn, run)
        # A worker is driving it: give it a moment to interrupt and record the end.
        deadline = asyncio.get_running_loop().time() + CANCEL_CONFIRM_SECONDS
        while run.status not in TERMINAL:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                break
            await waiter.wait(min(left, 0.25))
            async with svc.db.read() as conn:
                run = await runs_store.get_owned(conn, run_id, caller.account_id, caller.mode)
    return run_view(run)


@endpoint(r, "POST", "/v1/runs/{run_id}/resume", operation_id="resumeRun",
          scopes=("runs:write",))
async def resume_run(
    run_id: RunIdParam, svc: Svc, caller: Caller,
    body: Annotated[ResumeRunRequest | None, Body()] = None,
) -> dict[str, Any]:
    _check_run_id(run_id)
    note = body.note if body else None
    async with svc.db.write() as conn:
        run = await runs_store.get_owned(conn, run_id, caller.account_id, caller.mode)
        if run.status == "awaiting_human" and note:
            last = await steps_store.last_number(conn, run_id)
            if last:
                await steps_store.set_human_note(conn, run_id, last, note)
        run = await svc.lifecycle.resume(conn, run, note)
    return run_view(run)

