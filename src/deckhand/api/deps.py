"""Request dependencies: the services built in the lifespan, and the caller."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import Request

from deckhand.auth import Principal
from deckhand.errors import AuthError, ScopeError

if TYPE_CHECKING:
    from deckhand.services import Services


def services(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


def principal(request: Request) -> Principal:
    """The authenticated caller (set by the route before the endpoint runs)."""
    p = getattr(request.state, "principal", None)
    if p is None:  # a public route asked for a principal: a programming error
        raise RuntimeError("principal requested on an unauthenticated route")
    return p  # type: ignore[no-any-return]


def presented_key(request: Request) -> str | None:
    """``X-API-Key``, or a Bearer token when that header is absent or blank."""
    raw = request.headers.get("x-api-key", "").strip()
    if raw:
        return raw
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


async def authenticate(request: Request) -> Principal:
    raw = presented_key(request)
    if raw is None:
        raise AuthError(
            "Missing API key. Send it as 'X-API-Key: sk-dh-live-…' or "
            "'Authorization: Bearer sk-dh-live-…'."
        )
    svc = services(request)
    found = await svc.authenticate(raw)
    if found is None:
        raise AuthError("Invalid or revoked API key.")
    request.state.principal = found
    return found


def check_scopes(p: Principal, required: tuple[str, ...], *, any_of: bool = False) -> None:
    """All of ``required`` (or at least one, with ``any_of``) must be granted."""
    if not required:
        return
    missing = [s for s in required if s not in p.scopes]
    if any_of and len(missing) < len(required):
        return
    if missing:
        needed = " or ".join(required) if any_of else ", ".join(missing)
        raise ScopeError(f"This API key lacks the required scope: {needed}.")
