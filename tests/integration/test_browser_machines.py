"""Browser machines through the HTTP API: the agent driving Debian's
Chromium (headless), a page served on loopback, labels grounded on the DOM,
the offline brain's screen instructions, the browser sub-API and the live
screencast."""

from __future__ import annotations

import asyncio
import base64
import json
import os

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import WebSocketException

from tests.support.contract import assert_valid
from tests.support.machine_pages import recorded_groundings, serve_pages, server, sqlite_server
from tests.support.polling import wait_until
from tests.support.runs import start, wait_for

__all__ = ["server", "sqlite_server"]  # fixtures that terminate leftover machines

pytestmark = [
    pytest.mark.asyncio,
    pytest.mark.skipif(not os.path.exists("/usr/bin/chromium"), reason="chromium not installed"),
]


async def _browser_machine(c) -> str:  # type: ignore[no-untyped-def]
    r = await c.post("/v1/machines", json={"display_name": "b", "metadata": {"kind": "browser"}})
    assert r.status_code == 200, r.text
    m = r.json()["machine"]
    assert m["kind"] == "browser" and m["desktop_enabled"] is False
    return m["id"]  # type: ignore[no-any-return]


async def test_open_click_by_label_and_see_the_page_change(sqlite_server) -> None:  # type: ignore[no-untyped-def]
    key = await sqlite_server.key(scopes=None)
    with serve_pages(sqlite_server) as base:
        async with sqlite_server.client(key) as c:
            mid = await _browser_machine(c)
            act = f"/v1/machines/{mid}/actions"
            r = await c.post(act, json={"command": "browser_open",
                                        "parameters": {"url": base + "/signin.html"}})
            body = r.json()
            assert_valid("ActionResultResponse", body)
            assert body["success"], body
            assert body["screenshot"].startswith("data:image/jpeg;base64,")

            r = await c.post(f"/v1/machines/{mid}/browser/clickables", json={})
            items = r.json()["result"]["clickables"]
            assert any(i["text"] == "Sign in" and i["tag"] == "button" for i in items)

            r = await c.post(f"/v1/machines/{mid}/browser/click",
                             json={"parameters": {"text": "Sign in"}})
            assert r.json()["success"], r.json()
            r = await c.post(f"/v1/machines/{mid}/browser/dom", json={"parameters": {}})
            assert "Email" in r.json()["result"]["text"]

            r = await c.post(f"/v1/machines/{mid}/browser/type",
                             json={"parameters": {"selector": "#email", "text": "a@b.c"}})
            assert r.json()["success"]
            r = await c.get(f"/v1/machines/{mid}/screenshot")
            shot = r.json()
            assert_valid("ScreenshotResponse", shot)
            assert (shot["width"], shot["height"], shot["source"]) == (1280, 800, "browser")
            assert base64.b64decode(shot["image_b64"])[:2] == b"\xff\xd8"
            r = await c.post(f"/v1/machines/{mid}/browser/state", json={})
            assert r.json()["result"]["url"].endswith("/signin.html")
            r = await c.post(f"/v1/machines/{mid}/browser/dom", json={"parameters": {}})
            assert "Welcome a@b.c" in r.json()["result"]["text"]


async def test_browser_sub_api_tabs_wait_scroll_and_refusals(sqlite_server) -> None:  # type: ignore[no-untyped-def]
    key = await sqlite_server.key(scopes=None)
    with serve_pages(sqlite_server) as base:
        async with sqlite_server.client(key) as c:
            mid = await _browser_machine(c)

            async def op(name: str, **params: object) -> dict:  # type: ignore[type-arg]
                r = await c.post(f"/v1/machines/{mid}/browser/{name}", json={"parameters": params})
                assert r.status_code == 200, r.text
                assert_valid("ActionResultResponse", r.json())
                return r.json()  # type: ignore[no-any-return]

            assert (await op("navigate", url=base + "/signin.html"))["success"]
            assert (await op("open-tab", url=base + "/long.html"))["success"]
            tabs = (await op("list-tabs"))["result"]["tabs"]
            assert len(tabs) == 2 and tabs[1]["active"]
            assert (await op("scroll", direction="down", amount=5))["result"]["scroll_y"] > 0
            assert (await op("wait", selector="#bottom"))["success"]
            assert (await op("switch-tab", index=0))["result"]["active"] == 0
            assert (await op("close-tab", index=1))["result"]["tabs"] == 1
            info = (await op("info"))["result"]
            assert info["headless"] is True and info["executable"] == "/usr/bin/chromium"
            shot = (await op("screenshot"))["result"]
            assert shot["width"] == 1280 and shot["mime_type"] == "image/jpeg"
            failed = await op("navigate", url="file:///etc/passwd")
            assert not failed["success"] and "not allowed" in failed["error"]
            failed = await op("click", text="No such button")
            assert not failed["success"] and "No such button" in failed["error"]
            # browser_execute needs the opt-in browser:execute scope
            r = await c.post(f"/v1/machines/{mid}/actions", json={
                "command": "browser_execute", "parameters": {"script": "1 + 1"}})
            assert r.status_code == 403
            assert (await op("close"))["result"] == {"closed": True}

    power = await sqlite_server.key(scopes=("actions:exec", "browser:execute", "machines:read"))
    async with sqlite_server.client(power) as c:
        r = await c.post(f"/v1/machines/{mid}/actions", json={
            "command": "browser_execute", "parameters": {"script": "1 + 1"}})
        assert r.json()["success"] and r.json()["result"] == {"value": 2}


async def test_offline_brain_signs_in_on_a_browser_machine(sqlite_server) -> None:  # type: ignore[no-untyped-def]
    key = await sqlite_server.key()
    with serve_pages(sqlite_server) as base:
        async with sqlite_server.client(key) as c:
            mid = await _browser_machine(c)
            task = (f'open {base}/signin.html, click "Sign in", type "a@b.c" into "Email", '
                    'verify the screen shows "Welcome"')
            run = await start(c, machine_id=mid, task=task)
            final = await wait_for(c, run["id"], timeout=60)
            assert final["status"] == "succeeded", final
            groundings = await recorded_groundings(sqlite_server, run["id"])
            assert groundings == ["dom", "dom"]  # "Sign in", then "Email"


async def test_live_screencast_streams_frames_and_takes_input(sqlite_server) -> None:  # type: ignore[no-untyped-def]
    key = await sqlite_server.key()
    with serve_pages(sqlite_server) as base:
        async with sqlite_server.client(key) as c:
            mid = await _browser_machine(c)
            await c.post(f"/v1/machines/{mid}/browser/open",
                         json={"parameters": {"url": base + "/signin.html"}})
            page = await c.get(f"/v1/machines/{mid}/live")
            assert page.status_code == 200 and "live view" in page.text
            r = await c.post(f"/v1/machines/{mid}/live")
            assert r.status_code == 200
            ws_url = r.json()["websocket_url"]
            async with connect(ws_url, max_size=None) as ws:
                frame = json.loads(await asyncio.wait_for(ws.recv(), 20))
                assert frame["type"] == "frame" and frame["width"] > 0
                # a human clicks the button on the streamed page
                items = (await c.post(f"/v1/machines/{mid}/browser/clickables",
                                      json={})).json()["result"]["clickables"]
                button = next(i for i in items if i["text"] == "Sign in")
                await ws.send(json.dumps({"type": "click", "x": button["x"], "y": button["y"]}))

                async def page_text() -> str:
                    dom = (await c.post(f"/v1/machines/{mid}/browser/dom",
                                        json={"parameters": {"html": False}})).json()
                    return dom["result"]["text"]  # type: ignore[no-any-return]

                await wait_until(page_text, done=lambda text: "Email" in text, timeout=10,
                                 every=0.1, what="the page after the click to show Email")
            bad = ws_url.replace("ticket=", "ticket=x")
            with pytest.raises(WebSocketException):
                async with connect(bad) as ws:
                    await ws.recv()
