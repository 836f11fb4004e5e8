"""The eval's loopback site: the pages the browser tasks use, served by the
eval itself on 127.0.0.1, and a record of every form post it receives.

Each attempt of a task gets a :class:`Slot` (``/s/<slot>/…``, the task's
``{{site}}``): its own posts, one-time code and shipped orders, so tasks
running at once never see each other's state. The pages are in
``eval/pages.py``; the package index for the terminal's package tasks is
``eval/wheels.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from deckhand.eval import pages
from deckhand.eval.wheels import Index

USER, PASSWORD = "ada", "correct horse"
INVENTORY = {"items": [{"sku": "lamp-01", "stock": 12}, {"sku": "mug-01", "stock": 30},
                       {"sku": "pen-01", "stock": 7}]}


@dataclass
class Slot:
    id: str
    base_url: str
    #: form name -> the fields of each post received, in order
    received: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    code: str | None = None
    signed_in: bool = False
    shipped: set[str] = field(default_factory=set)

    def record(self, form: str, fields: dict[str, str]) -> None:
        self.received.setdefault(form, []).append(fields)

    def posts(self, form: str) -> list[dict[str, str]]:
        return list(self.received.get(form, []))


class Site:
    """The slots and the app serving them."""

    def __init__(self) -> None:
        self.base_url = ""
        self.slots: dict[str, Slot] = {}
        self.index = Index()
        self.app = Starlette(routes=[
            Route("/s/{slot}/{path:path}", self._serve, methods=["GET", "POST"]),
        ])

    def new_slot(self) -> Slot:
        sid = secrets.token_hex(6)
        slot = Slot(id=sid, base_url=f"{self.base_url}/s/{sid}")
        self.slots[sid] = slot
        return slot

    async def _serve(self, request: Request) -> Response:
        slot = self.slots.get(request.path_params["slot"])
        if slot is None:
            return PlainTextResponse("no such slot", status_code=404)
        path = request.path_params["path"].strip("/")
        form = ({k: str(v) for k, v in (await request.form()).items()}
                if request.method == "POST" else {})
        return _route(slot, self.index, request.method, path, dict(request.query_params), form)


def _html(body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(body, status_code=status)


def _route(slot: Slot, index: Index, method: str, path: str, query: dict[str, str],
           form: dict[str, str]) -> Response:
    if method == "POST":
        return _post(slot, path, form)
    if path == "":
        return _html(pages.index([(f"{slot.base_url}/{p}", p) for p in (
            "signup", "login", "orders", "reports", "feedback", "search", "newsletter")]))
    simple = {"signup": pages.signup_1, "login": pages.login, "otp": pages.otp,
              "reports": pages.reports, "feedback": pages.feedback,
              "newsletter": pages.newsletter}
    if path in simple:
        return _html(simple[path]())
    if path == "inbox":
        return _html(pages.inbox(slot.code))
    if path == "inbox.txt":
        return PlainTextResponse(slot.code or "", status_code=200 if slot.code else 404)
    if path == "dashboard":
        return _html(pages.welcome(USER) if slot.signed_in else pages.login("Sign in first."))
    if path == "orders":
        page_no = query.get("page", "1")
        return _html(pages.orders(int(page_no) if page_no in ("1", "2") else 1, slot.shipped))
    if path.startswith("reports/") and path.endswith(".csv"):
        name = path[len("reports/"):-len(".csv")]
        if name in pages.REPORTS:
            return Response(pages.REPORTS[name], media_type="text/csv", headers={
                "Content-Disposition": f"attachment; filename={name}-report.csv"})
    if path == "search":
        return _html(pages.search(query.get("q", "")))
    if path.startswith("product/") and path[len("product/"):] in pages.PRODUCTS:
        return _html(pages.product(path[len("product/"):]))
    if path == "api/inventory.json":
        return Response(json.dumps(INVENTORY), media_type="application/json")
    if path.startswith("simple") or path.startswith("packages/"):
        return index.serve(path, slot.base_url)
    return PlainTextResponse("not found", status_code=404)


def _post(slot: Slot, path: str, form: dict[str, str]) -> Response:
    slot.record(path, form)
    if path == "signup/2":
        return _html(pages.signup_2({k: form.get(k, "") for k in ("full_name", "email")}))
    if path == "signup/done":
        slot.record("signup", form)
        return _html(pages.signup_done(form.get("full_name", "")))
    if path == "login":
        if form.get("username") == USER and form.get("password") == PASSWORD:
            slot.code = f"{secrets.randbelow(10**6):06d}"
            return RedirectResponse("otp", status_code=303)
        return _html(pages.login("Wrong username or password."), 401)
    if path == "otp":
        if slot.code is not None and form.get("code", "").strip() == slot.code:
            slot.code = None  # it works once
            slot.signed_in = True
            slot.record("signed_in", {"username": USER})
            return RedirectResponse("dashboard", status_code=303)
        return _html(pages.otp("That code is not right."), 401)
    if path == "ship":
        number = form.get("order", "")
        slot.shipped.add(number)
        return _html(pages.shipped(number))
    if path == "feedback":
        return _html(pages.thanks("Thanks for your feedback."))
    if path == "cart":
        return _html(pages.thanks(f"Added {pages.PRODUCTS.get(form.get('sku', ''), '?')} "
                                  "to your cart."))
    if path == "newsletter":
        return _html(pages.thanks(f"Subscribed {form.get('email', '')}."))
    return PlainTextResponse("not found", status_code=404)


@contextlib.asynccontextmanager
async def serve_site(port: int = 0) -> AsyncIterator[Site]:
    """The site on loopback ``port`` (a free one when 0) until the block ends.
    Machines have a network of their own: the server must allow them this
    port (``DECKHAND_MACHINE_HOST_ALLOW``), which an embedded server does."""
    site = Site()
    server = uvicorn.Server(uvicorn.Config(site.app, host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        site.base_url = f"http://127.0.0.1:{port}"
        yield site
    finally:
        server.should_exit = True
        with contextlib.suppress(Exception):
            await task
