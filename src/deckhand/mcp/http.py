"""``/mcp`` on the API server: MCP over streamable HTTP, behind the same API
keys. Tool calls go through the app itself (in process, no socket) with the
caller's own key, so scopes apply exactly as over plain HTTP."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator

import httpx
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from starlette.types import ASGIApp, Receive, Scope, Send

from deckhand import ids
from deckhand.api.errors import envelope
from deckhand.client import DeckhandClient
from deckhand.errors import ErrorCode
from deckhand.mcp.server import build_server

PATH = "/mcp"
INTERNAL_BASE = "http://deckhand.internal"


def _key_from(headers: dict[str, str]) -> str | None:
    raw = (headers.get("x-api-key") or "").strip()
    if raw:
        return raw
    scheme, _, token = (headers.get("authorization") or "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


class McpEndpoint:
    """The ASGI endpoint: refuses a request without a valid key (the API's 401
    envelope), hands the rest to the MCP session manager."""

    def __init__(self, app: ASGIApp) -> None:
        self.api_app = app
        self.server: MCPServer = build_server(self._client_for)
        self.inner = self.server.streamable_http_app(
            streamable_http_path=PATH,
            transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
        )

    @contextlib.asynccontextmanager
    async def _client_for(self, ctx: Context) -> AsyncIterator[DeckhandClient]:
        headers = {k.lower(): v for k, v in (ctx.headers or {}).items()}
        transport = httpx.ASGITransport(app=self.api_app)
        async with DeckhandClient(INTERNAL_BASE, _key_from(headers) or "",
                                  transport=transport) as api:
            yield api

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        async with self.server.session_manager.run():
            yield

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = {k.decode().lower(): v.decode() for k, v in scope.get("headers", [])}
        key = _key_from(headers)
        services = scope["app"].state.services
        if key is None or await services.authenticate(key) is None:
            await _unauthorized(send, scope.get("state", {}).get("request_id") or ids.request_id())
            return
        await self.inner(scope, receive, send)


async def _unauthorized(send: Send, rid: str) -> None:
    body = json.dumps(envelope(ErrorCode.INVALID_API_KEY,
                               "Missing or invalid API key for /mcp: send X-API-Key or "
                               "Authorization: Bearer.", rid)).encode()
    headers: list[tuple[bytes, bytes]] = [(b"content-type", b"application/json"),
                                          (b"x-coasty-request-id", rid.encode())]
    await send({"type": "http.response.start", "status": 401, "headers": headers})
    await send({"type": "http.response.body", "body": body})


