"""Machines (the contract's ``machines`` tag): provision, list, get, delete.
The machines issue extends this with lifecycle, actions, files and more."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import Depends, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field, field_validator

from deckhand.api.deps import principal, services
from deckhand.api.routing import endpoint, router
from deckhand.auth import Principal
from deckhand.errors import ValidationFailed
from deckhand.services import Services
from deckhand.store import machines as store
from deckhand.store.machines import MachineRow
from deckhand.store.types import iso

r = router(tags=["machines"])

MACHINE_ID_PATTERN = (
    r"^(?:[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
    r"|mch_test_[0-9a-f]{8,32})$"
)
MachineIdParam = Annotated[str, Path(pattern=MACHINE_ID_PATTERN)]
RUNNING_CREDITS_PER_HOUR = {"linux": 5, "windows": 9}
STOPPED_CREDITS_PER_HOUR = 1


class ProvisionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    display_name: str = Field(min_length=1, max_length=64)
    os_type: Literal["linux", "windows"] = "linux"
    desktop_enabled: bool = False
    cpu_cores: int | None = Field(default=None, ge=1, le=16)
    memory_gb: int | None = Field(default=None, ge=1, le=64)
    storage_gb: int | None = Field(default=None, ge=8, le=500)
    restore_from_snapshot: bool | None = False
    ttl_minutes: int | None = Field(default=None, ge=5, le=10080)
    metadata: dict[str, str] | None = None

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


def machine_view(m: MachineRow, *, test: bool) -> dict[str, object]:
    rate = RUNNING_CREDITS_PER_HOUR.get(m.os_type, 5) if not test else 0
    return {
        "id": m.id,
        "display_name": m.display_name,
        "status": m.status,
        "os_type": m.os_type,
        "desktop_enabled": m.desktop_enabled,
        "cpu_cores": m.cpu_cores,
        "memory_gb": m.memory_gb,
        "storage_gb": m.storage_gb,
        "public_ip": None,
        "is_test": test,
        "created_at": iso(m.created_at),
        "started_at": iso(m.started_at),
        "auto_destroy_at": iso(m.auto_destroy_at),
        "ttl_minutes": m.ttl_minutes,
        "metadata": m.metadata or {},
        "billing": {
            "billed_to": "api_wallet",
            "running_credits_per_hour": rate,
            "stopped_credits_per_hour": STOPPED_CREDITS_PER_HOUR if not test else 0,
            "accrued_cents": 0,
            "projected_daily_cents": rate * 24,
            "since": iso(m.started_at),
            "total_credits_billed": 0,
            "suspended_for_billing": False,
            "auto_destroy_at": iso(m.auto_destroy_at),
            "ttl_minutes": m.ttl_minutes,
        },
    }


REDACTED_CONNECTION = {"public_ip": None, "ssh_port": None, "ssh_username": None,
                       "vnc_port": None, "websocket_port": None, "has_ssh_key": False,
                       "has_vnc_password": False}

Svc = Annotated[Services, Depends(services)]
Caller = Annotated[Principal, Depends(principal)]


@endpoint(r, "POST", "/v1/machines", operation_id="provisionMachine",
          scopes=("machines:write",), idempotent=True)
async def provision_machine(body: ProvisionRequest, request: Request, svc: Svc,
                            caller: Caller) -> dict[str, object]:
    if body.os_type != "linux":
        raise ValidationFailed("os_type: only linux machines can run on this Deckhand server.")
    row = await svc.machines.provision(account_id=caller.account_id, mode=caller.mode,
                                       request=body)
    return {"machine": machine_view(row, test=caller.is_test),
            "connection": REDACTED_CONNECTION, "request_id": request.state.request_id}


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
    async with svc.db.read() as conn:
        row = await store.get_owned(conn, machine_id, caller.account_id, caller.mode)
    return {"machine": machine_view(row, test=caller.is_test),
            "request_id": request.state.request_id}


@endpoint(r, "DELETE", "/v1/machines/{machine_id}", operation_id="terminateMachine",
          scopes=("machines:write",))
async def terminate_machine(machine_id: MachineIdParam, request: Request, svc: Svc,
                            caller: Caller) -> dict[str, object]:
    async with svc.db.read() as conn:
        row = await store.get_owned(conn, machine_id, caller.account_id, caller.mode)
    row = await svc.machines.terminate(row)
    return {"machine_id": row.id, "status": row.status,
            "message": "Machine terminated: its processes are stopped and its workspace removed.",
            "request_id": request.state.request_id}
