"""The CDP client (machine_agent/cdp.py) against a real Chromium on
``--remote-debugging-pipe``: NUL-framed messages (a multi-MiB answer read
in pieces, many commands in flight answered by id), an error answer, events
of the browser and of a flattened target session, and the connection
ending when the browser goes away."""

from __future__ import annotations

import asyncio
import base64
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from deckhand.machine_agent import chromium
from deckhand.machine_agent.browser import chromium_available
from deckhand.machine_agent.cdp import CDPError
from deckhand.machine_agent.chromium import ChromiumProcess
from deckhand.machine_agent.desktop import jpeg_size

pytestmark = [
    pytest.mark.asyncio,
    pytest.mark.skipif(not chromium_available(), reason="chromium not installed"),
]


@pytest.fixture
async def proc(tmp_path: Path) -> AsyncIterator[ChromiumProcess]:
    argv = [chromium.binary(), "--headless", "--remote-debugging-pipe", "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}", "--window-size=800,600"]
    if os.geteuid() == 0:
        argv.append("--no-sandbox")  # root without a user of its own: the test's own browser
    p = await ChromiumProcess.spawn([*argv, "about:blank"], chromium.environment(None),
                                    tmp_path / "chromium.log")
    try:
        yield p
    finally:
        await p.stop()


async def _page_session(p: ChromiumProcess):  # type: ignore[no-untyped-def]
    b = p.conn.browser
    created = await b.send("Target.createTarget", {"url": "about:blank"})
    attached = await b.send("Target.attachToTarget", {"targetId": created["targetId"],
                                                      "flatten": True})
    return created["targetId"], p.conn.session(attached["sessionId"])


async def test_commands_are_answered_by_id_and_errors_raise(proc: ChromiumProcess) -> None:
    version = await proc.conn.browser.send("Browser.getVersion")
    assert version["product"].startswith(("Chrome/", "HeadlessChrome/"))
    _, page = await _page_session(proc)
    # many commands in flight at once, each answer matched to its own
    values = await asyncio.gather(*(page.send("Runtime.evaluate", {
        "expression": f"{i} * 3", "returnByValue": True}) for i in range(60)))
    assert [v["result"]["value"] for v in values] == [i * 3 for i in range(60)]
    with pytest.raises(CDPError) as err:
        await page.send("Nope.notAMethod")
    assert err.value.cdp_code == -32601 and "Nope.notAMethod" in str(err.value)
    with pytest.raises(CDPError) as err:
        await page.send("Page.navigate", {"url": 42})
    assert err.value.cdp_code is not None and "Page.navigate" in str(err.value)
    # the connection still serves after errors
    assert (await page.send("Runtime.evaluate", {"expression": "'ok'", "returnByValue": True})
            )["result"]["value"] == "ok"


async def test_a_large_answer_arrives_whole(proc: ChromiumProcess) -> None:
    _, page = await _page_session(proc)
    # 6 MiB in one message (read from the pipe in many pieces), then a small one
    big = await page.send("Runtime.evaluate", {
        "expression": "'0123456789abcdef'.repeat(393216) + '|end'", "returnByValue": True})
    value = big["result"]["value"]
    assert len(value) == 6 * 1024 * 1024 + 4 and value.endswith("cdef|end")
    await page.send("Emulation.setDeviceMetricsOverride", {
        "width": 1000, "height": 700, "deviceScaleFactor": 1, "mobile": False})
    jpeg = base64.b64decode((await page.send("Page.captureScreenshot", {
        "format": "jpeg", "quality": 50}))["data"])
    assert jpeg[:2] == b"\xff\xd8" and jpeg_size(jpeg) == (1000, 700)


async def test_events_reach_the_browser_and_the_session(proc: ChromiumProcess) -> None:
    b = proc.conn.browser
    seen: list[dict] = []  # type: ignore[type-arg]
    b.on("Target.targetCreated", seen.append)
    await b.send("Target.setDiscoverTargets", {"discover": True})
    assert any(e["targetInfo"]["type"] == "page" for e in seen)  # the existing tab, at once
    tid, page = await _page_session(proc)
    assert any(e["targetInfo"]["targetId"] == tid for e in seen)
    loaded = asyncio.get_running_loop().create_future()
    page.on("Page.loadEventFired", lambda p: loaded.done() or loaded.set_result(p))
    await page.send("Page.enable")
    await page.send("Page.navigate", {"url": "data:text/html,<h1>hi</h1>"})
    assert "timestamp" in await asyncio.wait_for(loaded, 10)


async def test_a_browser_that_dies_fails_what_is_pending(proc: ChromiumProcess) -> None:
    _, page = await _page_session(proc)
    pending = asyncio.ensure_future(page.send("Runtime.evaluate", {
        "expression": "new Promise(() => {})", "awaitPromise": True}))
    await asyncio.sleep(0)  # written before the browser goes
    os.kill(proc.pid, signal.SIGKILL)
    with pytest.raises(CDPError, match="closed its end of the pipe"):
        await asyncio.wait_for(pending, 10)
    assert not proc.conn.alive
    with pytest.raises(CDPError, match="not running"):
        await page.send("Runtime.evaluate", {"expression": "1"})
