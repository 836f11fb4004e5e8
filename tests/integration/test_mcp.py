"""The MCP server, driven by the official `mcp` client over stdio (a real
subprocess) and over streamable HTTP (the server's /mcp)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from typing import Any

import httpx2
import pytest

from deckhand.scopes import OPERATOR_SCOPES
from tests.conftest import LiveServer
from tests.support.mcp import http, stdio, structured, tool_error
from tests.support.polling import wait_until
from tests.support.runs import wait_for

pytestmark = pytest.mark.asyncio

TASK = "Run `echo mcp-$((6*7))` and verify the output contains \"mcp-42\""
EXPECTED_TOOLS = {"capabilities", "start_run", "get_run", "list_runs", "cancel_run",
                  "resume_run", "run_events", "provision_machine", "list_machines",
                  "get_machine", "screenshot", "machine_action", "terminal", "delete_machine",
                  "create_workflow", "start_workflow_run", "get_workflow_run", "approve",
                  "usage", "pricing"}


@pytest.mark.parametrize("transport", ["stdio", "http"])
async def test_tools_run_and_errors(sqlite_server: LiveServer, transport: str) -> None:
    connect = stdio if transport == "stdio" else http
    key = await sqlite_server.key()
    async with connect(sqlite_server, key) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        assert EXPECTED_TOOLS <= set(tools)
        assert "machine_id" in json.dumps(tools["start_run"].input_schema)

        caps = structured(await client.call_tool("capabilities", {}))
        assert caps["api"]["status"] == "ok"

        machine = structured(await client.call_tool(
            "provision_machine", {"display_name": "mcp"}))["machine"]
        progress: list[float] = []

        async def on_progress(p: float, total: float | None, message: str | None) -> None:
            progress.append(p)

        run = structured(await client.call_tool(
            "start_run", {"machine_id": machine["id"], "task": TASK, "wait": True},
            progress_callback=on_progress))
        assert run["status"] == "succeeded", run
        assert progress and max(progress) >= 1

        shot = await client.call_tool("screenshot", {"machine_id": machine["id"]})
        assert not shot.is_error, shot.content
        image = shot.content[0]
        assert image.type == "image" and image.mime_type == "image/jpeg"
        assert base64.b64decode(image.data)[:2] == b"\xff\xd8"  # a JPEG

        events = structured(await client.call_tool("run_events", {"run_id": run["id"]}))
        assert events["data"][-1]["type"] == "done"
        assert [e["seq"] for e in events["data"]] == list(range(1, len(events["data"]) + 1))

        err = tool_error(await client.call_tool("get_machine", {"machine_id": "mch_test_00000000"}))
        assert err["code"] == "NOT_FOUND"
        err = tool_error(await client.call_tool(
            "start_run", {"machine_id": "mch_test_00000000", "task": "x"}))
        assert err["code"] == "NOT_FOUND"
        structured(await client.call_tool("delete_machine", {"machine_id": machine["id"]}))

    reader = await sqlite_server.key(scopes=tuple(s for s in OPERATOR_SCOPES if s != "runs:write"))
    async with connect(sqlite_server, reader) as client:
        err = tool_error(await client.call_tool(
            "start_run", {"machine_id": machine["id"], "task": TASK}))
        assert err["code"] == "INSUFFICIENT_SCOPE"


async def test_http_endpoint_needs_a_key(sqlite_server: LiveServer) -> None:
    async with httpx2.AsyncClient() as h:
        r = await h.post(f"{sqlite_server.url}/mcp", json={"jsonrpc": "2.0", "id": 1,
                                                           "method": "tools/list"})
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "INVALID_API_KEY"


async def test_cancelling_a_waiting_call_cancels_the_run(sqlite_server: LiveServer) -> None:
    key = await sqlite_server.key()
    async with http(sqlite_server, key) as client:
        machine = structured(await client.call_tool(
            "provision_machine", {"display_name": "mcp"}))["machine"]
        call = asyncio.create_task(client.call_tool(
            "start_run", {"machine_id": machine["id"], "task": "Run `sleep 30`", "wait": True}))
        async with sqlite_server.client(key) as c:

            async def running() -> list[dict[str, Any]]:
                r = await c.get("/v1/runs", params={"status": "running"})
                return r.json()["data"]  # type: ignore[no-any-return]

            runs = await wait_until(running, timeout=20, what="the MCP run to be running")
            call.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await call
            await wait_for(c, runs[0]["id"], {"cancelled"}, timeout=10)
