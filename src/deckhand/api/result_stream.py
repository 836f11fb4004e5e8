"""An inference answer as Server-Sent Events: the contract's ``text/event-stream``
on POST /v1/predict and /v1/sessions/{id}/predict, asked for with
``Accept: text/event-stream``.

The request is checked first (a bad one gets the usual error envelope and
status); then the stream opens at once and carries a ``: keepalive`` comment
every :data:`KEEPALIVE_SECONDS` while the model works, and ends with one
event: ``result`` (the JSON answer the plain call returns) or ``error`` (the
error envelope the plain call would have answered with). A client that goes
away cancels the work; nothing is charged before the model has answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Coroutine
from typing import Any

from fastapi import Request
from fastapi.responses import StreamingResponse

from deckhand.api.errors import error_response, response_for
from deckhand.errors import ErrorCode

log = logging.getLogger("deckhand.api")

KEEPALIVE_SECONDS = 5.0
MEDIA_TYPE = "text/event-stream"
HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
KEEPALIVE = b": keepalive\n\n"
STREAMING_OPERATIONS = frozenset({"predict", "sessionPredict"})

# the served OpenAPI document's 200 content for the operations that stream
STREAM_RESPONSE: dict[int | str, dict[str, Any]] = {200: {"content": {MEDIA_TYPE: {
    "schema": {"type": "string"},
    "description": "SSE keepalive stream ending with a JSON result event. Request with "
                   "Accept: text/event-stream."}}}}


def wants_stream(request: Request) -> bool:
    return MEDIA_TYPE in request.headers.get("accept", "")


def event(name: str, data: bytes) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + data + b"\n\n"


class ResultStream(StreamingResponse):
    """Runs ``work`` (a coroutine returning the JSON answer) while streaming.
    Once the stream has ended, :attr:`outcome` is ``(status, body)`` of what
    the plain call would have answered (None if the client left first), for
    the idempotency record."""

    def __init__(self, request: Request, work: Coroutine[Any, Any, dict[str, Any]],
                 keepalive: float | None = None) -> None:
        self.outcome: tuple[int, bytes] | None = None
        super().__init__(self._frames(request, work, keepalive or KEEPALIVE_SECONDS),
                         media_type=MEDIA_TYPE, headers=HEADERS)

    async def _frames(self, request: Request, work: Coroutine[Any, Any, dict[str, Any]],
                      keepalive: float) -> AsyncIterator[bytes]:
        task = asyncio.ensure_future(work)
        try:
            yield KEEPALIVE
            while not (await asyncio.wait({task}, timeout=keepalive))[0]:
                yield KEEPALIVE
            try:
                body = task.result()
            except Exception as exc:  # the error boundary: the plain call's envelope
                failed = response_for(request, exc)
                if failed is None:
                    log.exception("unhandled error in %s %s", request.method, request.url.path)
                    failed = error_response(
                        request, ErrorCode.INTERNAL_ERROR, "Something went wrong on our "
                        "side. The request_id identifies it in the server log.")
                self.outcome = (failed.status_code, bytes(failed.body))
                yield event("error", bytes(failed.body))
                return
            data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
            self.outcome = (200, data)
            yield event("result", data)
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task


def replayed(status: int, body: str) -> StreamingResponse:
    """A stored answer, as the one event that ends a stream."""
    frame = event("result" if status < 400 else "error", body.encode())

    async def frames() -> AsyncIterator[bytes]:
        yield frame

    return StreamingResponse(frames(), media_type=MEDIA_TYPE, headers=HEADERS)
