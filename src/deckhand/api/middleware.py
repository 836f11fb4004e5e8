"""ASGI middleware: request ids, key-kind headers and the body size cap.

Pure ASGI (no BaseHTTPMiddleware) so that streaming responses (SSE) pass
through untouched and cost nothing extra.
"""

from __future__ import annotations

import json

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from deckhand import ids
from deckhand.api.errors import envelope
from deckhand.errors import ErrorCode


class RequestContextMiddleware:
    """Gives every request a ``req_…`` id (``scope['state']['request_id']``),
    echoes it as ``X-Coasty-Request-Id`` on every response, adds
    ``X-Coasty-Key-Kind`` / ``X-Coasty-Test-Mode`` once the key is known, and
    refuses bodies over ``max_body_bytes`` with 413. Bodies are JSON unless
    the client said otherwise."""

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = ids.request_id()
        scope = _json_by_default(scope)
        state = scope.setdefault("state", {})
        state["request_id"] = rid

        declared = _content_length(scope)
        if declared is not None and declared > self.max_body_bytes:
            await self._too_large(send, rid)
            return

        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise _BodyTooLarge(self.max_body_bytes)
            return message

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = list(message.get("headers", []))
                names = {k.lower() for k, _ in headers}
                if b"x-coasty-request-id" not in names:
                    headers.append((b"x-coasty-request-id", rid.encode()))
                principal = state.get("principal")
                if principal is not None and b"x-coasty-key-kind" not in names:
                    headers.append((b"x-coasty-key-kind", principal.mode.encode()))
                    headers.append(
                        (b"x-coasty-test-mode", b"true" if principal.is_test else b"false")
                    )
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, limited_receive, send_with_headers)
        except _BodyTooLarge:
            if not started:
                await self._too_large(send, rid)

    async def _too_large(self, send: Send, rid: str) -> None:
        body = json.dumps(
            envelope(
                ErrorCode.PAYLOAD_TOO_LARGE,
                f"Request body exceeds {self.max_body_bytes} bytes.",
                rid,
                examples={"max_bytes": self.max_body_bytes},
            )
        ).encode()
        await send({
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"x-coasty-request-id", rid.encode()),
                (b"connection", b"close"),
            ],
        })
        await send({"type": "http.response.body", "body": body})


class _BodyTooLarge(HTTPException):
    """Raised from ``receive``; FastAPI passes HTTPExceptions through, so the
    app's handler answers 413 in the envelope."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"Request body exceeds {limit} bytes.")


def _json_by_default(scope: Scope) -> Scope:
    """Every body this API takes is JSON. A client that sent none or curl's
    default form type (``curl -d '{…}'``) meant JSON: say so, so its body is
    parsed instead of refused as "not an object"."""
    if scope["method"] not in ("POST", "PUT", "PATCH"):
        return scope
    headers = [(k, v) for k, v in scope["headers"] if k != b"content-type"]
    ctype = next((v for k, v in scope["headers"] if k == b"content-type"), b"")
    if ctype and not ctype.startswith(b"application/x-www-form-urlencoded"):
        return scope
    return {**scope, "headers": [*headers, (b"content-type", b"application/json")]}


def _content_length(scope: Scope) -> int | None:
    for k, v in scope.get("headers", []):
        if k == b"content-length":
            try:
                return int(v)
            except ValueError:
                return None
    return None
