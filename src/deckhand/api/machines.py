"""Machines (the contract's ``machines`` tag): provision, list, get, delete,
TTL, start / stop / restart, snapshot, health, pricing and the active
billing. What is done *on* a machine (screenshot, actions, terminal,
browser, files, connection, live view) is in :mod:`deckhand.api.machine_ops`.

Additive: ``agent_url`` / ``agent_token`` on ``POST /v1/machines`` register
a machine agent started by hand on another host; ``metadata.kind``
(``terminal`` | ``browser``) chooses the kind of a machine without a desktop;
``metadata.network: "off"`` cuts its network; ``metadata.snapshot_id`` picks
the snapshot ``restore_from_snapshot`` restores (default: the latest).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field, field_validator

from deckhand.api import machine_live, machine_ops
from deckhand.api.deps import principal, services
from deckhand.api.machine_views import (
    MachineIdParam,
    connection_redacted,
    machine_view,
    owned,
)
from deckhand.api.routing import endpoint, router
from deckhand.auth import Principal
from deckhand.core.clock import iso, utcnow
from deckhand.errors import ValidationFailed
from deckhand.machines import billing
from deckhand.services import Services
from deckhand.store import machines as store
from deckhand.store.records import Machine

r = router(tags=["machines"])

Svc = Annotated[Services, Depends(services)]
Caller = Annotated[Principal, Depends(principal)]


class ProvisionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    display_name: str = Field(min_length=1, max_length=64, description="A name for the machine.")
    os_type: Literal["linux", "windows"] = Field(
        default="linux", description="Operating system; this server runs linux machines.")
    desktop_enabled: bool = Field(
        default=False,
        description="A desktop machine (a real X display and browser) instead of a terminal.")
    cpu_cores: int | None = Field(default=None, ge=1, le=16, description="CPU cores.")
    memory_gb: int | None = Field(default=None, ge=1, le=64, description="Memory in GB.")
    storage_gb: int | None = Field(default=None, ge=8, le=500,
                                   description="Workspace storage in GB.")
    restore_from_snapshot: bool | None = Field(
        default=False, description="Start from the account's latest snapshot (metadata.snapshot_id picks one).")
    ttl_minutes: int | None = Field(
        default=None, ge=5, le=10080,
        description="Optional auto-destroy lease, measured from creation (5 minutes to 7 days).")
    metadata: dict[str, str] | None = Field(
        default=None,
        description="At most 16 entries; keys at most 64 characters, values at most 256.")
    # Deckhand: register a machine agent running elsewhere.
    agent_url: str | None = Field(default=None, max_length=512, description=(
        "Deckhand: the URL of a machine agent started by hand on another host "
        "(`deckhand machine-agent --listen HOST:PORT`); registers it as this machine."))
    agent_token: str | None = Field(default=None, max_length=512, description=(
        "Deckhand: that agent's bearer token."))

    @field_validator("metadata")
    @classmethod
    def _metadata_limits(cls, v: dict[str, str] | None) -> dict[str, str] | None:
        if v is None:
            return v
        if len(v) > 16:
            raise ValueError("at most 16 entries")
        for k, val in v.items():
            if len(k) > 64 or len(val) > 256:
                raise ValueError("keys are at most 64 characters and values at most 256")
        return v


class UpdateMachineRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ttl_minutes: int = Field(ge=0, le=10080, description=(
        "0 clears auto-destroy; otherwise the value must be between 5 and 10080."))

    @field_validator("ttl_minutes")
    @classmethod
    def _zero_or_range(cls, v: int) -> int:
        if v != 0 and v < 5:
            raise ValueError("0 clears auto-destroy; otherwise use 5..10080 minutes")
        return v


# Fixed paths first: /v1/machines/{machine_id} would otherwise take them.
# (GET /v1/machines/health is served with the other health checks, api/account.py.)


@endpoint(r, "GET", "/v1/machines/pricing", operation_id="getMachinePricing",
          scopes=("machines:read",))
async def machine_pricing(request: Request, svc: Svc) -> dict[str, object]:
    card = billing.pricing_card()
    card["one_time"] = {"snapshot_credits": svc.settings.machine_snapshot_credits}
    card["limits"] = {"machines_per_account": svc.settings.machine_limit_per_account}
    return {"pricing": card, "request_id": request.state.request_id}


@endpoint(r, "GET", "/v1/billing/active", operation_id="getActiveBilling",
          scopes=("machines:read",))
async def active_billing(request: Request, svc: Svc, caller: Caller) -> dict[str, object]:
    if caller.is_test:
        return {"active": [], "current_run_rate_cents_per_hour": 0,
                "request_id": request.state.request_id}
    async with svc.db.read() as conn:
        rows = await store.billable(conn, caller.account_id, caller.mode)
    now = utcnow()
    active: list[dict[str, Any]] = []
    for m in rows:
        active.append({
            "machine_id": m.id, "display_name": m.display_name, "status": m.status,
            "os_type": m.os_type, "rate_cents_per_hour": billing.rate(m),
            "running_credits_per_hour": billing.running_rate(m.os_type, test=False),
            "stopped_credits_per_hour": billing.stopped_rate(test=False),
            "accrued_cents": billing.accrued_millicredits(m, now) // 1000,
            "since": iso(m.billing_since), "total_credits_billed": m.credits_billed,
            "suspended_for_billing": m.suspended_for_billing,
            "auto_destroy_at": iso(m.auto_destroy_at), "ttl_minutes": m.ttl_minutes,
        })
    return {"active": active,
            "current_run_rate_cents_per_hour": sum(a["rate_cents_per_hour"] for a in active),
            "request_id": request.state.request_id}


@endpoint(r, "POST", "/v1/machines", operation_id="provisionMachine",
          scopes=("machines:write",), idempotent=True)
async def provision_machine(body: ProvisionRequest, request: Request, svc: Svc,
                            caller: Caller) -> dict[str, object]:
    if body.os_type != "linux":
        raise ValidationFailed("os_type: only linux machines can run on this Deckhand server.")
    if bool(body.agent_url) != bool(body.agent_token):
        raise ValidationFailed("agent_url and agent_token go together (registering a "
                               "remote machine agent).")
    row = await svc.machines.provision(account_id=caller.account_id, mode=caller.mode,
                                       request=body)
    return {"machine": machine_view(row, test=caller.is_test),
            "connection": connection_redacted(row), "request_id": request.state.request_id}


@endpoint(r, "GET", "/v1/machines", operation_id="listMachines", scopes=("machines:read",))
async def list_machines(request: Request, svc: Svc, caller: Caller,
                        limit: Annotated[int, Query(ge=1, le=200)] = 50) -> dict[str, object]:
    async with svc.db.read() as conn:
        rows, more = await store.list_owned(conn, caller.account_id, caller.mode, limit)
    return {"data": [machine_view(m, test=caller.is_test) for m in rows], "has_more": more,
            "request_id": request.state.request_id}


@endpoint(r, "GET", "/v1/machines/{machine_id}", operation_id="getMachine",
          scopes=("machines:read",))
async def get_machine(machine_id: MachineIdParam, request: Request, svc: Svc,
                      caller: Caller) -> dict[str, object]:
    row = await owned(svc, machine_id, caller)
    return {"machine": machine_view(row, test=caller.is_test),
            "request_id": request.state.request_id}


@endpoint(r, "DELETE", "/v1/machines/{machine_id}", operation_id="terminateMachine",
          scopes=("machines:write",))
async def terminate_machine(machine_id: MachineIdParam, request: Request, svc: Svc,
                            caller: Caller) -> dict[str, object]:
    row = await svc.machines.terminate(await owned(svc, machine_id, caller))
    return _lifecycle(request, row, "Machine terminated: its processes are stopped and its "
                      "workspace removed.")


@endpoint(r, "PATCH", "/v1/machines/{machine_id}", operation_id="updateMachine",
          scopes=("machines:write",))
async def update_machine(machine_id: MachineIdParam, body: UpdateMachineRequest,
                         request: Request, svc: Svc, caller: Caller) -> dict[str, object]:
    row = await svc.machines.update_ttl(await owned(svc, machine_id, caller), body.ttl_minutes)
    return {"machine_id": row.id, "ttl_minutes": row.ttl_minutes,
            "auto_destroy_at": iso(row.auto_destroy_at), "request_id": request.state.request_id}


@endpoint(r, "POST", "/v1/machines/{machine_id}/start", operation_id="startMachine",
          scopes=("machines:write",))
async def start_machine(machine_id: MachineIdParam, request: Request, svc: Svc,
                        caller: Caller) -> dict[str, object]:
    row = await svc.machines.start_machine(await owned(svc, machine_id, caller))
    return _lifecycle(request, row, "Machine started.")


@endpoint(r, "POST", "/v1/machines/{machine_id}/stop", operation_id="stopMachine",
          scopes=("machines:write",))
async def stop_machine(machine_id: MachineIdParam, request: Request, svc: Svc,
                       caller: Caller) -> dict[str, object]:
    row = await svc.machines.stop_machine(await owned(svc, machine_id, caller))
    return _lifecycle(request, row, "Machine stopped: its processes are gone, its workspace "
                      "and browser profile are kept (billed at the stopped rate).")


@endpoint(r, "POST", "/v1/machines/{machine_id}/restart", operation_id="restartMachine",
          scopes=("machines:write",))
async def restart_machine(machine_id: MachineIdParam, request: Request, svc: Svc,
                          caller: Caller) -> dict[str, object]:
    row = await svc.machines.restart_machine(await owned(svc, machine_id, caller))
    return _lifecycle(request, row, "Machine restarted.")


@endpoint(r, "POST", "/v1/machines/{machine_id}/snapshot", operation_id="snapshotMachine",
          scopes=("snapshots:write",), idempotent=True)
async def snapshot_machine(machine_id: MachineIdParam, request: Request, svc: Svc,
                           caller: Caller) -> Any:
    from fastapi.responses import JSONResponse

    snap = await svc.machines.snapshot(await owned(svc, machine_id, caller))
    return JSONResponse({
        "machine_id": snap["machine_id"], "snapshot_id": snap["id"], "name": snap["name"],
        "created_at": iso(snap["created_at"]), "credits_charged": snap["credits_charged"],
        "size_bytes": snap["size_bytes"], "request_id": request.state.request_id,
    }, headers={"X-Credits-Charged": str(snap["credits_charged"])})


def _lifecycle(request: Request, row: Machine, message: str) -> dict[str, object]:
    return {"machine_id": row.id, "status": row.status, "message": message,
            "request_id": request.state.request_id}


r.include_router(machine_ops.r)
r.include_router(machine_live.r)
