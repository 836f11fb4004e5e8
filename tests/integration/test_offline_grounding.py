"""The offline brain grounds visible text on a posted screenshot: /v1/ground,
/v1/predict and session predict with no model configured, through the real
server on loopback, on screenshots rendered with PIL and real fonts, read by
real tesseract. Every point is checked against the box the text was drawn in."""

from __future__ import annotations

import base64
import os

import pytest

from tests.conftest import LiveServer
from tests.support.contract import assert_error, assert_valid
from tests.support.rendered_screens import (
    CONDENSED_BOLD,
    MONO,
    SANS,
    SERIF_BOLD,
    Button,
    Screen,
    inside,
    toolbar,
)

pytestmark = pytest.mark.asyncio
CHROMIUM = "/usr/bin/chromium"


async def _ground(c, screen: Screen, element: str, **extra: int):  # type: ignore[no-untyped-def]
    return await c.post("/v1/ground", json={"screenshot": screen.b64(), "element": element,
                                            **extra})


async def test_ground_finds_labels_in_fonts_sizes_and_both_polarities(
        sqlite_server: LiveServer) -> None:
    screen = toolbar()
    async with sqlite_server.client(await sqlite_server.key()) as c:
        for element, label in [
            ("the Archive button", "Archive"),          # sans 16, dark on light grey
            ("File menu", "File"),                      # sans 14
            ("the Inbox tab", "Inbox"),                 # condensed bold 22
            ('the "Delete" button', "Delete"),          # serif bold 20, white on red
            ("Save changes", "Save changes"),           # mono 26, light on navy, two words
            ("the move to folder link", "Move to folder"),  # three words, any case
            ("CANCEL", "Cancel"),
        ]:
            r = await _ground(c, screen, element)
            assert r.status_code == 200, (element, r.text)
            body = r.json()
            assert_valid("GroundResponse", body)
            assert (body["screen_width"], body["screen_height"]) == (1280, 800)
            assert inside((body["x"], body["y"]), screen.box_of(label)), (element, body)


async def test_ground_reads_a_dark_screen_and_maps_to_the_requested_screen_space(
        sqlite_server: LiveServer) -> None:
    dark = Screen(page="#1b1b1f", buttons=[
        Button("Settings", (200, 300), SANS, 28, fg="#eeeeee", bg="#2b2b30"),
        Button("Sign out", (600, 500), SERIF_BOLD, 15, fg="#dddddd", bg="#1b1b1f"),
    ])
    async with sqlite_server.client(await sqlite_server.key()) as c:
        body = (await _ground(c, dark, "the Settings icon")).json()
        assert inside((body["x"], body["y"]), dark.box_of("Settings")), body
        r = await _ground(c, dark, "Sign out", screen_width=2560, screen_height=1600)
        assert r.status_code == 200, r.text
        body = r.json()
        assert (body["screen_width"], body["screen_height"]) == (2560, 1600)
        left, top, right, bottom = dark.box_of("Sign out")
        assert inside((body["x"], body["y"]), (2 * left, 2 * top, 2 * right, 2 * bottom), 4)


async def test_a_label_shown_twice_is_the_topmost_then_leftmost(
        sqlite_server: LiveServer) -> None:
    screen = Screen(buttons=[
        Button("Reply", (900, 520), SANS, 18), Button("Reply", (300, 520), MONO, 18),
        Button("Reply", (640, 260), CONDENSED_BOLD, 20),
        Button("Open", (700, 100), SANS, 18), Button("Open", (200, 100), SANS, 18),
    ])
    async with sqlite_server.client(await sqlite_server.key()) as c:
        body = (await _ground(c, screen, "the Reply button")).json()
        assert inside((body["x"], body["y"]), screen.box_of("Reply", 2)), body  # topmost
        body = (await _ground(c, screen, "Open")).json()
        assert inside((body["x"], body["y"]), screen.box_of("Open", 1)), body  # leftmost


async def test_what_is_not_text_is_a_clear_422(sqlite_server: LiveServer) -> None:
    screen = toolbar()
    async with sqlite_server.client(await sqlite_server.key()) as c:
        for element in ("the red circle", "the Forward button"):
            error = assert_error(await _ground(c, screen, element), 422,
                                 "OFFLINE_BRAIN_UNSUPPORTED")
            assert error["message"].startswith(
                f"The offline brain grounds visible text labels; {element!r} is not text on "
                "this screenshot"), error
            assert "Archive" in error["message"]  # what it did read
        assert_error(await c.post("/v1/ground", json={"screenshot": "A" * 200,
                                                      "element": "Archive"}),
                     422, "INVALID_SCREENSHOT")


async def test_predict_clicks_the_labels_centre(sqlite_server: LiveServer) -> None:
    screen = toolbar()
    shot = screen.b64()
    async with sqlite_server.client(await sqlite_server.key()) as c:
        for instruction, label in [('click "Delete"', "Delete"),
                                   ("Click on 'Cancel'", "Cancel"),
                                   ("click `save changes`", "Save changes")]:
            r = await c.post("/v1/predict", json={"screenshot": shot,
                                                  "instruction": instruction})
            assert r.status_code == 200, (instruction, r.text)
            body = r.json()
            assert_valid("PredictResponse", body)
            assert body["brain"] == "offline" and body["status"] == "continue"
            [click] = body["actions"]
            assert click["action_type"] == "click", body
            point = (click["params"]["x"], click["params"]["y"])
            assert inside(point, screen.box_of(label)), (instruction, body)
            assert body["raw_code"] == [f"pyautogui.click({point[0]}, {point[1]})"]
        r = await c.post("/v1/predict", json={"screenshot": shot,
                                              "instruction": 'type "hello" into "Inbox"'})
        assert r.status_code == 200, r.text
        click, typed = r.json()["actions"]
        assert inside((click["params"]["x"], click["params"]["y"]), screen.box_of("Inbox"))
        assert typed == {"action_type": "type_text", "params": {"text": "hello"},
                         "raw_code": "pyautogui.write('hello')"}
        error = assert_error(await c.post("/v1/predict", json={
            "screenshot": shot, "instruction": 'click "Forward"'}), 422,
            "OFFLINE_BRAIN_UNSUPPORTED")
        assert "'Forward' is not text on this screenshot" in error["message"]


async def test_session_predict_grounds_on_the_posted_screenshot(
        sqlite_server: LiveServer) -> None:
    screen = toolbar()
    async with sqlite_server.client(await sqlite_server.key()) as c:
        r = await c.post("/v1/sessions", json={"cua_version": "v3", "screen_width": 2560,
                                               "screen_height": 1600,
                                               "max_trajectory_length": 10})
        assert r.status_code == 200, r.text
        sid = r.json()["session_id"]
        r = await c.post(f"/v1/sessions/{sid}/predict",
                         json={"screenshot": screen.b64(), "instruction": 'click "Archive"'})
        assert r.status_code == 200, r.text
        body = r.json()
        assert_valid("SessionPredictResponse", body)
        [click] = body["actions"]
        point = (click["params"]["x"], click["params"]["y"])
        left, top, right, bottom = screen.box_of("Archive")  # in the session's screen space
        assert inside(point, (2 * left, 2 * top, 2 * right, 2 * bottom), 4), body
        # a new instruction starts at its first clause; the same one again is done
        plan = 'click "Cancel" then click "Delete"'
        for instruction, label in [('click "Delete"', "Delete"), (plan, "Cancel"),
                                   (plan, "Delete"), (plan, None), (plan, "Cancel")]:
            r = await c.post(f"/v1/sessions/{sid}/predict",
                             json={"screenshot": screen.b64(), "instruction": instruction})
            assert r.status_code == 200, r.text
            body = r.json()
            if label is None:
                assert body["status"] == "done", body
                continue
            [click] = body["actions"]
            left, top, right, bottom = screen.box_of(label)
            assert inside((click["params"]["x"], click["params"]["y"]),
                          (2 * left, 2 * top, 2 * right, 2 * bottom), 4), (instruction, body)


PAGE = """<!doctype html><html><body style="margin:0;font-family:sans-serif;background:#f6f7f9">
<nav style="background:#222;padding:12px 20px">
  <span id="home" style="color:#fff;font-size:16px">Home</span>
  <span id="reports" style="color:#bbb;font-size:16px;margin-left:40px">Reports</span></nav>
<main style="padding:40px">
  <h2 style="font-size:22px">Quarterly invoices</h2>
  <p style="font-size:15px">Select an invoice, then export it or send a reminder.</p>
  <button style="font-size:14px;padding:8px 16px"><span id="export">Export CSV</span></button>
  <button style="font-size:18px;padding:10px 22px;background:#0b57d0;color:#fff;border:0;
    border-radius:6px;margin-left:24px"><span id="remind">Send reminder</span></button>
  <a href="#" style="font-size:15px;margin-left:24px"><span id="help">Help</span></a>
</main></body></html>"""


@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="chromium not installed")
async def test_ground_on_a_real_chromium_screenshot(sqlite_server: LiveServer) -> None:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 800})
            await page.set_content(PAGE)
            shot = await page.screenshot(type="png")
            boxes = {}
            for name in ("home", "reports", "export", "remind", "help"):
                b = await page.locator(f"#{name}").bounding_box()
                assert b is not None
                boxes[name] = (round(b["x"]), round(b["y"]), round(b["x"] + b["width"]),
                               round(b["y"] + b["height"]))
        finally:
            await browser.close()
    async with sqlite_server.client(await sqlite_server.key()) as c:
        for element, name in [("the Home tab", "home"), ("Reports", "reports"),
                              ("the Export CSV button", "export"),
                              ('the "Send reminder" button', "remind"),  # white on blue
                              ("the help link", "help")]:  # read only in the bands
            r = await c.post("/v1/ground", json={"screenshot": base64.b64encode(shot).decode(),
                                                 "element": element})
            assert r.status_code == 200, (element, r.text)
            body = r.json()
            assert inside((body["x"], body["y"]), boxes[name]), (element, body, boxes[name])
