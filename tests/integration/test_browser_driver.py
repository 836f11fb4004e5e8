"""The browser driver over CDP (machine_agent/browser.py, tab.py, keys.py)
on a real headless Chromium, without a box: keys with modifiers, click
counts and modifier clicks, the wheel, waits, a dialog that would block the
page, a popup the page opens, navigation errors."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from deckhand.machine_agent.browser import Browser, BrowserError, chromium_available
from deckhand.machine_agent.errors import AgentError
from deckhand.machine_agent.keys import describe, key_name, split_combo
from tests.support.polling import wait_until

pytestmark = pytest.mark.skipif(not chromium_available(), reason="chromium not installed")

PAGE = """data:text/html,<title>driver</title><body style="height:5000px">
<input id=q style="font-size:20px"><button id=b style="font-size:20px">B</button>
<script>
window.log = [];
const b = document.getElementById('b');
b.addEventListener('click', e => log.push(['click', e.detail, e.shiftKey, e.ctrlKey]));
b.addEventListener('dblclick', () => log.push(['dblclick']));
document.addEventListener('keydown', e => log.push(['key', e.key, e.code, e.ctrlKey]));
setTimeout(() => document.body.insertAdjacentHTML('beforeend', '<p id=late>Late text</p>'), 300);
</script></body>"""


def test_key_names_and_events() -> None:
    assert key_name("ctrl") == "Control" and key_name("f5") == "F5" and key_name("a") == "a"
    assert (describe("a").code, describe("a").key_code, describe("a").text) == ("KeyA", 65, "a")
    assert describe("A").shifted and describe("!").code == "Digit1"
    assert (describe("Enter").key_code, describe("Enter").text) == (13, "\r")
    assert describe("F5").key_code == 116 and describe("Control").modifier
    assert split_combo("ctrl+shift+t") == ["ctrl", "shift", "t"] and split_combo("+") == ["plus"]
    with pytest.raises(ValueError):
        describe("NoSuchKey")


@pytest.fixture
async def browser(tmp_path: Path) -> AsyncIterator[Browser]:
    b = Browser(tmp_path / "profile", tmp_path / "Downloads")
    try:
        yield b
    finally:
        await b.close()


async def test_input_waits_dialogs_and_popups(browser: Browser) -> None:
    opened = await browser.goto(PAGE)
    assert opened["title"] == "driver" and (await browser.state())["viewport"] == {
        "width": 1280, "height": 800}
    await browser.type({"selector": "#q", "text": "hello world"})
    await browser.press(["ctrl", "a"])
    await browser.press(["Backspace"])
    await browser.type({"selector": "#q", "text": "x", "clear": False})
    assert await browser.execute("document.getElementById('q').value") == "x"
    keys = await browser.execute("log.filter(e => e[0] === 'key').map(e => e.slice(1))")
    assert ["a", "KeyA", True] in keys and ["Backspace", "Backspace", False] in keys

    at = await browser.execute("(() => { const r = document.getElementById('b')"
                               ".getBoundingClientRect(); return [r.x + 5, r.y + 5]; })()")
    await browser.click_at(int(at[0]), int(at[1]), count=2)
    await browser.click_at(int(at[0]), int(at[1]), modifiers=["shift"])
    clicks = await browser.execute("log.filter(e => e[0] !== 'key')")
    assert clicks == [["click", 1, False, False], ["click", 2, False, False], ["dblclick"],
                      ["click", 1, True, False]]

    assert (await browser.scroll("down", 5))["scroll_y"] == 500
    assert await browser.wait({"text": "late text", "timeout_ms": 5000}) == {"found": "late text"}
    assert await browser.wait({"selector": "#late"}) == {"found": "#late"}
    with pytest.raises(AgentError, match="no visible element matches '#never'"):
        await browser.wait({"selector": "#never", "timeout_ms": 200})

    # an alert would block every script: it is dismissed
    assert await browser.execute("alert('hi'); confirm('sure?')") is False
    # a popup the page opens becomes a tab
    await browser.execute("window.open('about:blank#popup')")
    tabs = await wait_until(browser.tabs, timeout=10, what="the popup's tab with its URL",
                            done=lambda t: len(t) == 2 and t[1]["url"].startswith(
                                "about:blank#popup"))
    assert not tabs[1]["active"]  # a popup does not take the agent's tab
    assert (await browser.close_tab(1))["tabs"] == 1

    with pytest.raises(BrowserError, match="ERR_UNSAFE_PORT|ERR_CONNECTION_REFUSED"):
        await browser.goto("http://127.0.0.1:9/")
    with pytest.raises(AgentError, match="the script failed: Error: boom"):
        await browser.execute("throw new Error('boom')")
    assert os.path.isdir(browser.downloads_dir)
