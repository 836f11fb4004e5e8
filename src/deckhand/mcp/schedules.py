"""The MCP server's schedule tools: create (the API's ScheduleCreateRequest
fields, flat), list, get, pause, resume, run now, history, delete — each one
call of the HTTP API, like every other tool (mcp/server.py)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from mcp.server.mcpserver import Context, MCPServer
from pydantic import Field

from deckhand.api.schedules import RunScheduleRequest, ScheduleCreateRequest
from deckhand.mcp.flat import arg, body_tool

SCHEDULE_ID = "The schedule's id (from create_schedule or list_schedules)."
ScheduleId = Annotated[str, Field(description=SCHEDULE_ID)]
Call = Callable[..., Awaitable[Any]]


def register(mcp: MCPServer, call: Call) -> None:
    @mcp.tool(description="Create a schedule: the API's ScheduleCreateRequest fields (name, "
                          "machine_id, task_prompt, frequency + time, or cron, or run_at, "
                          "timezone, ...).")
    @body_tool(ScheduleCreateRequest)
    async def create_schedule(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
        return await call(ctx, "POST", "/v1/schedules", json=body)  # type: ignore[no-any-return]

    @mcp.tool(description="List schedules, newest first.")
    async def list_schedules(
        ctx: Context,
        limit: Annotated[int, Field(ge=1, le=200, description="At most this many.")] = 50,
    ) -> dict[str, Any]:
        return await call(ctx, "GET", "/v1/schedules",  # type: ignore[no-any-return]
                          params={"limit": limit})

    @mcp.tool(description="Get a schedule: timing, next_run_at, counters, pause reason.")
    async def get_schedule(schedule_id: ScheduleId, ctx: Context) -> dict[str, Any]:
        return await call(ctx, "GET",  # type: ignore[no-any-return]
                          f"/v1/schedules/{schedule_id}")

    @mcp.tool(description="Pause a schedule (nothing fires until it is resumed).")
    async def pause_schedule(schedule_id: ScheduleId, ctx: Context) -> dict[str, Any]:
        return await call(ctx, "POST",  # type: ignore[no-any-return]
                          f"/v1/schedules/{schedule_id}/pause")

    @mcp.tool(description="Resume a paused schedule.")
    async def resume_schedule(schedule_id: ScheduleId, ctx: Context) -> dict[str, Any]:
        return await call(ctx, "POST",  # type: ignore[no-any-return]
                          f"/v1/schedules/{schedule_id}/resume")

    @mcp.tool(description="Fire a schedule now (task_prompt_override, triggered_context); "
                          "returns the firing and its run (agent_run_id).")
    @body_tool(RunScheduleRequest, before=(arg("schedule_id", str, SCHEDULE_ID),))
    async def run_schedule(ctx: Context, body: dict[str, Any],
                           schedule_id: str) -> dict[str, Any]:
        return await call(ctx, "POST",  # type: ignore[no-any-return]
                          f"/v1/schedules/{schedule_id}/run", json=body)

    @mcp.tool(description="A schedule's firings, newest first (status, trigger, its run).")
    async def schedule_runs(
        schedule_id: ScheduleId, ctx: Context,
        limit: Annotated[int, Field(ge=1, le=200, description="At most this many.")] = 20,
    ) -> dict[str, Any]:
        return await call(ctx, "GET",  # type: ignore[no-any-return]
                          f"/v1/schedules/{schedule_id}/runs", params={"limit": limit})

    @mcp.tool(description="Delete a schedule, its history and its triggers.")
    async def delete_schedule(schedule_id: ScheduleId, ctx: Context) -> dict[str, Any]:
        return await call(ctx, "DELETE",  # type: ignore[no-any-return]
                          f"/v1/schedules/{schedule_id}")
