"""Every MCP tool takes the contract's field names as top-level arguments,
each described and with its default, and works when called that way by the
official client (as Claude Desktop, Cursor or the MCP Inspector would)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from mcp import Client
from pydantic import BaseModel

from deckhand.api.machine_ops import ActionRequest, TerminalRequest
from deckhand.api.machines import ProvisionRequest
from deckhand.api.runs import ResumeRunRequest, RunRequest
from deckhand.api.schedules import RunScheduleRequest, ScheduleCreateRequest
from deckhand.api.workflows import (
    ResumeWorkflowRunRequest,
    StartWorkflowRunRequest,
    WorkflowCreateRequest,
)
from tests.conftest import CONTRACT, LiveServer
from tests.support.mcp import http, structured
from tests.support.runs import poll_status

pytestmark = pytest.mark.asyncio

# tool -> (the request body it sends, its other arguments)
BODY_TOOLS: dict[str, tuple[type[BaseModel], set[str]]] = {
    "start_run": (RunRequest, {"wait", "wait_seconds"}),
    "resume_run": (ResumeRunRequest, {"run_id"}),
    "provision_machine": (ProvisionRequest, set()),
    "machine_action": (ActionRequest, {"machine_id"}),
    "terminal": (TerminalRequest, {"machine_id"}),
    "create_workflow": (WorkflowCreateRequest, set()),
    "start_workflow_run": (StartWorkflowRunRequest, {"workflow_id"}),
    "approve": (ResumeWorkflowRunRequest, {"run_id"}),
    "create_schedule": (ScheduleCreateRequest, set()),
    "run_schedule": (RunScheduleRequest, {"schedule_id"}),
}
CONTRACT_BODIES = {"start_run": "RunRequest", "provision_machine": "ProvisionRequest",
                   "machine_action": "ActionRequest", "terminal": "TerminalRequest",
                   "create_workflow": "WorkflowCreateRequest",
                   "start_workflow_run": "StartWorkflowRunRequest",
                   "approve": "ResumeWorkflowRunRequest", "resume_run": "ResumeRunRequest",
                   "create_schedule": "ScheduleCreateRequest",
                   "run_schedule": "RunScheduleRequest"}
APPROVAL = {"steps": [
    {"id": "ask", "type": "human_approval", "message": "Ship it?"},
    {"id": "end", "type": "succeed", "output": {"note": "{{steps.ask.result.note}}"}},
]}


@asynccontextmanager
async def mcp_client(server: LiveServer) -> AsyncIterator[Client]:
    async with http(server, await server.key()) as client:
        yield client


async def test_every_tool_schema_is_flat_and_described(sqlite_server: LiveServer) -> None:
    contract = json.loads(CONTRACT.read_text())["components"]["schemas"]
    async with mcp_client(sqlite_server) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
    for name, tool in tools.items():
        props = tool.input_schema.get("properties", {})
        for arg, schema in props.items():
            assert schema.get("description"), f"{name}.{arg} has no description"
        if name in BODY_TOOLS:
            model, others = BODY_TOOLS[name]
            assert set(props) == set(model.model_fields) | others, name
            # The contract's own names, at the top level.
            assert set(contract[CONTRACT_BODIES[name]]["properties"]) <= set(props), name
            required = set(tool.input_schema.get("required", []))
            assert required == {f for f, info in model.model_fields.items()
                                if info.is_required()} | (others - {"wait", "wait_seconds"})
    start = tools["start_run"].input_schema["properties"]
    assert start["max_steps"]["default"] == 50 and start["max_steps"]["maximum"] == 1000
    assert start["wait"]["default"] is False
    assert tools["terminal"].input_schema["properties"]["timeout_ms"]["default"] == 30000


async def test_machine_and_run_tools_with_flat_arguments(sqlite_server: LiveServer) -> None:
    async with mcp_client(sqlite_server) as client:
        machine = structured(await client.call_tool(
            "provision_machine", {"display_name": "flat", "ttl_minutes": 60}))["machine"]
        assert machine["display_name"] == "flat"
        done = structured(await client.call_tool("terminal", {
            "machine_id": machine["id"], "command": "echo flat-$((40+2))"}))
        assert "flat-42" in json.dumps(done)
        wrote = structured(await client.call_tool("machine_action", {
            "machine_id": machine["id"], "command": "file_write",
            "parameters": {"path": "note.txt", "content": "from mcp"}}))
        assert wrote["success"] is True, wrote
        read = structured(await client.call_tool("machine_action", {
            "machine_id": machine["id"], "command": "file_read",
            "parameters": {"path": "note.txt"}}))
        assert "from mcp" in json.dumps(read)

        run = structured(await client.call_tool("start_run", {
            "machine_id": machine["id"], "task": 'Ask a human "which branch?"',
            "max_steps": 5, "metadata": {"via": "mcp"}}))
        assert run["max_steps"] == 5 and run["metadata"] == {"via": "mcp"}

        async def get() -> dict[str, Any]:
            return structured(await client.call_tool("get_run", {"run_id": run["id"]}))

        await poll_status(get, "the run", {"awaiting_human"})
        structured(await client.call_tool("resume_run", {"run_id": run["id"], "note": "main"}))
        events = structured(await client.call_tool("run_events", {"run_id": run["id"]}))
        assert "main" in json.dumps(events["data"])

        # A field the API rejects is the API's error, in its envelope.
        bad = await client.call_tool("provision_machine", {"display_name": "x", "os_type": "windows"})
        assert bad.is_error and "VALIDATION_ERROR" in bad.content[0].text


async def test_workflow_tools_with_flat_arguments(sqlite_server: LiveServer) -> None:
    async with mcp_client(sqlite_server) as client:
        wf = structured(await client.call_tool("create_workflow", {
            "name": "Approve", "slug": "approve-flat", "definition": APPROVAL,
            "description": "asks first"}))
        assert wf["slug"] == "approve-flat" and wf["description"] == "asks first"
        run = structured(await client.call_tool("start_workflow_run", {
            "workflow_id": wf["id"], "inputs": {}, "metadata": {"via": "mcp"}}))

        async def get() -> dict[str, Any]:
            return structured(await client.call_tool("get_workflow_run", {"run_id": run["id"]}))

        await poll_status(get, "the workflow run", {"awaiting_human"})
        structured(await client.call_tool("approve", {"run_id": run["id"], "approved": True,
                                              "note": "go"}))
        done = await poll_status(get, "the workflow run")
        assert done["status"] == "succeeded", done
        assert done["output"] == {"note": "go"}


async def test_schedule_tools_with_flat_arguments(sqlite_server: LiveServer) -> None:
    async with mcp_client(sqlite_server) as client:
        machine = structured(await client.call_tool("provision_machine", {"display_name": "s"}))
        mid = machine["machine"]["id"]
        s = structured(await client.call_tool("create_schedule", {
            "name": "nightly", "machine_id": mid, "task_prompt": "Run `echo mcp`",
            "frequency": "daily", "time": "03:00", "timezone": "America/New_York"}))
        assert s["cron"] == "0 3 * * *" and s["timezone"] == "America/New_York"
        listed = structured(await client.call_tool("list_schedules", {}))
        assert [x["id"] for x in listed["data"]] == [s["id"]]
        assert not structured(await client.call_tool(
            "pause_schedule", {"schedule_id": s["id"]}))["enabled"]
        assert structured(await client.call_tool(
            "resume_schedule", {"schedule_id": s["id"]}))["enabled"]
        fired = structured(await client.call_tool("run_schedule", {
            "schedule_id": s["id"], "triggered_context": {"why": "mcp"}}))
        assert fired["status"] == "queued" and fired["agent_run_id"]
        runs = structured(await client.call_tool("schedule_runs", {"schedule_id": s["id"]}))
        assert runs["data"][0]["trigger"] == "manual"
        bad = await client.call_tool("create_schedule", {
            "name": "x", "machine_id": mid, "task_prompt": "t", "frequency": "custom",
            "cron": "61 * * * *"})
        assert bad.is_error and "VALIDATION_ERROR" in bad.content[0].text
        gone = structured(await client.call_tool("delete_schedule", {"schedule_id": s["id"]}))
        assert gone["deleted"] is True
