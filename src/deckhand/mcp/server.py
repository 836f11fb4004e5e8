"""MCP tools over Deckhand's public API.

Every tool is a thin call of the HTTP API through :class:`DeckhandClient`, so
an MCP caller gets exactly the API's behaviour: its keys, scopes, errors and
idempotency. Over stdio the client talks to ``DECKHAND_URL`` with
``DECKHAND_API_KEY`` (or an embedded server); mounted at ``/mcp`` on the
server, each request's own key is used against the app itself, in process.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any, Literal

from mcp.server.mcpserver import Context, Image, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field

from deckhand import __version__
from deckhand.api.machine_ops import ActionRequest, TerminalRequest
from deckhand.api.machines import ProvisionRequest
from deckhand.api.runs import ResumeRunRequest, RunRequest
from deckhand.api.workflows import (
    ResumeWorkflowRunRequest,
    StartWorkflowRunRequest,
    WorkflowCreateRequest,
)
from deckhand.client import ApiError, DeckhandClient
from deckhand.mcp import schedules as schedule_tools
from deckhand.mcp.flat import arg, body_tool

TERMINAL = frozenset({"succeeded", "failed", "cancelled", "timed_out"})
POLL_SECONDS = 0.25

RUN_ID = "The run's id (from start_run or list_runs)."
MACHINE_ID = "The machine's id (from provision_machine or list_machines)."
WORKFLOW_ID = "The workflow's id (from create_workflow)."
WORKFLOW_RUN_ID = "The workflow run's id (from start_workflow_run)."
RunId = Annotated[str, Field(description=RUN_ID)]
MachineId = Annotated[str, Field(description=MACHINE_ID)]

ClientFactory = Callable[[Context], contextlib.AbstractAsyncContextManager[DeckhandClient]]

INSTRUCTIONS = """Deckhand runs computer-use agents on real machines.
Start here: call `capabilities`. Then `provision_machine` (a sandboxed Linux
terminal machine), and `start_run` with a task and `wait: true` to get the
result. Without a model provider the server's offline brain understands
instructions like: Run `CMD`, then verify the output matches `REGEX`."""


def build_server(client_for: ClientFactory) -> MCPServer:
    """The MCP server; ``client_for(ctx)`` yields an API client for a call."""
    # WARNING: the SDK configures logging from this level, and INFO would fill the
    # CLI and server output with every HTTP request.
    mcp = MCPServer(name="deckhand", version=__version__, instructions=INSTRUCTIONS,
                    log_level="WARNING")

    async def call(ctx: Context, method: str, path: str, **kw: Any) -> Any:
        async with client_for(ctx) as api:
            try:
                return await api.call(method, path, **kw)
            except ApiError as exc:
                raise ToolError(json.dumps({"error": {"code": exc.code,
                                                      "message": exc.message}})) from exc

    # -- onboarding -----------------------------------------------------------
    @mcp.tool(description="What this Deckhand server offers and how to start.")
    async def capabilities(ctx: Context) -> dict[str, Any]:
        health = await call(ctx, "GET", "/v1/health")
        return {
            "server": "deckhand", "version": __version__, "api": health,
            "machines": "Linux terminal machines (sandboxed bash, files); desktop and browser "
                        "machines where the server has them.",
            "brains": "The server's default brain; with no model configured, the offline "
                      "brain: run `CMD`, verify the output matches `REGEX`, write \"TEXT\" to "
                      "PATH, verify PATH contains \"TEXT\", ask a human \"…\", finish with \"…\".",
            "how_to_start": ["provision_machine {display_name}",
                             "start_run {machine_id, task, wait: true}",
                             "run_events {run_id, after} for the step-by-step record"],
        }

    # -- runs -----------------------------------------------------------------
    @mcp.tool(description="Start an agent run on a machine: the API's RunRequest fields "
                          "(machine_id, task, max_steps, ...). With wait=true, report progress "
                          "per step and return the finished run.")
    @body_tool(RunRequest, after=(
        arg("wait", bool, "Follow the run to its end, reporting each step as progress.", False),
        arg("wait_seconds", Annotated[int, Field(ge=1, le=86400)],
            "With wait: how long to follow the run before returning it as it is.", 600),
    ))
    async def start_run(ctx: Context, body: dict[str, Any], wait: bool,
                        wait_seconds: int) -> dict[str, Any]:
        created = await call(ctx, "POST", "/v1/runs", json=body)
        if not wait:
            return created  # type: ignore[no-any-return]
        return await _wait(ctx, call, created, wait_seconds)

    @mcp.tool(description="Get a run: status, steps, credits, result or error.")
    async def get_run(run_id: RunId, ctx: Context) -> dict[str, Any]:
        return await call(ctx, "GET", f"/v1/runs/{run_id}")  # type: ignore[no-any-return]

    @mcp.tool(description="List runs, newest first.")
    async def list_runs(
        ctx: Context,
        status: Annotated[Literal["queued", "running", "awaiting_human", "succeeded", "failed",
                                  "cancelled", "timed_out"] | None,
                          Field(description="Only runs in this status.")] = None,
        limit: Annotated[int, Field(ge=1, le=200, description="At most this many runs.")] = 20,
    ) -> dict[str, Any]:
        params: dict[str, Any] = {"limit": limit}
        if status:
            params["status"] = status
        return await call(ctx, "GET", "/v1/runs", params=params)  # type: ignore[no-any-return]

    @mcp.tool(description="Cancel a run (interrupts the action in flight).")
    async def cancel_run(run_id: RunId, ctx: Context) -> dict[str, Any]:
        return await call(ctx, "POST", f"/v1/runs/{run_id}/cancel")  # type: ignore[no-any-return]

    @mcp.tool(description="Resume a run waiting for a human, with an optional note.")
    @body_tool(ResumeRunRequest, before=(arg("run_id", str, RUN_ID),))
    async def resume_run(ctx: Context, body: dict[str, Any], run_id: str) -> dict[str, Any]:
        return await call(ctx, "POST", f"/v1/runs/{run_id}/resume",  # type: ignore[no-any-return]
                          json=body)

    @mcp.tool(description="A run's events after sequence number `after` (0 = from the start).")
    async def run_events(
        run_id: RunId, ctx: Context,
        after: Annotated[int, Field(ge=0, description="Events after this sequence number.")] = 0,
    ) -> dict[str, Any]:
        return await call(ctx, "GET", f"/v1/runs/{run_id}/events",  # type: ignore[no-any-return]
                          params={"after": after}, headers={"Accept": "application/json"})

    # -- machines -------------------------------------------------------------
    @mcp.tool(description="Provision a machine: the API's ProvisionRequest fields "
                          "(display_name, desktop_enabled, ttl_minutes, ...).")
    @body_tool(ProvisionRequest)
    async def provision_machine(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
        return await call(ctx, "POST", "/v1/machines", json=body)  # type: ignore[no-any-return]

    @mcp.tool(description="List machines.")
    async def list_machines(
        ctx: Context,
        limit: Annotated[int, Field(ge=1, le=200, description="At most this many machines.")] = 50,
    ) -> dict[str, Any]:
        return await call(ctx, "GET", "/v1/machines",  # type: ignore[no-any-return]
                          params={"limit": limit})

    @mcp.tool(description="Get a machine.")
    async def get_machine(machine_id: MachineId, ctx: Context) -> dict[str, Any]:
        return await call(ctx, "GET", f"/v1/machines/{machine_id}")  # type: ignore[no-any-return]

    @mcp.tool(description="Delete a machine: stops its processes and removes its workspace.")
    async def delete_machine(machine_id: MachineId, ctx: Context) -> dict[str, Any]:
        return await call(ctx, "DELETE",  # type: ignore[no-any-return]
                          f"/v1/machines/{machine_id}")

    @mcp.tool(description="A screenshot of the machine's screen, as an image.")
    async def screenshot(machine_id: MachineId, ctx: Context) -> Image:
        shot = await call(ctx, "GET", f"/v1/machines/{machine_id}/screenshot")
        data = shot.get("image_b64") or ""
        if data.startswith("data:"):
            data = data.split(",", 1)[1]
        return Image(data=base64.b64decode(data), format=shot.get("format") or "jpeg")

    @mcp.tool(description="Run one machine action (the API's ActionRequest: command, "
                          "parameters, timeout_ms), e.g. click {x, y} or type {text}.")
    @body_tool(ActionRequest, before=(arg("machine_id", str, MACHINE_ID),))
    async def machine_action(ctx: Context, body: dict[str, Any],
                             machine_id: str) -> dict[str, Any]:
        return await call(ctx, "POST", f"/v1/machines/{machine_id}/actions",  # type: ignore[no-any-return]
                          json=body)

    @mcp.tool(description="Run a shell command in the machine's terminal (the API's "
                          "TerminalRequest).")
    @body_tool(TerminalRequest, before=(arg("machine_id", str, MACHINE_ID),))
    async def terminal(ctx: Context, body: dict[str, Any], machine_id: str) -> dict[str, Any]:
        return await call(ctx, "POST", f"/v1/machines/{machine_id}/terminal",  # type: ignore[no-any-return]
                          json=body)

    # -- workflows --------------------------------------------------------------
    @mcp.tool(description="Create a workflow: the API's WorkflowCreateRequest fields (name, "
                          "slug, definition; see docs/workflows.md).")
    @body_tool(WorkflowCreateRequest)
    async def create_workflow(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
        return await call(ctx, "POST", "/v1/workflows", json=body)  # type: ignore[no-any-return]

    @mcp.tool(description="Start a run of a saved workflow: the API's StartWorkflowRunRequest "
                          "fields (inputs, machine_id, budget_cents, ...).")
    @body_tool(StartWorkflowRunRequest, before=(arg("workflow_id", str, WORKFLOW_ID),))
    async def start_workflow_run(ctx: Context, body: dict[str, Any],
                                 workflow_id: str) -> dict[str, Any]:
        return await call(ctx, "POST", f"/v1/workflows/{workflow_id}/runs",  # type: ignore[no-any-return]
                          json=body)

    @mcp.tool(description="Get a workflow run.")
    async def get_workflow_run(
        run_id: Annotated[str, Field(description=WORKFLOW_RUN_ID)], ctx: Context,
    ) -> dict[str, Any]:
        return await call(ctx, "GET", f"/v1/workflows/runs/{run_id}")  # type: ignore[no-any-return]

    @mcp.tool(description="Approve (or reject) a workflow run waiting on a human_approval.")
    @body_tool(ResumeWorkflowRunRequest, before=(arg("run_id", str, WORKFLOW_RUN_ID),))
    async def approve(ctx: Context, body: dict[str, Any], run_id: str) -> dict[str, Any]:
        return await call(ctx, "POST", f"/v1/workflows/runs/{run_id}/resume",  # type: ignore[no-any-return]
                          json=body)

    # -- account ------------------------------------------------------------------
    @mcp.tool(description="Usage and credits for a month (YYYY-MM; default this month).")
    async def usage(
        ctx: Context,
        period: Annotated[str | None, Field(description="The month, YYYY-MM (default: this month).")] = None,
    ) -> dict[str, Any]:
        return await call(ctx, "GET", "/v1/usage",  # type: ignore[no-any-return]
                          params={"period": period} if period else None)

    @mcp.tool(description="Machine pricing.")
    async def pricing(ctx: Context) -> dict[str, Any]:
        return await call(ctx, "GET", "/v1/machines/pricing")  # type: ignore[no-any-return]

    schedule_tools.register(mcp, call)
    return mcp


async def _wait(ctx: Context, call: Any, run: dict[str, Any], wait_seconds: int) -> dict[str, Any]:
    """Follow a run to its end, reporting each step as MCP progress. If the
    client cancels the call, the run is cancelled too."""
    run_id, total = run["id"], run.get("max_steps") or 50
    reported = -1
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_seconds
    try:
        while run["status"] not in TERMINAL and loop.time() < deadline:
            await asyncio.sleep(POLL_SECONDS)
            run = await call(ctx, "GET", f"/v1/runs/{run_id}")
            if run["steps_completed"] != reported:
                reported = run["steps_completed"]
                await ctx.report_progress(reported, total,
                                          f"step {reported}/{total}: {run['status']}")
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            await asyncio.shield(call(ctx, "POST", f"/v1/runs/{run_id}/cancel"))
        raise
    return run


def static_client(base_url: str, key: str) -> ClientFactory:
    """Every call with one key against one server (stdio mode)."""

    @contextlib.asynccontextmanager
    async def factory(_ctx: Context) -> AsyncIterator[DeckhandClient]:
        async with DeckhandClient(base_url, key) as api:
            yield api

    return factory
