"""What is done on a machine: screenshot, connection details, actions (one or
a batch), the terminal, the browser sub-API and the files sub-API. Each goes
to the machine's agent; a command the machine cannot do answers
``success: false`` with the reason, never an HTTP error.

The ``actions``, ``actions/batch`` and ``files/{op}`` routes are declared
with the contract's scopes under policy ``any`` (a key with none of them is
refused before the body is read); the scope of the command itself (the
contract's ``dynamic`` policy) is checked here.
"""

from __future__ import annotations

import base64
from typing import Annotated, Any, Literal

from fastapi import Depends, Path, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator

from deckhand.api.deps import check_scopes, principal, services
from deckhand.api.machine_views import MachineIdParam, owned, require_running
from deckhand.api.routing import endpoint, router
from deckhand.auth import Principal
from deckhand.core.clock import iso, utcnow
from deckhand.errors import MachineError
from deckhand.machine_agent import BROWSER_OPS, COMMANDS
from deckhand.services import Services

r = router(tags=["machines"])
Svc = Annotated[Services, Depends(services)]
Caller = Annotated[Principal, Depends(principal)]

ACTION_SCOPES = ("actions:exec", "terminal:exec", "files:read", "files:write", "browser:execute")
FILE_READ_OPS = ("read", "exists", "list", "list-directory", "download", "list-downloads")
FILE_WRITE_OPS = ("write", "edit", "append", "delete", "delete-directory")
FILE_READ_COMMANDS = {"file_read", "file_exists", "directory_list", "file_download",
                      "file_list_downloads"}
MAX_PARAMETERS_BYTES = 1024 * 1024
Command = Literal[COMMANDS]  # type: ignore[valid-type]


def command_scope(command: str) -> str:
    if command.startswith("terminal_"):
        return "terminal:exec"
    if command.startswith(("file_", "directory_")):
        return "files:read" if command in FILE_READ_COMMANDS else "files:write"
    if command == "browser_execute":
        return "browser:execute"
    return "actions:exec"


class ActionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    command: Command = Field(  # type: ignore[valid-type]
        description="Canonical command name (see /v1/models), e.g. click, type, key_press.")
    parameters: dict[str, Any] = Field(
        default_factory=dict,
        description="Command-specific parameters, e.g. {x, y} for click or {text} for type.")
    timeout_ms: int | None = Field(default=None, ge=1000, le=120000,
                                   description="How long the action may take.")

    @field_validator("parameters")
    @classmethod
    def _size(cls, v: dict[str, Any]) -> dict[str, Any]:
        import json

        if len(json.dumps(v)) > MAX_PARAMETERS_BYTES:
            raise ValueError("parameters are at most 1 MB serialized")
        return v


class BatchActionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    steps: list[ActionRequest] = Field(min_length=1, max_length=50)
    stop_on_error: bool = True


class BrowserOpRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    parameters: dict[str, Any] = Field(default_factory=dict)
    timeout_ms: int | None = Field(default=None, ge=1000, le=120000)


class TerminalRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    command: str = Field(min_length=1, max_length=8192, description="The shell command to run.")
    timeout_ms: int = Field(default=30000, ge=1000, le=120000,
                            description="How long the command may take.")
    session_id: str | None = Field(
        default=None, max_length=128,
        description="A terminal session to run it in (keeps cwd and environment).")
    cwd: str | None = Field(default=None, max_length=512,
                            description="Working directory for the command.")


class FilesOpRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    parameters: dict[str, Any] = Field(default_factory=dict)


BrowserOp = Annotated[Literal[tuple(BROWSER_OPS)], Path()]  # type: ignore[valid-type]
FileOp = Annotated[Literal[FILE_READ_OPS + FILE_WRITE_OPS], Path()]  # type: ignore[valid-type]


async def _machine(svc: Services, machine_id: str, caller: Principal) -> Any:
    row = await owned(svc, machine_id, caller)
    require_running(row)
    return await svc.machines.connect(row.id)


def _result(machine_id: str, command: str, outcome: dict[str, Any],
            request_id: str) -> dict[str, Any]:
    return {"machine_id": machine_id, "command": command, "success": bool(outcome.get("ok")),
            "result": outcome.get("result"), "error": outcome.get("error"),
            "duration_ms": int(outcome.get("duration_ms") or 0),
            "screenshot": outcome.get("screenshot"), "request_id": request_id}


async def _run(client: Any, step: ActionRequest) -> dict[str, Any]:
    return await client.command(step.command, step.parameters, step.timeout_ms)  # type: ignore[no-any-return]


@endpoint(r, "GET", "/v1/machines/{machine_id}/screenshot", operation_id="getScreenshot",
          scopes=("machines:read",))
async def get_screenshot(machine_id: MachineIdParam, request: Request, svc: Svc,
                         caller: Caller) -> dict[str, object]:
    client = await _machine(svc, machine_id, caller)
    jpeg, width, height, source = await client.screenshot()
    return {"machine_id": machine_id, "image_b64": base64.b64encode(jpeg).decode(),
            "mime_type": "image/jpeg", "width": width, "height": height,
            "captured_at": iso(utcnow()), "source": source,
            "request_id": request.state.request_id}


@endpoint(r, "GET", "/v1/machines/{machine_id}/connection", operation_id="getConnectionDetails",
          scopes=("connection:read",))
async def get_connection(machine_id: MachineIdParam, request: Request, svc: Svc,
                         caller: Caller) -> JSONResponse:
    from deckhand.api import machine_live

    row = await owned(svc, machine_id, caller)
    require_running(row)
    client = await svc.machines.connect(row.id)
    body: dict[str, Any] = {
        "machine_id": row.id, "public_ip": None, "ssh_port": None, "ssh_username": None,
        "ssh_private_key_pem": None, "vnc_port": None, "vnc_password": None,
        "websocket_port": None, "websocket_url": None, "devtools_url": None, "vnc_url": None,
        "screen_width": None, "screen_height": None,
    }
    live = machine_live.links(request, svc, row, caller)
    body["live_url"] = live["url"]
    body["websocket_url"] = live["websocket_url"]
    if row.desktop_enabled:
        vnc = await client.start_vnc()
        body.update(vnc_port=vnc["port"], vnc_password=vnc["password"],
                    vnc_url=live["url"], screen_width=vnc["width"],
                    screen_height=vnc["height"])
    body["request_id"] = request.state.request_id
    return JSONResponse(body, headers={"Cache-Control": "no-store"})


@endpoint(r, "POST", "/v1/machines/{machine_id}/actions", operation_id="executeAction",
          scopes=ACTION_SCOPES, scope_policy="any", idempotent=True)
async def execute_action(machine_id: MachineIdParam, body: ActionRequest, request: Request,
                         svc: Svc, caller: Caller) -> dict[str, object]:
    check_scopes(caller, (command_scope(body.command),))
    client = await _machine(svc, machine_id, caller)
    outcome = await _run(client, body)
    return _result(machine_id, body.command, outcome, request.state.request_id)


@endpoint(r, "POST", "/v1/machines/{machine_id}/actions/batch", operation_id="executeBatch",
          scopes=ACTION_SCOPES, scope_policy="any", idempotent=True)
async def execute_batch(machine_id: MachineIdParam, body: BatchActionRequest,
                        request: Request, svc: Svc, caller: Caller) -> dict[str, object]:
    needed = tuple(sorted({command_scope(s.command) for s in body.steps}))
    check_scopes(caller, needed)
    client = await _machine(svc, machine_id, caller)
    rid = request.state.request_id
    results, aborted = [], False
    for i, step in enumerate(body.steps):
        try:
            outcome = await _run(client, step)
        except MachineError as exc:
            outcome = {"ok": False, "error": exc.message}
        results.append(_result(machine_id, step.command, outcome, rid))
        if not outcome.get("ok") and body.stop_on_error and i < len(body.steps) - 1:
            aborted = True
            break
    failed = sum(1 for x in results if not x["success"])
    return {"machine_id": machine_id, "results": results,
            "completed_count": len(results) - failed, "failed_count": failed,
            "aborted": aborted, "request_id": rid}


@endpoint(r, "POST", "/v1/machines/{machine_id}/browser/{op}", operation_id="browserOp",
          scopes=("actions:exec",), idempotent=True)
async def browser_op(machine_id: MachineIdParam, op: BrowserOp, body: BrowserOpRequest,
                     request: Request, svc: Svc, caller: Caller) -> dict[str, object]:
    client = await _machine(svc, machine_id, caller)
    command = BROWSER_OPS[op]
    outcome = await client.command(command, body.parameters, body.timeout_ms)
    return _result(machine_id, command, outcome, request.state.request_id)


@endpoint(r, "POST", "/v1/machines/{machine_id}/terminal", operation_id="terminalExec",
          scopes=("terminal:exec",), idempotent=True)
async def terminal_exec(machine_id: MachineIdParam, body: TerminalRequest, request: Request,
                        svc: Svc, caller: Caller) -> dict[str, object]:
    client = await _machine(svc, machine_id, caller)
    params = {"command": body.command, "timeout_ms": body.timeout_ms,
              "session_id": body.session_id, "cwd": body.cwd}
    outcome = await client.command("terminal_execute", params, body.timeout_ms + 5000)
    return _result(machine_id, "terminal_execute", outcome, request.state.request_id)


@endpoint(r, "POST", "/v1/machines/{machine_id}/files/{op}", operation_id="filesOp",
          scopes=("files:read", "files:write"), scope_policy="any", idempotent=True)
async def files_op(machine_id: MachineIdParam, op: FileOp, body: FilesOpRequest,
                   request: Request, svc: Svc, caller: Caller) -> dict[str, object]:
    check_scopes(caller, ("files:read",) if op in FILE_READ_OPS else ("files:write",))
    client = await _machine(svc, machine_id, caller)
    result = await client.files(op, body.parameters)
    outcome = {"ok": result.ok, "error": result.error, "duration_ms": result.duration_ms,
               "result": {"output": result.output, **result.data} if result.ok else None}
    return _result(machine_id, f"files/{op}", outcome, request.state.request_id)
