"""Turn every error into the contract's ``ApiError`` envelope."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from deckhand import errors as e
from deckhand.api.paths import allowed_methods
from deckhand.errors import DeckhandError, ErrorCode

log = logging.getLogger("deckhand.api")

IDEMPOTENT_REPLAYABLE = "idempotent_replayable"


def request_id_of(request: Request) -> str:
    return getattr(request.state, "request_id", None) or "req_unknown"


def envelope(
    code: ErrorCode,
    message: str,
    request_id: str,
    *,
    retry_after: int | None = None,
    examples: dict[str, Any] | None = None,
    retry_with_same_key: bool = False,
) -> dict[str, Any]:
    err: dict[str, Any] = {
        "code": code.value,
        "message": message,
        "type": e.error_type(code),
        "request_id": request_id,
        "retryable": e.is_retryable(code),
        "retry_with_same_idempotency_key": retry_with_same_key,
    }
    if (hint := e.suggestion(code)) is not None:
        err["suggestion"] = hint
    if retry_after is not None:
        err["retry_after"] = retry_after
    if examples:
        err["examples"] = examples
    return {"error": err}


def error_response(
    request: Request,
    code: ErrorCode,
    message: str,
    *,
    retry_after: int | None = None,
    examples: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    rid = request_id_of(request)
    # Only a retryable answer to a request that carried an Idempotency-Key on a
    # reserve-and-replay operation may be retried with the same key.
    same_key = e.is_retryable(code) and bool(getattr(request.state, IDEMPOTENT_REPLAYABLE, False))
    body = envelope(code, message, rid, retry_after=retry_after, examples=examples,
                    retry_with_same_key=same_key)
    out_headers = {"X-Coasty-Request-Id": rid, **(headers or {})}
    if retry_after is not None:
        out_headers["Retry-After"] = str(retry_after)
    return JSONResponse(body, status_code=e.http_status(code), headers=out_headers)


def response_for(request: Request, exc: Exception) -> JSONResponse | None:
    """The envelope for an error a client caused, or None for a bug."""
    if isinstance(exc, DeckhandError):
        return error_response(request, exc.code, exc.message, retry_after=exc.retry_after,
                              examples=exc.examples, headers=exc.headers)
    if isinstance(exc, RequestValidationError):
        return _validation_response(request, exc)
    return None


def _validation_response(request: Request, exc: RequestValidationError) -> JSONResponse:
    problems = exc.errors()
    if any(p.get("type") == "json_invalid" for p in problems):
        p = next(p for p in problems if p.get("type") == "json_invalid")
        detail = (p.get("ctx") or {}).get("error", "invalid JSON")
        return JSONResponse(
            envelope(ErrorCode.VALIDATION_ERROR, f"Malformed JSON body: {detail}.",
                     request_id_of(request)),
            status_code=400,
            headers={"X-Coasty-Request-Id": request_id_of(request)},
        )
    parts = []
    for p in problems[:10]:
        loc = ".".join(str(x) for x in p.get("loc", ()) if x != "body") or "body"
        parts.append(f"{loc}: {p.get('msg', 'invalid')}")
    message = "Invalid request: " + "; ".join(parts) + "."
    return error_response(request, ErrorCode.VALIDATION_ERROR, message)


async def deckhand_error_handler(request: Request, exc: Exception) -> JSONResponse:
    response = response_for(request, exc)
    assert response is not None
    return response


async def http_exception_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 404:
        return error_response(
            request, ErrorCode.NOT_FOUND,
            f"No route {request.method} {request.url.path}. See /openapi.json.",
        )
    if exc.status_code == 405:
        return error_response(
            request, ErrorCode.METHOD_NOT_ALLOWED,
            f"{request.method} is not allowed on {request.url.path}.",
            # every method of the path (Starlette names only the first route's)
            headers={"Allow": ", ".join(allowed_methods(request.scope))
                     or (exc.headers or {}).get("Allow", "")},
        )
    if exc.status_code == 413:
        return error_response(request, ErrorCode.PAYLOAD_TOO_LARGE, str(exc.detail))
    code = ErrorCode.BAD_REQUEST if exc.status_code < 500 else ErrorCode.INTERNAL_ERROR
    return error_response(request, code, str(exc.detail))


async def unhandled_error_handler(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error in %s %s (%s)", request.method, request.url.path,
                  request_id_of(request))
    return error_response(
        request, ErrorCode.INTERNAL_ERROR,
        "Something went wrong on our side. The request_id identifies it in the server log.",
    )
