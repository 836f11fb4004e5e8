"""The route class every API route uses, and the decorator that declares a
route's contract (scopes, idempotency, public or not) in one place.

The declaration lands in the route's OpenAPI extensions (``x-required-scopes``,
``x-idempotency``, ``security``) exactly like the contract, and the route class
enforces it *before* the body is parsed: a request without a valid key gets
401 whatever its body.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.routing import APIRoute
from starlette.routing import Match
from starlette.types import Scope

from deckhand.api.deps import authenticate, check_scopes, services
from deckhand.api.idempotency import run_idempotent
from deckhand.api.paths import is_literal_path


class DeckhandRoute(APIRoute):
    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        """A path spelled out by a route (``/v1/machines/health``) is that
        route's alone: ``PATCH /v1/machines/health`` is 405, not a PATCH of
        a machine whose id would be "health"."""
        match, child = super().matches(scope)
        if match is not Match.NONE and self.param_convertors and is_literal_path(scope):
            return Match.NONE, {}
        return match, child

    def get_route_handler(self) -> Callable[[Request], Any]:
        inner = super().get_route_handler()
        extra = self.openapi_extra or {}
        # Public, or authenticated by the route itself (a signed webhook).
        public = extra.get("security") == [] or extra.get("x-auth-mode") == "hmac_sha256"
        scopes = tuple(extra.get("x-required-scopes") or ())
        any_of = extra.get("x-scope-policy") == "any"
        idempotent = extra.get("x-idempotency") == "reserve-and-replay"
        operation = self.operation_id or self.name

        async def handler(request: Request) -> Response:
            if public:
                return await inner(request)  # type: ignore[no-any-return]
            principal = await authenticate(request)
            check_scopes(principal, scopes, any_of=any_of)
            services(request).usage.count(principal, operation)
            key = request.headers.get("idempotency-key")
            if idempotent and key is not None:
                return await run_idempotent(request, principal, key, operation, inner)
            return await inner(request)  # type: ignore[no-any-return]

        return handler


def router(**kwargs: Any) -> APIRouter:
    return APIRouter(route_class=DeckhandRoute, **kwargs)


def endpoint(
    r: APIRouter,
    method: str,
    path: str,
    *,
    operation_id: str,
    scopes: tuple[str, ...] = (),
    scope_policy: str = "required",
    public: bool = False,
    signed: bool = False,
    idempotent: bool = False,
    **kwargs: Any,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Declare a route: its method, path, operationId (as in the contract),
    required scopes, whether it is public (or ``signed``: no API key, the
    route checks an HMAC signature itself) and whether it is reserve-and-replay."""
    extra: dict[str, Any] = {
        "x-required-scopes": list(scopes),
        "x-scope-policy": scope_policy,
        "x-idempotency": "reserve-and-replay" if idempotent else "none",
    }
    if public:
        extra["security"] = []
    if signed:
        extra["security"] = [{"webhookHmac": []}, {"webhookHmacLegacy": []}]
        extra["x-auth-mode"] = "hmac_sha256"
    return r.api_route(
        path, methods=[method], operation_id=operation_id, openapi_extra=extra, **kwargs
    )
