"""Reserve-and-replay for the operations the contract marks so.

The first request with a key reserves it (a row in ``idempotency_records``),
runs, and stores its status and body. A replay with the same body gets that
response back with ``X-Coasty-Idempotent-Replay: true``; a different body is
422 ``IDEMPOTENCY_KEY_REUSED``; a replay while the original still runs waits
for it, then answers 409 ``IDEMPOTENCY_IN_FLIGHT``.

A replay charges nothing: ``X-Credits-Charged: 0`` and, in a body carrying
the contract's per-call ``usage`` (predict, ground, sessions), ``usage``
with ``credits_charged: 0``, ``cost_cents: 0``, no ``breakdown`` and
``billed: false``; its tokens stay the original call's (no model is called).

A stored body is sealed (``crypto.seal``): some answers carry a secret shown
once, such as a trigger's ``webhook_secret``, and none is kept in clear.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any

import anyio
from fastapi import Request, Response

from deckhand import crypto, ids
from deckhand.api.deps import services
from deckhand.api.errors import IDEMPOTENT_REPLAYABLE, error_response, response_for
from deckhand.api.result_stream import (
    STREAMING_OPERATIONS,
    ResultStream,
    replayed,
    wants_stream,
)
from deckhand.auth import Principal
from deckhand.errors import ErrorCode, ValidationFailed
from deckhand.store import idempotency as store

KEPT_HEADERS = ("content-type", "x-credits-charged", "x-credits-remaining")
BODY_PURPOSE = "idempotency-response"


def seal_body(secret: bytes, body: str) -> str:
    return crypto.seal(secret, BODY_PURPOSE, body)


def open_body(secret: bytes, stored: str | None) -> str:
    """A stored body in clear (one stored before bodies were sealed is as it was)."""
    if stored is None or not stored.startswith("v1:"):
        return stored or ""
    return crypto.open_sealed(secret, BODY_PURPOSE, stored)


def request_hash(body: bytes, extra: str = "") -> str:
    """SHA-256 of the canonical (sorted-key) JSON body; raw bytes when the
    body is not JSON (it will fail validation, and that answer is kept too)."""
    try:
        canonical = json.dumps(
            json.loads(body) if body.strip() else None,
            sort_keys=True, separators=(",", ":"), ensure_ascii=False,
        ).encode()
    except (ValueError, UnicodeDecodeError):
        canonical = body
    return hashlib.sha256(extra.encode() + canonical).hexdigest()


async def run_idempotent(
    request: Request,
    principal: Principal,
    key: str,
    operation: str,
    handler: Callable[[Request], Awaitable[Response]],
) -> Response:
    if not ids.IDEMPOTENCY_KEY_RE.match(key):
        raise ValidationFailed(
            "Idempotency-Key must be 1-128 characters of A-Z a-z 0-9 _ - :."
        )
    setattr(request.state, IDEMPOTENT_REPLAYABLE, True)
    svc = services(request)
    body = await request.body()
    digest = request_hash(body, extra=f"{request.method} {request.url.path}\n")
    where = {"account_id": principal.account_id, "mode": principal.mode, "key": key}
    deadline = time.monotonic() + svc.settings.idempotency_wait_seconds
    delay = 0.02
    while True:
        async with svc.db.write() as conn:
            existing = await store.reserve(
                conn, **where, operation=operation, request_hash=digest,
                request_id=request.state.request_id,
                ttl=timedelta(hours=svc.settings.idempotency_ttl_hours),
            )
        if existing is None:
            return await _execute(request, where, handler)
        if existing.request_hash != digest:
            raise ValidationFailed(
                f"Idempotency-Key {key!r} was already used with a different request body.",
                code=ErrorCode.IDEMPOTENCY_KEY_REUSED,
            )
        if existing.status == "completed":
            return _replay(existing, svc.secret, stream=wants_stream(request)
                           and existing.operation in STREAMING_OPERATIONS)
        if time.monotonic() >= deadline:
            return error_response(
                request, ErrorCode.IDEMPOTENCY_IN_FLIGHT,
                f"The request with Idempotency-Key {key!r} is still being processed.",
                retry_after=1, headers={"Idempotency-Status": "processing"},
            )
        await asyncio.sleep(delay)  # waiting on another request, not on a race
        delay = min(delay * 1.5, 0.25)


async def _execute(
    request: Request, where: dict[str, str], handler: Callable[[Request], Awaitable[Response]]
) -> Response:
    svc = services(request)
    try:
        response = await handler(request)
    except Exception as exc:
        response_or_none = response_for(request, exc)
        if response_or_none is None:
            async with svc.db.write() as conn:
                await store.release(conn, **where)
            raise
        response = response_or_none
    if isinstance(response, ResultStream):
        return _recorded(response, request, where)
    if response.status_code >= 500:
        async with svc.db.write() as conn:
            await store.release(conn, **where)
        return response
    headers = {k: v for k, v in response.headers.items() if k.lower() in KEPT_HEADERS}
    async with svc.db.write() as conn:
        await store.complete(
            conn, **where, status=response.status_code,
            body=seal_body(svc.secret, bytes(response.body).decode()), headers=headers,
        )
    _first(response)
    return response


def _first(response: Response) -> None:
    response.headers["X-Coasty-Idempotent-Replay"] = "false"
    response.headers["Idempotency-Replayed"] = "false"
    response.headers["Idempotency-Status"] = "completed"


def _recorded(response: ResultStream, request: Request, where: dict[str, str]) -> Response:
    """A streamed answer is recorded once the stream has ended: what the plain
    call would have answered (a replay gets it as JSON, or as one event), or
    nothing when the client left first or the server failed."""
    svc = services(request)
    frames = response.body_iterator

    async def recording() -> AsyncIterator[Any]:
        try:
            async for chunk in frames:
                yield chunk
        finally:
            with anyio.CancelScope(shield=True):  # also when the client went away
                async with svc.db.write() as conn:
                    if response.outcome is None or response.outcome[0] >= 500:
                        await store.release(conn, **where)
                    else:
                        status, body = response.outcome
                        await store.complete(conn, **where, status=status,
                                             body=seal_body(svc.secret, body.decode()),
                                             headers={"content-type": "application/json"})

    response.body_iterator = recording()
    _first(response)
    return response


def _replay(record: store.IdempotencyRecord, secret: bytes, *, stream: bool = False
            ) -> Response:
    # stored with lower-case names; the replay's own values replace them (one each)
    headers = {k.lower(): v for k, v in (record.response_headers or {}).items()
               if k.lower() != "content-type"}
    headers.update({
        "x-coasty-idempotent-replay": "true",
        "idempotency-replayed": "true",
        "idempotency-status": "completed",
        "x-credits-charged": "0",
    })
    body = _unbilled(open_body(secret, record.response_body))
    if stream:
        answer = replayed(record.response_status or 200, body)
        answer.headers.update(headers)
        return answer
    return Response(
        content=body,
        status_code=record.response_status or 200,
        headers=headers,
        media_type="application/json",
    )


def _unbilled(body: str) -> str:
    """The stored body as a replay answers it: its per-call ``usage`` (the
    contract's UsageInfo) charges nothing. Other bodies are kept as they are."""
    try:
        data = json.loads(body)
    except ValueError:
        return body
    usage = data.get("usage") if isinstance(data, dict) else None
    if not isinstance(usage, dict) or "credits_charged" not in usage:
        return body
    data["usage"] = {**usage, "credits_charged": 0, "cost_cents": 0, "breakdown": None,
                     "billed": False}
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def lookup_body(record: store.IdempotencyRecord, secret: bytes) -> dict[str, object]:
    """The body of ``GET /v1/idempotency/{key}``."""
    if record.status != "completed":
        return {"status": "processing", "request_id": record.request_id, "result": None,
                "original_status": None}
    body = open_body(secret, record.response_body)
    try:
        result = json.loads(body or "null")
    except ValueError:
        result = body
    return {"status": "completed", "request_id": record.request_id, "result": result,
            "original_status": record.response_status}

