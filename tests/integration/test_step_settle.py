"""Act, settle, observe (issue #8) on real desktop and browser machines: the
screenshot an action returns is the settled screen (the last frame of a
300 ms animation, never one before its end), a page that never stops changing
returns at the cap with ``settled: false``, the ``settle`` parameter's
modes, and the one-round-trip screen the agent loop's client keeps for its
next observe. Times are not asserted here (bench/step.py measures them)."""

from __future__ import annotations

import base64
import io
import os
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from deckhand.core.actions import Click, MoveMouse, OpenUrl
from tests.support.contract import assert_valid
from tests.support.machine_pages import FINAL_COLOURS, serve_pages, serving

pytestmark = [
    pytest.mark.asyncio,
    pytest.mark.skipif(any(shutil.which(b) is None for b in ("Xvfb", "openbox", "xterm"))
                       or not os.path.exists("/usr/bin/chromium"),
                       reason="desktop packages not installed (scripts/install-system-deps)"),
]
KINDS = ("browser", "desktop")
INSIDE_THE_PAGE = (640, 600)  # on either screen (below the headful browser's toolbar)


@dataclass
class Live:
    server: Any
    client: httpx.AsyncClient
    pages: str
    machines: dict[str, str]

    async def command(self, kind: str, command: str, **params: object) -> dict[str, Any]:
        r = await self.client.post(f"/v1/machines/{self.machines[kind]}/actions",
                                   json={"command": command, "parameters": params})
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        assert_valid("ActionResultResponse", body)
        return body


@pytest.fixture(scope="module")
async def live(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Live]:
    """One server with one machine of each kind for the whole module."""
    from tests.conftest import make_settings

    d: Path = tmp_path_factory.mktemp("settle")
    settings = make_settings(d, f"sqlite+aiosqlite:///{d / 'deckhand.db'}",
                             settle_quiet_ms=60, settle_cap_ms=3000)
    with serve_pages(settings) as pages:
        async with serving(settings) as server:
            key = await server.key(scopes=None)
            async with server.client(key) as client:
                machines = {}
                for kind, body in (("browser", {"metadata": {"kind": "browser"}}),
                                   ("desktop", {"desktop_enabled": True})):
                    r = await client.post("/v1/machines", json={"display_name": kind, **body})
                    assert r.status_code == 200, r.text
                    machines[kind] = r.json()["machine"]["id"]
                yield Live(server, client, pages, machines)


def _pixel(jpeg: bytes, at: tuple[int, int] = INSIDE_THE_PAGE) -> tuple[int, int, int]:
    with Image.open(io.BytesIO(jpeg)) as img:
        return img.convert("RGB").getpixel(at)  # type: ignore[return-value]


def _data_uri_jpeg(uri: str) -> bytes:
    assert uri.startswith("data:image/jpeg;base64,"), uri[:40]
    return base64.b64decode(uri.split(",", 1)[1])


def _near(got: tuple[int, int, int], want: tuple[int, int, int]) -> bool:
    return all(abs(a - b) <= 24 for a, b in zip(got, want, strict=True))


async def _open(live: Live, kind: str, page: str, **params: object) -> None:
    """Open ``page`` and, on a desktop, wait until the desktop shows it."""
    body = await live.command(kind, "browser_open", url=f"{live.pages}/{page}", **params)
    assert body["success"], body
    if kind == "desktop":
        shot = await live.command(kind, "screenshot", settle=params.get("settle", "auto"))
        assert shot["success"], shot


@pytest.mark.parametrize("kind", KINDS)
async def test_a_click_returns_the_last_frame_of_a_300ms_animation(live: Live, kind: str) -> None:
    await _open(live, kind, "animated.html")
    for click in range(3):
        body = await live.command(kind, "click", x=INSIDE_THE_PAGE[0], y=INSIDE_THE_PAGE[1],
                                  screenshot=True)
        assert body["success"], body
        settle = body["result"]["settle"]
        assert settle["mode"] == "auto" and settle["settled"] is True, settle
        want = FINAL_COLOURS[click % 2]
        got = _pixel(_data_uri_jpeg(body["screenshot"]))
        assert _near(got, want), f"click {click + 1}: {got}, not the final {want} ({settle})"


@pytest.mark.parametrize("kind", KINDS)
async def test_a_page_that_never_stops_changing_returns_at_the_cap(live: Live,
                                                                   kind: str) -> None:
    await _open(live, kind, "spinner.html", settle="none")
    body = await live.command(kind, "click", x=20, y=700, settle={"cap_ms": 400},
                              screenshot=True)
    assert body["success"], body
    settle = body["result"]["settle"]
    assert settle["settled"] is False and settle["changes"] > 0, settle
    assert 400 <= settle["waited_ms"] < 5000, settle  # at the cap, never hanging
    assert _data_uri_jpeg(body["screenshot"])[:2] == b"\xff\xd8"


async def test_settle_modes_none_fixed_auto_and_a_bad_value(live: Live) -> None:
    await _open(live, "browser", "still.html")
    x, y = INSIDE_THE_PAGE
    body = await live.command("browser", "click", x=x, y=y, settle="none")
    assert body["result"]["settle"] == {"mode": "none", "settled": None, "waited_ms": 0,
                                        "changes": 0}
    body = await live.command("browser", "click", x=x, y=y, settle=150)
    settle = body["result"]["settle"]
    assert settle["mode"] == "fixed" and settle["settled"] is None and settle["waited_ms"] >= 150
    body = await live.command("browser", "click", x=x, y=y)
    assert body["result"]["settle"]["settled"] is True  # auto by default
    assert body["screenshot"] is None  # a desktop-style command: only when asked
    body = await live.command("browser", "browser_click", x=x, y=y, settle="auto")
    assert body["result"]["settle"]["settled"] is True and body["screenshot"]
    body = await live.command("browser", "browser_get_dom", html=False)
    assert "settle" not in body["result"]  # reading does not settle
    body = await live.command("browser", "click", x=x, y=y, settle="sometimes")
    assert not body["success"] and "settle must be" in body["error"]


@pytest.mark.parametrize("kind", KINDS)
async def test_the_settled_screen_comes_with_the_action_and_serves_the_next_observe(
        live: Live, kind: str) -> None:
    machine = await live.server.services.machines.connect(live.machines[kind])
    opened = await machine.act(OpenUrl(url=f"{live.pages}/animated.html"))
    assert opened.ok and opened.data["settle"]["mode"] == "auto", opened

    result, seen = await machine.act_and_observe(Click(x=INSIDE_THE_PAGE[0],
                                                       y=INSIDE_THE_PAGE[1]))
    assert result.ok and result.data["settle"]["settled"] is True, result
    assert seen is not None and _near(_pixel(seen.screenshot_jpeg), FINAL_COLOURS[0])
    assert await machine.observe() is seen  # no second round trip
    again = await machine.observe()  # kept once: this one is a new look
    assert again is not None and again is not seen
    assert _near(_pixel(again.screenshot_jpeg), FINAL_COLOURS[0])

    result, seen = await machine.act_and_observe(Click(x=INSIDE_THE_PAGE[0],
                                                       y=INSIDE_THE_PAGE[1]))
    assert seen is not None and _near(_pixel(seen.screenshot_jpeg), FINAL_COLOURS[1])
    await machine.act(MoveMouse(x=5, y=5))  # anything done in between: the kept one is stale
    fresh = await machine.observe()
    assert fresh is not None and fresh is not seen
