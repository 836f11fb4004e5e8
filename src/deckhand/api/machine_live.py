"""The live view (additive): watch a machine's screen and take over.

- ``GET /v1/machines/{id}/live`` — the page (public HTML; it holds no
  secret). It signs in with the ``ticket`` in its URL (from
  ``POST /v1/machines/{id}/live`` or the connection details' ``vnc_url``) or
  asks for an API key and gets a ticket with it.
- ``POST /v1/machines/{id}/live`` (``actions:exec``) — a ticket: a signed,
  hour-long grant to view and control that machine.
- ``GET /v1/machines/{id}/live/session?ticket=`` and the WebSocket
  ``/v1/machines/{id}/live/ws?ticket=`` — what the page uses: for a desktop,
  noVNC speaks RFB to the machine's x11vnc through this server and the
  machine's agent; for a machine without a desktop, the browser's CDP
  screencast (or the rendered terminal) with mouse and keyboard going back.

noVNC itself is served from Debian's ``/usr/share/novnc``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Request, WebSocket
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse

from deckhand.api.deps import principal, services
from deckhand.api.machine_views import MachineIdParam, owned, require_running
from deckhand.api.routing import endpoint, router
from deckhand.auth import Principal
from deckhand.core.clock import iso
from deckhand.errors import AuthError, MachineError, NotFound
from deckhand.services import Services
from deckhand.store import machines as store
from deckhand.store.records import Machine

r = router(tags=["machines"])
Svc = Annotated[Services, Depends(services)]
Caller = Annotated[Principal, Depends(principal)]
NOVNC = Path("/usr/share/novnc")
TICKET_SECONDS = 3600
PURPOSE = b"deckhand-live-ticket\n"


# --------------------------------------------------------------------------- tickets


def make_ticket(secret: bytes, machine_id: str, account_id: str, mode: str,
                ttl: int = TICKET_SECONDS) -> tuple[str, int]:
    exp = int(time.time()) + ttl
    payload = f"{machine_id}|{account_id}|{mode}|{exp}".encode()
    mac = hmac.new(secret, PURPOSE + payload, hashlib.sha256).digest()
    token = base64.urlsafe_b64encode(payload).decode().rstrip("=") + "." + \
        base64.urlsafe_b64encode(mac).decode().rstrip("=")
    return token, exp


def check_ticket(secret: bytes, ticket: str, machine_id: str) -> tuple[str, str]:
    """(account_id, mode) of a valid ticket for ``machine_id``; AuthError otherwise."""
    try:
        p64, m64 = ticket.split(".", 1)
        payload = base64.urlsafe_b64decode(p64 + "=" * (-len(p64) % 4))
        mac = base64.urlsafe_b64decode(m64 + "=" * (-len(m64) % 4))
        mid, account_id, mode, exp = payload.decode().split("|")
    except (ValueError, UnicodeDecodeError) as exc:
        raise AuthError("Invalid live-view ticket.") from exc
    good = hmac.new(secret, PURPOSE + payload, hashlib.sha256).digest()
    if not hmac.compare_digest(mac, good) or mid != machine_id:
        raise AuthError("Invalid live-view ticket.")
    if int(exp) < time.time():
        raise AuthError("The live-view ticket expired; get a new one (POST /v1/machines/{id}/live).")
    return account_id, mode


def base_url(request: Request, svc: Services) -> str:
    if svc.settings.public_url:
        return svc.settings.public_url.rstrip("/")
    return str(request.base_url).rstrip("/")


def links(request: Request, svc: Services, row: Machine, caller: Principal) -> dict[str, Any]:
    ticket, exp = make_ticket(svc.secret, row.id, caller.account_id, caller.mode)
    base = base_url(request, svc)
    ws_base = "ws" + base[len("http"):]
    return {"url": f"{base}/v1/machines/{row.id}/live?ticket={ticket}",
            "websocket_url": f"{ws_base}/v1/machines/{row.id}/live/ws?ticket={ticket}",
            "ticket": ticket,
            "expires_at": iso(datetime.fromtimestamp(exp, tz=UTC))}


async def _ticket_machine(svc: Services, machine_id: str, ticket: str | None) -> Any:
    if not ticket:
        raise AuthError("A live-view ticket is required (?ticket=…).")
    account_id, mode = check_ticket(svc.secret, ticket, machine_id)
    async with svc.db.read() as conn:
        row = await store.get_owned(conn, machine_id, account_id, mode)
    return row


# --------------------------------------------------------------------------- routes


@endpoint(r, "POST", "/v1/machines/{machine_id}/live", operation_id="createLiveTicket",
          scopes=("actions:exec",))
async def live_ticket(machine_id: MachineIdParam, request: Request, svc: Svc,
                      caller: Caller) -> dict[str, object]:
    """Deckhand: a signed, hour-long link to watch the machine and take over."""
    row = await owned(svc, machine_id, caller)
    require_running(row)
    return {**links(request, svc, row, caller), "machine_id": row.id,
            "request_id": request.state.request_id}


@endpoint(r, "GET", "/v1/machines/{machine_id}/live", operation_id="liveView", public=True,
          response_class=HTMLResponse)
async def live_page(machine_id: MachineIdParam) -> HTMLResponse:
    """Deckhand: the live-view page (sign in with a ticket or an API key)."""
    return HTMLResponse(PAGE.replace("__MACHINE_ID__", machine_id),
                        headers={"Cache-Control": "no-store",
                                 "Referrer-Policy": "no-referrer"})


@endpoint(r, "GET", "/v1/machines/{machine_id}/live/session", operation_id="liveSession",
          public=True, include_in_schema=False)
async def live_session(machine_id: MachineIdParam, svc: Svc,
                       ticket: str | None = None) -> JSONResponse:
    row = await _ticket_machine(svc, machine_id, ticket)
    require_running(row)
    client = await svc.machines.connect(row.id)
    if row.desktop_enabled:
        vnc = await client.start_vnc()
        body = {"kind": "vnc", "password": vnc["password"], "width": vnc["width"],
                "height": vnc["height"]}
    else:
        body = {"kind": "screencast"}
    return JSONResponse({**body, "machine_id": row.id, "display_name": row.display_name},
                        headers={"Cache-Control": "no-store"})


@endpoint(r, "GET", "/v1/live-assets/novnc/{path:path}", operation_id="liveAssets",
          public=True, include_in_schema=False)
async def novnc_asset(path: str) -> FileResponse:
    root = NOVNC.resolve()
    target = (root / path).resolve()
    if root not in target.parents or not target.is_file():
        raise NotFound("No such live-view asset.")
    return FileResponse(target, headers={"Cache-Control": "max-age=3600"})


@r.websocket("/v1/machines/{machine_id}/live/ws")
async def live_ws(websocket: WebSocket, machine_id: str) -> None:
    svc: Services = websocket.app.state.services
    try:
        row = await _ticket_machine(svc, machine_id, websocket.query_params.get("ticket"))
        client = await svc.machines.connect(row.id)
    except (AuthError, NotFound, MachineError):
        await websocket.close(code=4401)
        return
    from websockets.asyncio.client import connect
    from websockets.exceptions import WebSocketException

    path = "/live/vnc" if row.desktop_enabled else "/live/screencast"
    offered = websocket.scope.get("subprotocols") or []
    sub = "binary" if "binary" in offered else None
    try:
        upstream = await connect(client.ws_url(path), additional_headers=client.auth_headers,
                                 subprotocols=["binary"] if sub else None, max_size=None,
                                 open_timeout=20)
    except (OSError, WebSocketException, TimeoutError):
        await websocket.close(code=1011)
        return
    await websocket.accept(subprotocol=sub)
    svc.machines.touch(row.id)

    async def up() -> None:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            if message.get("bytes") is not None:
                await upstream.send(message["bytes"])
            elif message.get("text") is not None:
                await upstream.send(message["text"])
            svc.machines.touch(row.id)

    async def down() -> None:
        async for data in upstream:
            if isinstance(data, bytes):
                await websocket.send_bytes(data)
            else:
                await websocket.send_text(data)

    tasks = {asyncio.ensure_future(up()), asyncio.ensure_future(down())}
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await upstream.close()
        with contextlib.suppress(Exception):
            await websocket.close()


PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Deckhand — live view</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
 body{margin:0;background:#1b1b1f;color:#ddd;font:14px system-ui,sans-serif}
 #bar{padding:6px 12px;background:#26262b;display:flex;gap:12px;align-items:center}
 #screen{width:100vw;height:calc(100vh - 34px)} canvas{display:block;margin:auto;max-width:100%;
 max-height:calc(100vh - 34px);cursor:crosshair;outline:none}
 form{padding:40px;text-align:center} input{width:360px;padding:6px}
</style></head>
<body><div id="bar"><b>Deckhand</b> live view of <code id="mid">__MACHINE_ID__</code>
<span id="status">connecting…</span></div>
<form id="signin" hidden><p>Sign in with an API key (scope actions:exec) to watch and control
this machine.</p><input id="key" type="password" placeholder="sk-dh-live-…" autocomplete="off">
<button>Sign in</button><p id="err"></p></form>
<div id="screen"></div><canvas id="cast" tabindex="0" hidden></canvas>
<script type="module">
const id = "__MACHINE_ID__";
const status = t => document.getElementById("status").textContent = t;
const params = new URLSearchParams(location.search);
let ticket = params.get("ticket") || sessionStorage.getItem("dh-live-" + id);
async function signIn(key) {
  const r = await fetch(`/v1/machines/${id}/live`, {method: "POST", headers: {"X-API-Key": key}});
  const j = await r.json();
  if (!r.ok) throw new Error(j.error ? j.error.message : r.statusText);
  return j.ticket;
}
async function start() {
  const r = await fetch(`/v1/machines/${id}/live/session?ticket=${encodeURIComponent(ticket)}`);
  if (!r.ok) { sessionStorage.removeItem("dh-live-" + id); ticket = null; return askKey(); }
  sessionStorage.setItem("dh-live-" + id, ticket);
  const s = await r.json();
  const ws = (location.protocol === "https:" ? "wss" : "ws") + "://" + location.host +
    `/v1/machines/${id}/live/ws?ticket=${encodeURIComponent(ticket)}`;
  if (s.kind === "vnc") {
    const {default: RFB} = await import("/v1/live-assets/novnc/core/rfb.js");
    const rfb = new RFB(document.getElementById("screen"), ws, {credentials: {password: s.password}});
    rfb.scaleViewport = true;
    rfb.addEventListener("connect", () => status("connected — you can click and type"));
    rfb.addEventListener("disconnect", () => status("disconnected"));
  } else {
    cast(ws);
  }
}
function cast(url) {
  const canvas = document.getElementById("cast"); canvas.hidden = false;
  document.getElementById("screen").hidden = true;
  const ctx = canvas.getContext("2d"); const sock = new WebSocket(url);
  sock.onopen = () => status("connected — you can click and type");
  sock.onclose = () => status("disconnected");
  sock.onmessage = ev => { const m = JSON.parse(ev.data); if (m.type !== "frame") return;
    const img = new Image(); img.onload = () => { canvas.width = m.width || img.width;
      canvas.height = m.height || img.height; ctx.drawImage(img, 0, 0, canvas.width, canvas.height); };
    img.src = "data:image/jpeg;base64," + m.data; };
  const at = e => { const b = canvas.getBoundingClientRect();
    return {x: (e.clientX - b.left) * canvas.width / b.width, y: (e.clientY - b.top) * canvas.height / b.height}; };
  const send = m => sock.readyState === 1 && sock.send(JSON.stringify(m));
  canvas.addEventListener("click", e => { canvas.focus(); send({type: "click", ...at(e)}); });
  canvas.addEventListener("wheel", e => { e.preventDefault(); send({type: "scroll", dx: e.deltaX, dy: e.deltaY}); });
  canvas.addEventListener("keydown", e => { e.preventDefault();
    if (e.key.length === 1 && !e.ctrlKey && !e.metaKey) send({type: "text", text: e.key});
    else send({type: "key", key: [e.ctrlKey && "Control", e.altKey && "Alt", e.metaKey && "Meta",
      e.shiftKey && e.key.length > 1 && "Shift", e.key].filter(Boolean).join("+")}); });
}
function askKey() {
  status("sign in"); const f = document.getElementById("signin"); f.hidden = false;
  f.onsubmit = async e => { e.preventDefault();
    try { ticket = await signIn(document.getElementById("key").value); f.hidden = true; start(); }
    catch (err) { document.getElementById("err").textContent = err.message; } };
}
if (ticket) start(); else askKey();
</script></body></html>
"""
