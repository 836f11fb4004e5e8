"""Desktop machines through the HTTP API: Xvfb + openbox + xterm, XTEST
input, mss screenshots, windows, text recognition, the offline brain's
screen instructions with OCR grounding, and the noVNC live view."""

from __future__ import annotations

import asyncio
import base64
import io
import os
import shutil
import sys
from pathlib import Path

import pytest
from PIL import Image
from websockets.asyncio.client import connect

from deckhand.machine_agent import ocr
from tests.support.contract import assert_valid
from tests.support.machine_pages import recorded_groundings, serve_pages, server, sqlite_server
from tests.support.polling import wait_until
from tests.support.runs import start, wait_for

__all__ = ["server", "sqlite_server"]  # fixtures that terminate leftover machines

pytestmark = [
    pytest.mark.asyncio,
    pytest.mark.skipif(any(shutil.which(b) is None for b in ("Xvfb", "openbox", "xterm",
                                                              "tesseract", "x11vnc"))
                       or not os.path.exists("/usr/bin/chromium"),
                       reason="desktop packages not installed (scripts/install-system-deps)"),
]


async def _desktop(c) -> str:  # type: ignore[no-untyped-def]
    r = await c.post("/v1/machines", json={"display_name": "d", "desktop_enabled": True})
    assert r.status_code == 200, r.text
    m = r.json()["machine"]
    assert m["kind"] == "desktop" and m["desktop_enabled"] is True
    assert r.json()["connection"]["has_vnc_password"] is True
    return m["id"]  # type: ignore[no-any-return]


async def _screen_text(c, mid: str) -> str:  # type: ignore[no-untyped-def]
    shot = (await c.get(f"/v1/machines/{mid}/screenshot")).json()
    img = Image.open(io.BytesIO(base64.b64decode(shot["image_b64"])))
    return ocr.text_of(await ocr.words(img))


async def test_type_a_command_in_xterm_and_see_it_on_the_screen(sqlite_server) -> None:  # type: ignore[no-untyped-def]
    key = await sqlite_server.key()
    async with sqlite_server.client(key) as c:
        mid = await _desktop(c)
        act = f"/v1/machines/{mid}/actions"

        async def list_windows() -> list:  # type: ignore[type-arg]
            r = await c.post(act, json={"command": "list_windows"})
            return r.json()["result"]["windows"]  # type: ignore[no-any-return]

        # the xterm opens once openbox has settled
        windows = await wait_until(list_windows, timeout=10, every=0.1, what="a window")
        assert [w["title"] for w in windows] == ["Terminal"]
        r = await c.post(act, json={"command": "switch_to_window",
                                    "parameters": {"title": "Terminal"}})
        assert r.json()["success"], r.json()
        w = windows[0]
        r = await c.post(act, json={"command": "click", "parameters": {
            "x": w["x"] + w["width"] // 2, "y": w["y"] + w["height"] // 2}})
        body = r.json()
        assert_valid("ActionResultResponse", body)
        assert body["success"] and body["result"]["settle"]["mode"] == "auto"
        assert body["duration_ms"] - body["result"]["settle"]["waited_ms"] < 50
        r = await c.post(act, json={"command": "type",
                                    "parameters": {"text": "echo answer $((6*7)) here"}})
        assert r.json()["success"]
        r = await c.post(act, json={"command": "key_press", "parameters": {"key": "Return"}})
        assert r.json()["success"]
        await wait_until(lambda: _screen_text(c, mid), done=lambda text: "answer 42 here" in text,
                         timeout=15, every=0.25, what="the command's output on the screen")

        shot = (await c.get(f"/v1/machines/{mid}/screenshot")).json()
        assert_valid("ScreenshotResponse", shot)
        assert (shot["width"], shot["height"], shot["source"]) == (1280, 800, "desktop")

        batch = await c.post(f"{act}/batch", json={"steps": [
            {"command": "maximize_window", "parameters": {"title": "Terminal"}},
            {"command": "scroll", "parameters": {"direction": "down", "amount": 2}},
            {"command": "drag", "parameters": {"start_x": 10, "start_y": 10,
                                               "end_x": 20, "end_y": 20}},
            {"command": "key_combo", "parameters": {"keys": ["ctrl", "l"]}},
            {"command": "close_window", "parameters": {"title": "no such window"}},
            {"command": "screenshot"},
        ]})
        b = batch.json()
        assert_valid("BatchActionResponse", b)
        assert (b["completed_count"], b["failed_count"], b["aborted"]) == (4, 1, True)
        assert "no window" in b["results"][-1]["error"]


async def test_offline_brain_signs_in_on_a_desktop_machine(sqlite_server) -> None:  # type: ignore[no-untyped-def]
    key = await sqlite_server.key()
    with serve_pages(sqlite_server) as base:
        async with sqlite_server.client(key) as c:
            mid = await _desktop(c)
            task = (f'open {base}/signin.html, click "Sign in", type "a@b.c" into "Email", '
                    'verify the screen shows "Welcome"')
            run = await start(c, machine_id=mid, task=task)
            final = await wait_for(c, run["id"], timeout=90)
            assert final["status"] == "succeeded", final
            assert await recorded_groundings(sqlite_server, run["id"]) == ["ocr", "ocr"]


def _pids() -> list[int]:
    return [int(n) for n in os.listdir("/proc") if n.isdigit()]


def _read(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError:  # the process ended meanwhile
        return b""


async def _x_client_connects(display: str, xauthority: str) -> bool:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "from Xlib.display import Display; Display()",
        env={**os.environ, "DISPLAY": display, "XAUTHORITY": xauthority},
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    return await asyncio.wait_for(proc.wait(), 20) == 0


async def test_connection_details_and_the_novnc_live_view(sqlite_server) -> None:  # type: ignore[no-untyped-def]
    key = await sqlite_server.key()
    async with sqlite_server.client(key) as c:
        mid = await _desktop(c)
        r = await c.get(f"/v1/machines/{mid}/connection")
        assert r.status_code == 403  # connection:read is opt-in
    opt_in = await sqlite_server.key(scopes=("connection:read", "machines:read"))
    async with sqlite_server.client(opt_in) as c:
        r = await c.get(f"/v1/machines/{mid}/connection")
        assert r.status_code == 200, r.text
        assert r.headers["cache-control"] == "no-store"
        d = r.json()
        assert_valid("ConnectionDetailsFull", d)
        assert d["vnc_port"] and len(d["vnc_password"]) == 8
        assert (d["screen_width"], d["screen_height"]) == (1280, 800)
        assert d["vnc_url"].startswith(sqlite_server.url + f"/v1/machines/{mid}/live?ticket=")
        ticket = d["vnc_url"].split("ticket=")[1]
        page = await c.get(d["vnc_url"])
        assert page.status_code == 200 and "core/rfb.js" in page.text
        asset = await c.get("/v1/live-assets/novnc/core/rfb.js")
        assert asset.status_code == 200 and "RFB" in asset.text
        s = (await c.get(f"/v1/machines/{mid}/live/session", params={"ticket": ticket})).json()
        assert s["kind"] == "vnc" and s["password"] == d["vnc_password"]
        # the WebSocket speaks RFB: x11vnc's greeting comes through server and agent
        async with connect(d["websocket_url"], subprotocols=["binary"], max_size=None) as ws:
            greeting = await asyncio.wait_for(ws.recv(), 20)
            assert greeting.startswith(b"RFB 003.")
        # x11vnc runs as the machine's user, not root, and its password file is gone
        [vnc] = [pid for pid in _pids() if f"-rfbport\0{d['vnc_port']}\0".encode()
                 in _read(f"/proc/{pid}/cmdline")]
        uid = int(next(x for x in _read(f"/proc/{vnc}/status").decode().splitlines()
                       if x.startswith("Uid:")).split()[1])
        assert uid >= 200_000
        private = Path(f"/run/deckhand/machines/{uid}")
        assert not (private / "vncpasswd").exists()
        # the X server holds to its cookie: a client without it is refused
        # (a socket of an earlier machine with the same uid may be left over)
        displays = [":" + p.name.removeprefix("X") for p in Path("/tmp/.X11-unix").iterdir()
                    if p.stat().st_uid == uid]
        mine = [x for x in displays
                if await _x_client_connects(x, str(private / "Xauthority"))]
        assert mine, displays
        assert not any([await _x_client_connects(x, "/dev/null") for x in mine])
        r = await c.get(f"/v1/machines/{mid}/live/session", params={"ticket": ticket + "x"})
        assert r.status_code == 401


async def test_a_command_of_the_terminal_opens_a_window_on_the_desktop(sqlite_server) -> None:  # type: ignore[no-untyped-def]
    # The sandboxed session holds the desktop's DISPLAY and (read-only) its cookie.
    key = await sqlite_server.key()
    async with sqlite_server.client(key) as c:
        mid = await _desktop(c)
        r = await c.post(f"/v1/machines/{mid}/terminal", json={
            "command": "echo $DISPLAY; (setsid xmessage -title Hello hi >/dev/null 2>&1 &)"})
        assert r.json()["success"] and r.json()["result"]["output"].startswith(":"), r.json()

        async def titles() -> list[str]:
            r = await c.post(f"/v1/machines/{mid}/actions", json={"command": "list_windows"})
            return [w["title"] for w in r.json()["result"]["windows"]]

        await wait_until(titles, done=lambda t: "Hello" in t, timeout=10, every=0.1,
                         what="xmessage's window")
