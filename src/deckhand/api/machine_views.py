"""How machines look on the wire (MachineRecord, ConnectionDetails*) and the
lookups the machine routes share."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path

from deckhand.auth import Principal
from deckhand.core.clock import iso, utcnow
from deckhand.errors import InvalidState
from deckhand.machines import billing
from deckhand.store import machines as store
from deckhand.store.records import Machine

MACHINE_ID_PATTERN = (
    r"^(?:[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
    r"|mch_test_[0-9a-f]{8,32})$"
)
MachineIdParam = Annotated[str, Path(pattern=MACHINE_ID_PATTERN)]


def machine_view(m: Machine, *, test: bool) -> dict[str, Any]:
    now = utcnow()
    running = billing.running_rate(m.os_type, test=test)
    current = billing.rate(m) if not test else 0
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
            "running_credits_per_hour": running,
            "stopped_credits_per_hour": billing.stopped_rate(test=test),
            "accrued_cents": 0 if test else billing.accrued_millicredits(m, now) // 1000,
            "projected_daily_cents": current * 24,
            "since": iso(m.billing_since),
            "total_credits_billed": m.credits_billed,
            "suspended_for_billing": m.suspended_for_billing,
            "auto_destroy_at": iso(m.auto_destroy_at),
            "ttl_minutes": m.ttl_minutes,
        },
        # Deckhand additions
        "kind": m.kind,
        "provider": m.provider,
        "error": m.error,
    }


def connection_redacted(m: Machine) -> dict[str, Any]:
    return {"public_ip": None, "ssh_port": None, "ssh_username": None, "vnc_port": None,
            "websocket_port": None, "has_ssh_key": False,
            "has_vnc_password": bool(m.desktop_enabled)}


async def owned(svc: Any, machine_id: str, caller: Principal) -> Machine:
    async with svc.db.read() as conn:
        return await store.get_owned(conn, machine_id, caller.account_id, caller.mode)


def require_running(m: Machine) -> None:
    if m.status in ("creating", "provisioning", "starting", "restarting"):
        return  # connect() waits for it
    if m.status != "running":
        raise InvalidState(f"Machine {m.id} is {m.status}; it must be running "
                           "(POST /v1/machines/{id}/start starts a stopped one).")
