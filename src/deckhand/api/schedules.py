"""Schedules (the contract's ``schedules`` tag): create, list, get, patch,
delete, pause, resume, run now, and the run history. Firing is the
scheduler's (engine/scheduler.py); see docs/schedules.md."""

from __future__ import annotations

import contextlib
import json
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Depends, Header, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from deckhand import ids
from deckhand.api.deps import principal, services
from deckhand.api.llm_request import LlmConfig, llm_request
from deckhand.api.routing import endpoint, router
from deckhand.auth import Principal
from deckhand.core import cron
from deckhand.core.clock import utcnow
from deckhand.engine.scheduler import due_after
from deckhand.errors import (
    DeckhandError,
    ErrorCode,
    InsufficientCredits,
    InvalidState,
    NotFound,
    ValidationFailed,
)
from deckhand.services import Services
from deckhand.store import machines as machines_store
from deckhand.store import schedules as schedules_store
from deckhand.store.machines import GONE
from deckhand.store.records import Schedule
from deckhand.views import firing_view, schedule_view

r = router(tags=["schedules"])

Svc = Annotated[Services, Depends(services)]
Caller = Annotated[Principal, Depends(principal)]
ScheduleIdParam = Annotated[str, Path(description="Schedule UUID, or sch_test_<hex> (test keys).")]
Frequency = Literal["every_15_minutes", "every_30_minutes", "hourly", "every_6_hours",
                    "every_12_hours", "daily", "weekly", "monthly", "custom"]
FiringStatus = Literal["running", "completed", "failed", "skipped", "cancelled",
                       "insufficient_credits"]
MAX_CONTEXT_BYTES = 1024 * 1024


class ScheduleCreateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=128, description="A name for the schedule.")
    machine_id: str = Field(min_length=1, max_length=64,
                            description="The machine its runs use (owned by the key's account).")
    task_prompt: str = Field(min_length=1, max_length=8000, description="What each run does.")
    frequency: Frequency | None = Field(
        default=None, description="A preset, or custom (with cron). Excludes run_at.")
    cron: str | None = Field(default=None, max_length=128,
                             description="Required when frequency='custom'. 5 or 6 fields "
                             "(6: seconds first).")
    timezone: str = Field(default="UTC", max_length=64, description="IANA time zone.")
    time: str | None = Field(default=None, max_length=5,
                             description="HH:MM 24-hour, for the daily/weekly/monthly presets.")
    day_of_week: int | None = Field(default=None, ge=0, le=6,
                                    description="Weekly: 0 = Sunday … 6 = Saturday.")
    day_of_month: int | None = Field(default=None, ge=1, le=28, description="Monthly: the day.")
    run_at: datetime | None = Field(
        default=None, description="One-shot: when to fire (ISO 8601, UTC). Excludes frequency.")
    max_consecutive_failures: int = Field(
        default=5, ge=1, le=50, description="Pause the schedule after this many failures in a row.")
    metadata: dict[str, str] | None = Field(default=None,
                                            description="Opaque string map echoed back.")
    llm: LlmConfig | None = Field(
        default=None, description="BYOK preference; each firing uses the key stored then.")


class ScheduleUpdateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=128)
    task_prompt: str | None = Field(default=None, min_length=1, max_length=8000)
    frequency: Frequency | None = None
    cron: str | None = Field(default=None, max_length=128)
    timezone: str | None = Field(default=None, max_length=64)
    time: str | None = Field(default=None, max_length=5)
    day_of_week: int | None = Field(default=None, ge=0, le=6)
    day_of_month: int | None = Field(default=None, ge=1, le=28)
    max_consecutive_failures: int | None = Field(default=None, ge=1, le=50)
    enabled: bool | None = None
    metadata: dict[str, str] | None = None


class RunScheduleRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    task_prompt_override: str | None = Field(default=None, max_length=8000,
                                             description="Run this task instead, this once.")
    triggered_context: dict[str, Any] | None = Field(
        default=None, description="Injected into the agent's prompt. Max 1 MB serialized.")


def check_id(schedule_id: str) -> None:
    if not ids.SCHEDULE_ID_RE.match(schedule_id):
        raise NotFound(f"Schedule {schedule_id} not found.")


def check_context(context: dict[str, Any] | None, field: str) -> None:
    if context is not None and len(json.dumps(context).encode()) > MAX_CONTEXT_BYTES:
        raise DeckhandError(f"{field}: the context exceeds 1 MB serialized.",
                            code=ErrorCode.PAYLOAD_TOO_LARGE,
                            examples={"max_bytes": MAX_CONTEXT_BYTES})


async def owned(conn: Any, schedule_id: str, caller: Principal) -> Schedule:
    check_id(schedule_id)
    return await schedules_store.get_owned(conn, schedule_id, caller.account_id, caller.mode)


@endpoint(r, "POST", "/v1/schedules", operation_id="createSchedule",
          scopes=("schedules:write",), idempotent=True)
async def create_schedule(
    body: ScheduleCreateRequest, request: Request, svc: Svc, caller: Caller,
    x_llm_provider: Annotated[str | None, Header()] = None,
    x_llm_api_key: Annotated[str | None, Header()] = None,
    x_llm_model: Annotated[str | None, Header()] = None,
) -> dict[str, Any]:
    now = utcnow()
    when = cron.timing(frequency=body.frequency, cron=body.cron, timezone=body.timezone,
                       time=body.time, day_of_week=body.day_of_week,
                       day_of_month=body.day_of_month, run_at=body.run_at, now=now)
    # Only the non-secret preference is kept: a header key is for this request's
    # check alone; firings use the key stored at fire time (docs/schedules.md).
    llm = llm_request(body.llm, x_llm_provider, x_llm_api_key, x_llm_model)
    preference = None if llm is None else {
        k: v for k, v in (("provider", llm.provider), ("model", llm.model),
                          ("grounding_model", llm.grounding_model)) if v}
    schedule_id = ids.schedule_id(caller.mode == "test")
    async with svc.db.write() as conn:
        machine = None
        if ids.MACHINE_ID_RE.match(body.machine_id):
            with contextlib.suppress(NotFound):
                machine = await machines_store.get_owned(conn, body.machine_id,
                                                         caller.account_id, caller.mode)
        if machine is None or machine.status in GONE:
            raise NotFound(f"machine_id: machine {body.machine_id} not found.")
        _, more = await schedules_store.list_owned(
            conn, caller.account_id, caller.mode, svc.settings.schedule_limit_per_account - 1)
        if more:
            limit = svc.settings.schedule_limit_per_account
            raise DeckhandError(f"This account has {limit} schedules, the limit; delete one "
                                "first.", code=ErrorCode.CONFLICT, examples={"limit": limit})
        await schedules_store.insert(conn, {
            "id": schedule_id, "account_id": caller.account_id, "mode": caller.mode,
            "name": body.name, "machine_id": body.machine_id, "task_prompt": body.task_prompt,
            "frequency": when.frequency, "cron": when.cron, "timezone": body.timezone,
            "time": body.time, "day_of_week": body.day_of_week,
            "day_of_month": body.day_of_month,
            "run_at": when.next_run_at if body.run_at is not None else None,
            "enabled": True, "next_run_at": when.next_run_at,
            "max_consecutive_failures": body.max_consecutive_failures,
            "metadata": body.metadata, "llm": preference,
            "request_id": request.state.request_id, "created_at": now, "updated_at": now,
        })
        await svc.notifier.emit(conn, "schedules", "*")
        s = await schedules_store.get_owned(conn, schedule_id, caller.account_id, caller.mode)
    return schedule_view(s, request_id=request.state.request_id)


@endpoint(r, "GET", "/v1/schedules", operation_id="listSchedules", scopes=("schedules:read",))
async def list_schedules(request: Request, svc: Svc, caller: Caller,
                         limit: Annotated[int, Query(ge=1, le=200)] = 50) -> dict[str, Any]:
    async with svc.db.read() as conn:
        rows, more = await schedules_store.list_owned(conn, caller.account_id, caller.mode,
                                                      limit)
    rid = request.state.request_id
    return {"object": "list", "data": [schedule_view(s, request_id=rid) for s in rows],
            "has_more": more, "request_id": rid}


@endpoint(r, "GET", "/v1/schedules/{schedule_id}", operation_id="getSchedule",
          scopes=("schedules:read",))
async def get_schedule(schedule_id: ScheduleIdParam, request: Request, svc: Svc,
                       caller: Caller) -> dict[str, Any]:
    async with svc.db.read() as conn:
        s = await owned(conn, schedule_id, caller)
    return schedule_view(s, request_id=request.state.request_id)


def _retimed(s: Schedule, body: ScheduleUpdateRequest) -> dict[str, Any]:
    """The timing columns a patch changes (and the next due time)."""
    fields = ("frequency", "cron", "timezone", "time", "day_of_week", "day_of_month")
    given = body.model_fields_set & set(fields)
    if not given:
        return {}
    merged = {f: getattr(body, f) if f in given else getattr(s, f) for f in fields}
    if merged["frequency"] == "once":
        raise ValidationFailed("frequency: a one-shot schedule changes only with a new "
                               "frequency (it then recurs).")
    if "frequency" in given and merged["frequency"] != "custom" and "cron" not in given:
        merged["cron"] = None
    when = cron.timing(frequency=merged["frequency"], cron=merged["cron"],
                       timezone=merged["timezone"] or "UTC", time=merged["time"],
                       day_of_week=merged["day_of_week"], day_of_month=merged["day_of_month"],
                       run_at=None, now=utcnow())
    out = {**merged, "frequency": when.frequency, "cron": when.cron, "run_at": None}
    if s.enabled:
        out["next_run_at"] = when.next_run_at
    return out


@endpoint(r, "PATCH", "/v1/schedules/{schedule_id}", operation_id="updateSchedule",
          scopes=("schedules:write",))
async def update_schedule(schedule_id: ScheduleIdParam, body: ScheduleUpdateRequest,
                          request: Request, svc: Svc, caller: Caller) -> dict[str, Any]:
    async with svc.db.write() as conn:
        s = await owned(conn, schedule_id, caller)
        values = _retimed(s, body)
        for f in ("name", "task_prompt", "max_consecutive_failures", "metadata"):
            if f in body.model_fields_set and getattr(body, f) is not None:
                values[f] = getattr(body, f)
        if body.enabled is not None and body.enabled != s.enabled:
            values.update(_pause_values(s) if not body.enabled else _resume_values(
                s, values.get("cron", s.cron), values.get("timezone", s.timezone)))
        values["updated_at"] = utcnow()
        s = await schedules_store.update_schedule(conn, s.id, **values)
        await svc.notifier.emit(conn, "schedules", "*")
    return schedule_view(s, request_id=request.state.request_id)


@endpoint(r, "DELETE", "/v1/schedules/{schedule_id}", operation_id="deleteSchedule",
          scopes=("schedules:write",))
async def delete_schedule(schedule_id: ScheduleIdParam, request: Request, svc: Svc,
                          caller: Caller) -> dict[str, Any]:
    async with svc.db.write() as conn:
        s = await owned(conn, schedule_id, caller)
        await schedules_store.remove(conn, s.id)
    return {"deleted": True, "schedule_id": s.id, "request_id": request.state.request_id}


def _pause_values(s: Schedule) -> dict[str, Any]:
    return {"enabled": False, "next_run_at": None, "paused_reason": "Paused by request."}


def _resume_values(s: Schedule, expression: str, timezone: str) -> dict[str, Any]:
    now = utcnow()
    if not expression:  # a one-shot
        if s.run_at is None or s.run_at <= now:
            raise InvalidState(f"Schedule {s.id} is a one-shot whose run_at has passed; "
                               "create a new one.")
        at = s.run_at
    else:
        at = due_after(expression, timezone, now)  # type: ignore[assignment]
    return {"enabled": True, "next_run_at": at, "paused_reason": None,
            "consecutive_failures": 0}


@endpoint(r, "POST", "/v1/schedules/{schedule_id}/pause", operation_id="pauseSchedule",
          scopes=("schedules:write",))
async def pause_schedule(schedule_id: ScheduleIdParam, request: Request, svc: Svc,
                         caller: Caller) -> dict[str, Any]:
    async with svc.db.write() as conn:
        s = await owned(conn, schedule_id, caller)
        if s.enabled:
            s = await schedules_store.update_schedule(conn, s.id, **_pause_values(s),
                                                      updated_at=utcnow())
    return schedule_view(s, request_id=request.state.request_id)


@endpoint(r, "POST", "/v1/schedules/{schedule_id}/resume", operation_id="resumeSchedule",
          scopes=("schedules:write",))
async def resume_schedule(schedule_id: ScheduleIdParam, request: Request, svc: Svc,
                          caller: Caller) -> dict[str, Any]:
    async with svc.db.write() as conn:
        s = await owned(conn, schedule_id, caller)
        if not s.enabled:
            s = await schedules_store.update_schedule(conn, s.id, **_resume_values(s, s.cron, s.timezone),
                                                      updated_at=utcnow())
            await svc.notifier.emit(conn, "schedules", "*")
    return schedule_view(s, request_id=request.state.request_id)


@endpoint(r, "POST", "/v1/schedules/{schedule_id}/run", operation_id="runScheduleNow",
          scopes=("schedules:write",), idempotent=True)
async def run_schedule_now(schedule_id: ScheduleIdParam, body: RunScheduleRequest,
                           request: Request, svc: Svc, caller: Caller) -> dict[str, Any]:
    check_context(body.triggered_context, "triggered_context")
    async with svc.db.write() as conn:
        s = await owned(conn, schedule_id, caller)
        fired = await svc.firer.fire(conn, s, trigger="manual", at=utcnow(),
                                     context=body.triggered_context,
                                     task_override=body.task_prompt_override)
    f = fired.firing
    # Recorded either way; a firing that could not start its run answers as the run would.
    if f.status == "insufficient_credits":
        raise InsufficientCredits(f.error or "Not enough credits.")
    if f.status == "failed":
        code, _, message = (f.error or "").partition(": ")
        raise ValidationFailed(message, code=ErrorCode(code) if code in ErrorCode.__members__
                               else ErrorCode.VALIDATION_ERROR)
    message = ("Run queued." if f.status == "queued" else
               f"Skipped: {f.error}")
    return {"schedule_id": s.id, "run_id": f.id, "agent_run_id": f.run_id, "status": f.status,
            "message": message, "request_id": request.state.request_id}


@endpoint(r, "GET", "/v1/schedules/{schedule_id}/runs", operation_id="listScheduleRuns",
          scopes=("schedules:read",))
async def list_schedule_runs(
    schedule_id: ScheduleIdParam, request: Request, svc: Svc, caller: Caller,
    cursor: str | None = None, status: FiringStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> dict[str, Any]:
    if cursor is not None and not ids.is_uuid(cursor):
        raise ValidationFailed(f"cursor: {cursor!r} is not a cursor this API gave.")
    async with svc.db.read() as conn:
        s = await owned(conn, schedule_id, caller)
        rows, more = await schedules_store.list_firings(conn, s.id, status=status, limit=limit,
                                                        cursor=cursor)
    return {"object": "list", "data": [firing_view(f) for f in rows],
            "next_cursor": rows[-1].record.id if more and rows else None, "has_more": more,
            "request_id": request.state.request_id}


@endpoint(r, "GET", "/v1/schedules/{schedule_id}/runs/{run_id}", operation_id="getScheduleRun",
          scopes=("schedules:read",))
async def get_schedule_run(schedule_id: ScheduleIdParam, run_id: str, svc: Svc,
                           caller: Caller) -> dict[str, Any]:
    async with svc.db.read() as conn:
        s = await owned(conn, schedule_id, caller)
        if not ids.is_uuid(run_id):
            raise NotFound(f"Schedule run {run_id} not found.")
        f = await schedules_store.get_firing(conn, s.id, run_id)
    return firing_view(f)
