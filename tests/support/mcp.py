"""The official MCP client against a Deckhand server: over stdio (a real
``deckhand mcp`` subprocess) or streamable HTTP (the server's /mcp)."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from tests.conftest import LiveServer


@asynccontextmanager
async def stdio(server: LiveServer, key: str) -> AsyncIterator[Client]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DECKHAND_")}
    env.update({"DECKHAND_URL": server.url, "DECKHAND_API_KEY": key})
    params = StdioServerParameters(command=sys.executable, args=["-m", "deckhand.cli", "mcp"],
                                   env=env)
    async with Client(params, read_timeout_seconds=60) as client:
        yield client


@asynccontextmanager
async def http(server: LiveServer, key: str) -> AsyncIterator[Client]:
    async with create_mcp_http_client(headers={"X-API-Key": key}) as h:
        async with Client(streamable_http_client(f"{server.url}/mcp", http_client=h),
                          read_timeout_seconds=60) as client:
            yield client


def structured(result: Any) -> dict[str, Any]:
    assert not result.is_error, result.content
    if result.structured_content is not None:
        return result.structured_content  # type: ignore[no-any-return]
    return json.loads(result.content[0].text)  # type: ignore[no-any-return]


def tool_error(result: Any) -> dict[str, Any]:
    assert result.is_error
    text = result.content[0].text
    return json.loads(text[text.index("{"):])["error"]  # type: ignore[no-any-return]
