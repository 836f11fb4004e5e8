"""Request dependencies: the services built in the lifespan, and the caller."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import Request

from deckhand.auth import Principal
from deckhand.dashboard import session as dash_session
from deckhand.errors import AuthError, CsrfError, ScopeError

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
    """The caller of an API request: by its key (``X-API-Key`` or Bearer), or,
    when it sends none, by the dashboard's session cookie — which changes
    state only with its CSRF token (``X-CSRF-Token``)."""
    raw = presented_key(request)
    svc = services(request)
    if raw is None:
        found = await session_principal(request, svc)
        if found is None:
            raise AuthError(
                "Missing API key. Send it as 'X-API-Key: sk-dh-live-…' or "
                "'Authorization: Bearer sk-dh-live-…'."
            )
    else:
        found = await svc.authenticate(raw)
        if found is None:
            raise AuthError("Invalid or revoked API key.")
    request.state.principal = found
    return found


async def session_principal(request: Request, svc: Services) -> Principal | None:
    """The principal of the request's dashboard session, None without one
    (absent, forged, expired, or its key revoked); CsrfError for a
    state-changing request without the session's CSRF token."""
    cookie = request.cookies.get(dash_session.COOKIE)
    if not cookie:
        return None
    claim = dash_session.read_cookie(svc.secret, cookie)
    if claim is None:
        return None
    found = await svc.principal_of_key(claim.key_id)
    if found is None:
        return None
    if request.method not in dash_session.SAFE_METHODS and not dash_session.csrf_ok(
            svc.secret, cookie, request.headers.get(dash_session.CSRF_HEADER)):
        raise CsrfError("This request changes state: a dashboard session must send its "
                        "X-CSRF-Token header.")
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
