"""HTTP plumbing of the machine agent: the bearer-token gate, JSON bodies,
error answers, client-disconnect detection, frames as JSON."""

from __future__ import annotations

import base64
import hmac
import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from deckhand.core.actions import ActionResult
from deckhand.machine_agent.desktop import Frame

MAX_BODY_BYTES = 80 * 1024 * 1024  # 50 MB of file content, base64-encoded, plus JSON


class BearerAuth:
    """Refuses every request without the agent's bearer token (401)."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            got = dict(scope["headers"]).get(b"authorization", b"")
            if not hmac.compare_digest(got, self.expected):
                await send({"type": "websocket.close", "code": 4401})
                return
        if scope["type"] == "http":
            got = b""
            for name, value in scope["headers"]:
                if name == b"authorization":
                    got = value
                    break
            if not hmac.compare_digest(got, self.expected):
                response = JSONResponse({"error": "invalid or missing bearer token"},
                                        status_code=401,
                                        headers={"WWW-Authenticate": "Bearer"})
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


async def wait_for_disconnect(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


async def json_body(request: Request) -> dict[str, Any] | None:
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        return None
    try:
        data = json.loads(body or b"{}")
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def error_response(status: int, message: str) -> JSONResponse:
    return JSONResponse(ActionResult(ok=False, error=message).model_dump(mode="json"),
                        status_code=status)


def frame_json(frame: Frame | None) -> dict[str, Any] | None:
    """A frame as ``{image_b64, mime_type, width, height, source}`` (None: no frame)."""
    if frame is None:
        return None
    return {"image_b64": base64.b64encode(frame.jpeg).decode(), "mime_type": "image/jpeg",
            "width": frame.width, "height": frame.height, "source": frame.source}
