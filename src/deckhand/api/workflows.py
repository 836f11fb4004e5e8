"""Workflows (the contract's ``workflows`` tag): saved, versioned definitions
and their runs — start (saved or ad hoc), list, get, events, cancel, resume."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Annotated, Any, Literal

from fastapi import Body, Depends, Header, Path, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from deckhand import ids
from deckhand.api.deps import principal, services
from deckhand.api.llm_request import LlmConfig, llm_request
from deckhand.api.routing import endpoint, router
from deckhand.api.sse import event_stream, resume_cursor
from deckhand.auth import Principal
from deckhand.brains.resolve import LlmRequest
from deckhand.core.clock import utcnow
from deckhand.engine import dsl
from deckhand.engine.workflow_lifecycle import NewRun
from deckhand.errors import (
    InsufficientCredits,
    InvalidState,
    NotFound,
    ValidationFailed,
)
from deckhand.events.webhooks import check_webhook_url, parse_allow_hosts
from deckhand.pricing import step_credits
from deckhand.services import Services
from deckhand.store import ledger as ledger_store
from deckhand.store import machines as machines_store
from deckhand.store import workflows as wf_store
from deckhand.store.machines import GONE
from deckhand.store.workflows import TERMINAL
from deckhand.views import workflow_run_view, workflow_view

r = router(tags=["workflows"])

Svc = Annotated[Services, Depends(services)]
Caller = Annotated[Principal, Depends(principal)]
WorkflowIdParam = Annotated[str, Path(description="Workflow UUID.")]
RunIdParam = Annotated[str, Path(description="Workflow run UUID.")]
RunStatus = Literal["queued", "running", "awaiting_human", "succeeded", "failed", "cancelled",
                    "timed_out"]
SLUG = r"^[a-z0-9][a-z0-9_-]{0,62}$"
CANCEL_CONFIRM_SECONDS = 3.0


class WorkflowCreateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=128, description="A name for the workflow.")
    slug: str = Field(min_length=1, max_length=64, pattern=SLUG,
                      description="Stable handle: lower-case letters, digits, - and _.")
    definition: dict[str, Any] = Field(
        description="Workflow DSL (see docs/workflows.md), validated server-side.")
    inputs_schema: dict[str, Any] | None = Field(
        default=None, description="JSON Schema of the workflow's inputs.")
    description: str | None = Field(default=None, max_length=2000,
                                    description="What the workflow does.")
    metadata: dict[str, Any] | None = Field(default=None,
                                            description="Opaque key/value map echoed back.")


class WorkflowUpdateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=128)
    definition: dict[str, Any] | None = None
    inputs_schema: dict[str, Any] | None = None
    description: str | None = Field(default=None, max_length=2000)
    status: Literal["active", "archived"] | None = None
    metadata: dict[str, Any] | None = None


class StartWorkflowRunRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    inputs: dict[str, Any] | None = Field(default=None, description="Bound input values.")
    machine_id: str | None = Field(default=None, max_length=128,
                                   description="Default machine for task steps.")
    budget_cents: int | None = Field(
        default=None, ge=0, le=10_000_000,
        description="Hard spend cap across all task steps; 0 or null = unlimited.")
    max_iterations: int | None = Field(default=None, ge=1, le=100_000,
                                       description="Cap on loop iterations across the run.")
    deadline_seconds: int | None = Field(default=None, ge=1, le=86400,
                                         description="Wall-clock budget in seconds.")
    webhook_url: str | None = Field(default=None, max_length=2048,
                                    description="HTTPS URL for HMAC-signed run-event deliveries.")
    metadata: dict[str, Any] | None = Field(default=None,
                                            description="Opaque key/value map echoed back.")
    definition: dict[str, Any] | None = Field(
        default=None, description="Inline DSL for an ad-hoc run (POST /v1/workflows/runs).")
    inputs_schema: dict[str, Any] | None = Field(
        default=None, description="Ad-hoc runs only: JSON Schema of the inputs.")
    llm: LlmConfig | None = Field(default=None,
                                  description="Model provider and models for the run's task steps.")


class ResumeWorkflowRunRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    approved: bool = Field(
        default=True,
        description="Approve (continue) or reject (fail) the pending human_approval step.")
    note: str | None = Field(default=None, max_length=2000,
                             description="Recorded on the run timeline.")


def _check_id(value: str, what: str) -> None:
    if not ids.is_uuid(value):
        raise NotFound(f"{what} {value} not found.")


# -- workflows ------------------------------------------------------------------------------


@endpoint(r, "POST", "/v1/workflows", operation_id="createWorkflow",
          scopes=("workflows:write",), idempotent=True)
async def create_workflow(body: WorkflowCreateRequest, request: Request, svc: Svc,
                          caller: Caller) -> dict[str, Any]:
    dsl.parse_definition(body.definition)
    dsl.check_inputs_schema(body.inputs_schema)
    now = utcnow()
    workflow_id = ids.new_uuid()
    async with svc.db.write() as conn:
        await wf_store.insert_workflow(conn, {
            "id": workflow_id, "account_id": caller.account_id, "mode": caller.mode,
            "slug": body.slug, "name": body.name, "description": body.description,
            "status": "active", "version": 1, "definition": body.definition,
            "inputs_schema": body.inputs_schema, "metadata": body.metadata,
            "request_id": request.state.request_id, "created_at": now, "updated_at": now,
        })
        wf = await wf_store.get_workflow_owned(conn, workflow_id, caller.account_id, caller.mode)
    return workflow_view(wf, request_id=request.state.request_id)


@endpoint(r, "GET", "/v1/workflows", operation_id="listWorkflows", scopes=("workflows:read",))
async def list_workflows(
    request: Request, svc: Svc, caller: Caller,
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
    status: Annotated[Literal["active", "archived", "all"], Query(
        description="Deckhand: which workflows (default active).")] = "active",
    starting_after: Annotated[str | None, Query(
        description="Deckhand: a workflow id; list the ones created before it.")] = None,
) -> dict[str, Any]:
    async with svc.db.read() as conn:
        cursor = None
        if starting_after is not None:
            _check_id(starting_after, "Workflow")
            cursor = await wf_store.get_workflow_owned(conn, starting_after, caller.account_id,
                                                       caller.mode)
        rows, more = await wf_store.list_workflows(
            conn, caller.account_id, caller.mode, status=None if status == "all" else status,
            limit=limit, starting_after=cursor)
    return {"object": "list", "data": [workflow_view(w) for w in rows], "has_more": more,
            "request_id": request.state.request_id}


# The /v1/workflows/runs routes come before /v1/workflows/{workflow_id}.


@endpoint(r, "POST", "/v1/workflows/runs", operation_id="startAdhocWorkflowRun",
          scopes=("workflows:write",), idempotent=True)
async def start_adhoc_run(
    body: StartWorkflowRunRequest, request: Request, svc: Svc, caller: Caller,
    x_llm_provider: Annotated[str | None, Header()] = None,
    x_llm_api_key: Annotated[str | None, Header()] = None,
    x_llm_model: Annotated[str | None, Header()] = None,
) -> dict[str, Any]:
    llm = llm_request(body.llm, x_llm_provider, x_llm_api_key, x_llm_model)
    if body.definition is None:
        raise ValidationFailed("definition is required for an ad-hoc workflow run "
                               "(or start a saved workflow: POST /v1/workflows/{id}/runs).")
    dsl.check_inputs_schema(body.inputs_schema)
    return await _start(svc, request, caller, body, llm, definition=body.definition,
                        inputs_schema=body.inputs_schema)


@endpoint(r, "GET", "/v1/workflows/runs", operation_id="listWorkflowRuns",
          scopes=("workflows:read",))
async def list_workflow_runs(
    request: Request, svc: Svc, caller: Caller,
    workflow_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
    status: Annotated[RunStatus | None, Query(description="Deckhand: filter by status.")] = None,
    starting_after: Annotated[str | None, Query(
        description="Deckhand: a workflow run id; list the ones created before it.")] = None,
) -> dict[str, Any]:
    if workflow_id is not None and not ids.is_uuid(workflow_id):
        raise ValidationFailed("workflow_id must be a UUID.")
    async with svc.db.read() as conn:
        cursor = None
        if starting_after is not None:
            _check_id(starting_after, "Workflow run")
            cursor = await wf_store.get_run_owned(conn, starting_after, caller.account_id,
                                                  caller.mode)
        rows, more = await wf_store.list_runs(conn, caller.account_id, caller.mode,
                                              workflow_id=workflow_id, status=status,
                                              limit=limit, starting_after=cursor)
    return {"object": "list", "data": [workflow_run_view(x) for x in rows], "has_more": more,
            "request_id": request.state.request_id}


@endpoint(r, "GET", "/v1/workflows/runs/{run_id}", operation_id="getWorkflowRun",
          scopes=("workflows:read",))
async def get_workflow_run(run_id: RunIdParam, svc: Svc, caller: Caller) -> dict[str, Any]:
    _check_id(run_id, "Workflow run")
    async with svc.db.read() as conn:
        run = await wf_store.get_run_owned(conn, run_id, caller.account_id, caller.mode)
    return workflow_run_view(run)


@endpoint(r, "GET", "/v1/workflows/runs/{run_id}/events", operation_id="streamWorkflowRunEvents",
          scopes=("workflows:read",), response_class=StreamingResponse)
async def stream_workflow_run_events(
    run_id: RunIdParam, svc: Svc, caller: Caller,
    after: Annotated[int | None, Query(ge=0)] = None,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> StreamingResponse:
    _check_id(run_id, "Workflow run")
    start = resume_cursor(after, last_event_id)
    async with svc.db.read() as conn:
        await wf_store.get_run_owned(conn, run_id, caller.account_id, caller.mode)
    return event_stream(svc.db, svc.notifier, run_id, start, topic="workflow_events",
                        read_after=wf_store.events_after)


@endpoint(r, "POST", "/v1/workflows/runs/{run_id}/cancel", operation_id="cancelWorkflowRun",
          scopes=("workflows:write",))
async def cancel_workflow_run(run_id: RunIdParam, svc: Svc, caller: Caller) -> dict[str, Any]:
    _check_id(run_id, "Workflow run")
    with svc.notifier.subscribe("workflow_events", run_id) as waiter:
        async with svc.db.write() as conn:
            run = await wf_store.get_run_owned(conn, run_id, caller.account_id, caller.mode)
            run = await svc.workflows.request_cancel(conn, run)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + CANCEL_CONFIRM_SECONDS
        while run.status not in TERMINAL and loop.time() < deadline:
            await waiter.wait(min(deadline - loop.time(), 0.25))
            async with svc.db.read() as conn:
                run = await wf_store.get_run_owned(conn, run_id, caller.account_id, caller.mode)
    return workflow_run_view(run)


@endpoint(r, "POST", "/v1/workflows/runs/{run_id}/resume", operation_id="resumeWorkflowRun",
          scopes=("workflows:write",))
async def resume_workflow_run(
    run_id: RunIdParam, svc: Svc, caller: Caller,
    body: Annotated[ResumeWorkflowRunRequest | None, Body()] = None,
) -> dict[str, Any]:
    _check_id(run_id, "Workflow run")
    answer = body or ResumeWorkflowRunRequest()
    async with svc.db.write() as conn:
        run = await wf_store.get_run_owned(conn, run_id, caller.account_id, caller.mode)
        run = await svc.workflows.resume(conn, run, approved=answer.approved, note=answer.note)
    return workflow_run_view(run)


# -- one workflow ------------------------------------------------------------------------------


@endpoint(r, "GET", "/v1/workflows/{workflow_id}", operation_id="getWorkflow",
          scopes=("workflows:read",))
async def get_workflow(workflow_id: WorkflowIdParam, request: Request, svc: Svc,
                       caller: Caller) -> dict[str, Any]:
    _check_id(workflow_id, "Workflow")
    async with svc.db.read() as conn:
        wf = await wf_store.get_workflow_owned(conn, workflow_id, caller.account_id, caller.mode)
    return workflow_view(wf, request_id=request.state.request_id)


@endpoint(r, "PUT", "/v1/workflows/{workflow_id}", operation_id="updateWorkflow",
          scopes=("workflows:write",))
async def update_workflow(workflow_id: WorkflowIdParam, body: WorkflowUpdateRequest,
                          request: Request, svc: Svc, caller: Caller) -> dict[str, Any]:
    _check_id(workflow_id, "Workflow")
    values = body.model_dump(exclude_unset=True)
    for required in ("name", "definition", "status"):
        if required in values and values[required] is None:
            if required == "status":
                values.pop("status")
                continue
            raise ValidationFailed(f"{required} cannot be null.")
    if "definition" in values:
        dsl.parse_definition(values["definition"])
    if "inputs_schema" in values:
        dsl.check_inputs_schema(values["inputs_schema"])
    async with svc.db.write() as conn:
        await wf_store.get_workflow_owned(conn, workflow_id, caller.account_id, caller.mode)
        wf = await wf_store.update_workflow(conn, workflow_id, **values)
    return workflow_view(wf, request_id=request.state.request_id)


@endpoint(r, "DELETE", "/v1/workflows/{workflow_id}", operation_id="deleteWorkflow",
          scopes=("workflows:write",))
async def delete_workflow(workflow_id: WorkflowIdParam, request: Request, svc: Svc,
                          caller: Caller) -> dict[str, Any]:
    _check_id(workflow_id, "Workflow")
    async with svc.db.write() as conn:
        await wf_store.get_workflow_owned(conn, workflow_id, caller.account_id, caller.mode)
        await wf_store.archive_workflow(conn, workflow_id)
    return {"id": workflow_id, "object": "workflow", "deleted": True,
            "request_id": request.state.request_id}


@endpoint(r, "POST", "/v1/workflows/{workflow_id}/runs", operation_id="startWorkflowRun",
          scopes=("workflows:write",), idempotent=True)
async def start_workflow_run(
    workflow_id: WorkflowIdParam, body: StartWorkflowRunRequest, request: Request, svc: Svc,
    caller: Caller,
    x_llm_provider: Annotated[str | None, Header()] = None,
    x_llm_api_key: Annotated[str | None, Header()] = None,
    x_llm_model: Annotated[str | None, Header()] = None,
) -> dict[str, Any]:
    llm = llm_request(body.llm, x_llm_provider, x_llm_api_key, x_llm_model)
    _check_id(workflow_id, "Workflow")
    if body.definition is not None or body.inputs_schema is not None:
        raise ValidationFailed("definition and inputs_schema are for ad-hoc runs "
                               "(POST /v1/workflows/runs); a saved workflow runs its own.")
    async with svc.db.read() as conn:
        wf = await wf_store.get_workflow_owned(conn, workflow_id, caller.account_id, caller.mode)
    if wf.status != "active":
        raise InvalidState(f"Workflow {workflow_id} is archived; it starts no new runs "
                           "(PUT status: active to restore it).")
    return await _start(svc, request, caller, body, llm, definition=wf.definition,
                        inputs_schema=wf.inputs_schema, workflow_id=wf.id,
                        workflow_version=wf.version)


async def _start(svc: Services, request: Request, caller: Principal,
                 body: StartWorkflowRunRequest, llm: LlmRequest | None, *,
                 definition: dict[str, Any], inputs_schema: dict[str, Any] | None,
                 workflow_id: str | None = None,
                 workflow_version: int | None = None) -> dict[str, Any]:
    """``llm``: bring your own key — the workflow run keeps a sealed snapshot of
    the key, each task run gets its own from it, and both die with their run."""
    parsed = dsl.parse_definition(definition)
    inputs = body.inputs or {}
    dsl.check_inputs(inputs_schema, inputs)
    dsl.check_machines(parsed, body.machine_id)
    if body.webhook_url:
        await check_webhook_url(body.webhook_url,
                                parse_allow_hosts(svc.settings.webhook_allow_hosts))
    new = NewRun(
        definition=definition, inputs=inputs, workflow_id=workflow_id,
        workflow_version=workflow_version, machine_id=body.machine_id,
        model=body.llm.model if body.llm else None, budget_cents=body.budget_cents,
        max_iterations=body.max_iterations, deadline_seconds=body.deadline_seconds,
        webhook_url=body.webhook_url, metadata=body.metadata)
    async with svc.db.write() as conn:
        if llm is not None:
            choice = await svc.brains.choose(conn, account_id=caller.account_id,
                                             mode=caller.mode, model=None, llm=llm)
            new = replace(new, model=choice.model, llm=choice.llm,
                          sealed_key=choice.sealed_key)
        if body.machine_id:
            machine = None
            if ids.MACHINE_ID_RE.match(body.machine_id):
                machine = await machines_store.get_owned(conn, body.machine_id,
                                                         caller.account_id, caller.mode)
            if machine is None or machine.status in GONE:
                raise NotFound(f"Machine {body.machine_id} not found.")
        if dsl.has_tasks(parsed):
            cost = step_credits(caller.mode, "v5")
            balance = await ledger_store.balance(conn, caller.account_id)
            if cost and balance is not None and balance < cost:
                raise InsufficientCredits(f"Need {cost} credits for a task step, have {balance}.")
        run, secret = await svc.workflows.create(conn, account_id=caller.account_id,
                                                 mode=caller.mode, new=new,
                                                 request_id=request.state.request_id)
    return workflow_run_view(run, webhook_secret=secret)
