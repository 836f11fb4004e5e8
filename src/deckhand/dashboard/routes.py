"""The dashboard's HTTP side: its pages, their static files, sign-in and
sign-out. Everything the pages show they fetch from the public ``/v1`` API
with the session cookie (api/deps.py ``authenticate`` accepts it).

Every page but ``/sign-in`` needs a session: without one it redirects there
(303, server-side, so no page ever renders without one). ``/runs/{id}`` of a
run the session's account and mode do not own is the 404 page.
"""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Body, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field

from deckhand import ids
from deckhand.api.deps import services, session_principal
from deckhand.auth import Principal
from deckhand.dashboard import session as sess
from deckhand.errors import AuthError, CsrfError, NotFound
from deckhand.services import Services
from deckhand.store import runs as runs_store

HERE = Path(__file__).parent
STATIC = HERE / "static"
STATIC_PATH = "/dashboard/static"
DASHBOARD_HEADER = "X-Deckhand-Dashboard"  # sign-in/out: a header a cross-site form cannot send
PAGES = {"runs": "Runs", "run": "Run", "machines": "Machines", "workflows": "Workflows",
         "usage": "Usage", "schedules": "Schedules", "notfound": "Not found"}
HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data: blob:; frame-src 'self'; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'"),
}

r = APIRouter(include_in_schema=False)
Svc = Annotated[Services, Depends(services)]


def static_files() -> StaticFiles:
    return StaticFiles(directory=STATIC)


def _template(name: str) -> str:
    return (HERE / "pages" / name).read_text()


NOT_FOUND_MAIN = """<section class="notfound card">
<h1>404 — not found</h1>
<p>There is no such page here, or what it shows belongs to another account or mode
(live and test keys never see each other's runs).</p>
<p><a class="btn" href="/runs">Back to runs</a></p>
</section>"""


def _served(request: Request, method: str, path: str) -> bool:
    """Whether this server serves ``method path`` (from its own OpenAPI
    document): the pages use what the API has and say so when it lacks it."""
    def shape(p: str) -> str:  # whatever its parameters are named
        return re.sub(r"{[^}]*}", "{}", p)

    return any(shape(p) == shape(path) and method.lower() in ops
               for p, ops in request.app.openapi().get("paths", {}).items())


def _page(request: Request, page: str, principal: Principal, cookie: str, svc: Services, *,
          status: int = 200, run_id: str = "") -> HTMLResponse:
    fill = {
        "__TITLE__": PAGES[page],
        "__PAGE__": page,
        "__RUN_ID__": run_id,
        "__CSRF__": sess.csrf_token(svc.secret, cookie),
        "__ACCOUNT__": principal.account_id,
        "__MODE__": principal.mode,
        "__STATIC__": STATIC_PATH,
        "__STEPS_API__": "1" if _served(request, "get", "/v1/runs/{run_id}/steps") else "0",
        "__SCHEDULES_API__": "1" if _served(request, "get", "/v1/schedules") else "0",
    }
    text = _template("shell.html")
    for k, v in fill.items():
        text = text.replace(k, html.escape(v, quote=True))
    text = text.replace("__MAIN__", NOT_FOUND_MAIN if page == "notfound" else "")
    return HTMLResponse(text, status_code=status, headers=HEADERS)


def _to_sign_in(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/sign-in?next={quote(target, safe='/')}", status_code=303,
                            headers={"Cache-Control": "no-store"})


async def _signed_in(request: Request, svc: Services) -> tuple[Principal, str] | None:
    cookie = request.cookies.get(sess.COOKIE)
    found = await session_principal(request, svc)
    if found is None or cookie is None:
        return None
    return found, cookie


def _page_route(path: str, page: str) -> None:
    async def show(request: Request, svc: Svc) -> Response:
        who = await _signed_in(request, svc)
        if who is None:
            return _to_sign_in(request)
        return _page(request, page, who[0], who[1], svc)

    show.__name__ = f"dashboard_{page}"
    r.add_api_route(path, show, methods=["GET"], response_class=HTMLResponse)


for _path, _page_name in (("/", "runs"), ("/runs", "runs"), ("/machines", "machines"),
                          ("/workflows", "workflows"), ("/usage", "usage"),
                          ("/schedules", "schedules")):
    _page_route(_path, _page_name)


@r.get("/runs/{run_id}", response_class=HTMLResponse)
async def run_page(run_id: str, request: Request, svc: Svc) -> Response:
    who = await _signed_in(request, svc)
    if who is None:
        return _to_sign_in(request)
    principal, cookie = who
    try:
        if not ids.is_uuid(run_id):
            raise NotFound(run_id)
        async with svc.db.read() as conn:
            await runs_store.get_owned(conn, run_id, principal.account_id, principal.mode)
    except NotFound:
        return _page(request, "notfound", principal, cookie, svc, status=404)
    return _page(request, "run", principal, cookie, svc, run_id=run_id)


@r.get("/sign-in", response_class=HTMLResponse)
async def sign_in_page(request: Request, svc: Svc) -> Response:
    if await _signed_in(request, svc) is not None:
        return RedirectResponse(_next(request.query_params.get("next")), status_code=303)
    text = _template("sign-in.html").replace("__STATIC__", STATIC_PATH)
    return HTMLResponse(text, headers=HEADERS)


def _next(target: str | None) -> str:
    """Only a path of this site (never ``//host`` or a URL elsewhere)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


class SignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str = Field(min_length=1, max_length=200, description="An API key.")


def _from_dashboard(request: Request) -> None:
    """Sign-in and sign-out come from the dashboard's own script: a custom
    header, which a cross-site form cannot add (and a cross-site script may
    not without a CORS preflight this server never grants)."""
    if request.headers.get(DASHBOARD_HEADER) != "1":
        raise CsrfError(f"Sign in from the dashboard (the {DASHBOARD_HEADER} header is missing).")


@r.post("/dashboard/session")
async def sign_in(request: Request, svc: Svc,
                  body: Annotated[SignIn, Body()]) -> JSONResponse:
    """Check the key and start a session: the cookie names the key's id, never the key."""
    _from_dashboard(request)
    found = await svc.authenticate(body.key.strip())
    if found is None:
        raise AuthError("Invalid or revoked API key.")
    cookie = sess.make_cookie(svc.secret, found.key_id)
    response = JSONResponse({"account_id": found.account_id, "mode": found.mode,
                             "key_id": found.key_id}, headers={"Cache-Control": "no-store"})
    response.set_cookie(sess.COOKIE, cookie, max_age=sess.SESSION_SECONDS, path="/",
                        httponly=True, samesite="strict", secure=_secure(request, svc))
    return response


@r.post("/dashboard/sign-out")
async def sign_out(request: Request, svc: Svc) -> JSONResponse:
    """End the session (the cookie is cleared; CSRF-checked like every mutation)."""
    _from_dashboard(request)
    await session_principal(request, svc)  # CsrfError without the session's token
    response = JSONResponse({"signed_out": True}, headers={"Cache-Control": "no-store"})
    response.delete_cookie(sess.COOKIE, path="/", httponly=True, samesite="strict",
                           secure=_secure(request, svc))
    return response


def _secure(request: Request, svc: Services) -> bool:
    public = svc.settings.public_url or ""
    return request.url.scheme == "https" or public.startswith("https://")
