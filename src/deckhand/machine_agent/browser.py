"""The machine's browser: Debian's Chromium (``/usr/bin/chromium``) driven
over the DevTools protocol on a pipe (:mod:`.cdp`, :mod:`.chromium`; no
driver process in between), headless on a machine without a desktop and
headful inside its desktop otherwise.

One persistent profile per machine (kept outside the workspace, included in
snapshots), tabs (:mod:`.tab`), page text and clickable elements, label
grounding on the page's DOM, screenshots through CDP as JPEG, downloads
into the workspace (:mod:`.downloads`). Only http(s), about: and data: URLs
are opened: file:// would let a page read the host's files.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import shutil
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from deckhand.machine_agent import chromium
from deckhand.machine_agent.box import MachineBox
from deckhand.machine_agent.browser_js import CLICKABLES_JS, FIND_LABEL_JS, SCROLLED_JS
from deckhand.machine_agent.cdp import CDPError
from deckhand.machine_agent.chromium import CHROMIUM, ChromiumProcess
from deckhand.machine_agent.desktop import Frame, jpeg_size
from deckhand.machine_agent.downloads import Downloads
from deckhand.machine_agent.errors import AgentError
from deckhand.machine_agent.keys import key_name
from deckhand.machine_agent.pagewatch import NetworkActivity
from deckhand.machine_agent.tab import Tab

logger = logging.getLogger(__name__)

ALLOWED_SCHEMES = {"http", "https", "about", "data"}
JPEG_QUALITY = 75
TEXT_LIMIT = 100_000
HTML_LIMIT = 500_000
START_TIMEOUT_S = 30.0
BODY_TEXT_JS = "document.body ? document.body.innerText : ''"


class BrowserError(AgentError):
    pass


def check_url(url: str) -> str:
    url = url.strip()
    if not url:
        raise BrowserError("a url is required")
    explicit = re.match(r"([A-Za-z][A-Za-z0-9+.-]*):(?!\d)", url)
    if "://" not in url and explicit is None:
        url = "http://" + url  # "example.com/x", "localhost:8000"
    scheme = urlparse(url).scheme.lower()
    if scheme not in ALLOWED_SCHEMES:
        raise BrowserError(f"{scheme}: URLs are not allowed (use http, https, about: or data:)")
    return url


DOWNLOAD_WAIT_S = 10.0  # how long an action's answer waits for the downloads it started


class Browser:
    """Chromium with a persistent profile. Created stopped; ``start`` launches it
    (under a second cold), every operation starts it when needed."""

    def __init__(self, profile_dir: Path, downloads_dir: Path, *, network: bool = True,
                 display_env: dict[str, str] | None = None, width: int = 1280,
                 height: int = 800, box: MachineBox | None = None,
                 desktop_ready: Callable[[], Awaitable[None]] | None = None) -> None:
        """``desktop_ready``: awaited before a headful browser starts (the
        desktop's own first windows show first, so the browser comes above)."""
        self.box = box
        self.desktop_ready = desktop_ready
        self.profile_dir = profile_dir
        self.downloads_dir = downloads_dir
        self.network = network
        self.display_env = display_env
        self.width = width
        self.height = height
        self._proc: ChromiumProcess | None = None
        self._tabs: list[Tab] = []
        self._attaching: dict[str, asyncio.Future[Tab]] = {}
        self._infos: dict[str, dict[str, Any]] = {}  # the latest of each target's info
        self._current = 0
        self._launched: tuple[ChromiumProcess, float] | None = None
        self._lock = asyncio.Lock()
        self.version = ""
        self.requests = NetworkActivity()  # requests in flight, for the settle
        self._downloads = Downloads(downloads_dir)

    @property
    def headless(self) -> bool:
        return self.display_env is None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.conn.alive

    # ------------------------------------------------------------------ lifecycle

    def args(self, own_user: bool) -> list[str]:
        """Chromium's command line after its binary."""
        return chromium.command_line(self.profile_dir, own_user=own_user, network=self.network,
                                     headless=self.headless, width=self.width,
                                     height=self.height)

    async def _spawn(self) -> tuple[ChromiumProcess, float]:
        if not os.path.exists(CHROMIUM):
            raise BrowserError(f"{CHROMIUM} is not installed (scripts/install-system-deps)")
        self.profile_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.downloads_dir.mkdir(parents=True, exist_ok=True)
        prefix, own_user = [], False
        if self.box is not None:
            self.box.own(self.downloads_dir)
            prefix, own_user = self.box.chromium(self.profile_dir, self.display_env)
        argv = [*prefix, chromium.binary(), *self.args(own_user)]
        began = time.monotonic()
        proc = await ChromiumProcess.spawn(argv, chromium.environment(self.display_env),
                                           self.profile_dir.parent / "chromium.log")
        return proc, began

    async def launch(self) -> None:
        """Start Chromium's process without waiting for it (``start`` then
        connects): the agent imports its HTTP side meanwhile."""
        async with self._lock:
            if self._proc is None and self._launched is None:
                try:
                    self._launched = await self._spawn()
                except AgentError as exc:  # start says it again
                    logger.warning("launching the browser: %s", exc)

    async def start(self) -> None:
        async with self._lock:
            if self.running:
                return
            if self._proc is not None:  # it died: start again
                await self._stop()
            if self.desktop_ready is not None and not self.headless:
                await self.desktop_ready()
            launched, self._launched = self._launched, None
            proc, began = launched if launched is not None else await self._spawn()
            self._proc = proc
            try:
                await asyncio.wait_for(self._connect(proc), START_TIMEOUT_S)
                logger.info("Chromium %s ready in %.0f ms", self.version,
                            (time.monotonic() - began) * 1000)
            except (AgentError, TimeoutError) as exc:
                await self._stop()
                tail = proc.log_tail()
                raise BrowserError(f"Chromium did not start: {exc or 'timed out'}"
                                   + (f"\n{tail}" if tail else "")) from None

    async def _connect(self, proc: ChromiumProcess) -> None:
        b = proc.conn.browser
        first: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def attached(task: asyncio.Task[Tab]) -> None:
            if task.cancelled():
                return
            exc = task.exception()
            if exc is not None:
                logger.info("a new tab could not be attached: %s", exc)
            if not first.done():
                first.set_result(None) if exc is None else first.set_exception(exc)

        def created(p: dict[str, Any]) -> None:
            info = p["targetInfo"]
            self._infos[info["targetId"]] = info
            if info.get("type") == "page" and not info.get("attached"):
                asyncio.ensure_future(self._attach(info)).add_done_callback(attached)

        b.on("Target.targetCreated", created)
        b.on("Target.targetInfoChanged", self._changed)
        b.on("Target.targetDestroyed", lambda p: self._gone(p["targetId"]))
        self._downloads.listen(b)
        version, *_ = await asyncio.gather(
            b.send("Browser.getVersion"),
            b.send("Browser.setDownloadBehavior", self._downloads.behavior()),
            b.send("Target.setDiscoverTargets", {"discover": True,
                                                 "filter": [{"type": "page"}]}))
        self.version = str(version.get("product", "")).split("/")[-1]
        await first  # the about:blank of the command line
        self._current = 0

    async def _attach(self, info: dict[str, Any]) -> Tab:
        tid = info["targetId"]
        pending = self._attaching.get(tid)
        if pending is not None:
            return await pending
        future: asyncio.Future[Tab] = asyncio.get_running_loop().create_future()
        self._attaching[tid] = future
        assert self._proc is not None
        conn = self._proc.conn
        try:
            r = await conn.browser.send("Target.attachToTarget",
                                        {"targetId": tid, "flatten": True})
            tab = Tab(tid, conn.session(r["sessionId"]), self.requests,
                      self._downloads.note_response)
            # its info may have changed while attaching (a popup's URL)
            latest = self._infos.get(tid, info)
            tab.url, tab.title = latest.get("url", ""), latest.get("title", "")
            self._tabs.append(tab)
            await tab.setup()
            if self.headless:
                await tab.session.send("Emulation.setDeviceMetricsOverride", {
                    "width": self.width, "height": self.height, "deviceScaleFactor": 1,
                    "mobile": False})
        except BaseException as exc:
            self._attaching.pop(tid, None)
            future.set_exception(exc)
            future.exception()  # retrieved: whoever waits gets it, nobody else must
            raise
        future.set_result(tab)
        return tab

    def _changed(self, p: dict[str, Any]) -> None:
        info = p["targetInfo"]
        if info.get("targetId") in self._infos or info.get("type") == "page":
            self._infos[info["targetId"]] = info
        for tab in self._tabs:
            if tab.target_id == info.get("targetId"):
                tab.url, tab.title = info.get("url", tab.url), info.get("title", tab.title)

    def _gone(self, target_id: str) -> None:
        self._attaching.pop(target_id, None)
        self._infos.pop(target_id, None)
        for tab in [t for t in self._tabs if t.target_id == target_id]:
            tab.closed = True
            self._tabs.remove(tab)
            self.requests.forget(tab.session.id)
        self._current = max(0, min(self._current, len(self._tabs) - 1))

    async def close(self) -> None:
        async with self._lock:
            await self._stop()

    async def _stop(self) -> None:
        if self._launched is not None:  # launched, never connected
            await self._launched[0].stop(grace_s=1.0)
            self._launched = None
        proc, self._proc = self._proc, None
        self._tabs.clear()
        self._attaching.clear()
        self._infos.clear()
        if proc is not None:
            try:
                await proc.stop()
            except OSError as exc:
                logger.warning("stopping the browser: %s", exc)

    async def downloads_done(self, timeout: float = DOWNLOAD_WAIT_S) -> None:
        """Wait (at most ``timeout`` s) for the downloads in progress: an
        action that started one answers once it is saved. One that takes
        longer is reported by a later answer."""
        await self._downloads.wait(timeout)

    def take_downloads(self) -> list[dict[str, Any]]:
        """The downloads finished since the last call (``name`` under
        ``downloads_dir``, ``size``, ``url``, ``mime``), each once."""
        done = self._downloads.take()
        if done and self.box is not None:  # renamed by the agent: still the machine's user's
            for d in done:
                self.box.own(self.downloads_dir / d["name"])
        return done

    # ------------------------------------------------------------------ tabs

    @property
    def pages(self) -> list[Tab]:
        return list(self._tabs) if self.running else []

    async def page(self) -> Tab:
        await self.start()
        if not self._tabs:
            return await self._new_tab()
        if self._current >= len(self._tabs):
            self._current = len(self._tabs) - 1
        return self._tabs[self._current]

    async def _new_tab(self) -> Tab:
        assert self._proc is not None
        r = await self._proc.conn.browser.send("Target.createTarget", {"url": "about:blank"})
        tab = await self._attach({"targetId": r["targetId"], "url": "about:blank"})
        self._current = self._tabs.index(tab)
        return tab

    def current_page(self) -> Tab | None:
        """The active tab, or None (the browser is not started by asking)."""
        pages = self.pages
        return pages[min(self._current, len(pages) - 1)] if pages else None

    def has_page(self) -> bool:
        """Whether a page with content is open (for the agent's screen)."""
        page = self.current_page()
        return page is not None and page.url not in ("", "about:blank")

    async def tabs(self) -> list[dict[str, Any]]:
        return [{"index": i, "url": p.url, "title": p.title, "active": i == self._current}
                for i, p in enumerate(self.pages)]

    async def open_tab(self, url: str | None = None) -> dict[str, Any]:
        await self.start()
        target = check_url(url) if url else None
        page = await self._new_tab()
        if target:
            await self._navigate(page, target)
        await page.bring_to_front()
        return {"index": self._current, "url": page.url}

    async def close_tab(self, index: int | None = None) -> dict[str, Any]:
        pages = self.pages
        if not pages:
            raise BrowserError("no tab is open")
        i = self._current if index is None else index
        if not 0 <= i < len(pages):
            raise BrowserError(f"no tab {i}; tabs 0-{len(pages) - 1}")
        assert self._proc is not None
        with contextlib.suppress(CDPError):  # closed already
            await self._proc.conn.browser.send("Target.closeTarget",
                                               {"targetId": pages[i].target_id})
        self._gone(pages[i].target_id)
        return {"closed": i, "active": self._current, "tabs": len(self.pages)}

    async def switch_tab(self, index: int) -> dict[str, Any]:
        pages = self.pages
        if not 0 <= index < len(pages):
            raise BrowserError(f"no tab {index}; tabs 0-{len(pages) - 1}" if pages
                               else "no tab is open")
        self._current = index
        await pages[index].bring_to_front()
        return {"active": index, "url": pages[index].url}

    # ------------------------------------------------------------------ pages

    async def _navigate(self, page: Tab, url: str, timeout_ms: float = 30_000) -> int | None:
        try:
            return await page.navigate(url, timeout_ms)
        except AgentError as exc:
            raise BrowserError(f"opening {url} failed: {exc}") from None

    async def goto(self, url: str, *, timeout_ms: int = 30_000) -> dict[str, Any]:
        page = await self.page()
        status = await self._navigate(page, check_url(url), timeout_ms)
        return {"url": page.url, "title": await page.page_title(), "status": status}

    async def click_at(self, x: int, y: int, button: str = "left", count: int = 1,
                       modifiers: list[str] | None = None) -> None:
        page = await self.page()
        mods = [key_name(m) for m in modifiers or []]
        for m in mods:
            await page.key_down(m)
        try:
            await page.click(x, y, button=button, count=count)
        finally:
            for m in reversed(mods):
                await page.key_up(m)

    async def click(self, p: dict[str, Any]) -> dict[str, Any]:
        page = await self.page()
        if p.get("selector"):
            at = await page.wait_for_selector(str(p["selector"]), _timeout(p))
            await page.click(at["x"], at["y"])
            return {"clicked": p["selector"]}
        if p.get("index") is not None:
            items = await self.clickables()
            i = int(p["index"])
            if not 0 <= i < len(items):
                raise BrowserError(f"no clickable {i}; {len(items)} on the page")
            await page.click(items[i]["x"], items[i]["y"])
            return {"clicked": items[i]}
        label = p.get("text") or p.get("label")
        if label:
            found = await self.find_label(str(label))
            if found is None:
                raise BrowserError(f"nothing on the page reads {label!r}")
            await page.click(found["x"], found["y"])
            return {"clicked": found}
        if p.get("x") is not None and p.get("y") is not None:
            await self.click_at(int(p["x"]), int(p["y"]), str(p.get("button") or "left"))
            return {"clicked": {"x": int(p["x"]), "y": int(p["y"])}}
        raise BrowserError("click needs selector, text, index or x and y")

    async def type(self, p: dict[str, Any]) -> dict[str, Any]:
        page = await self.page()
        text = p.get("text")
        if not isinstance(text, str):
            raise BrowserError("type needs text (a string)")
        if p.get("selector"):
            selector = str(p["selector"])
            at = await page.wait_for_selector(selector, _timeout(p))
            if p.get("clear", True):
                await page.clear(selector)
            await page.click(at["x"], at["y"])
        await page.insert_text(text)
        if p.get("press_enter") or p.get("submit"):
            await page.press("Enter")
        return {"typed": len(text)}

    async def insert_text(self, text: str) -> None:
        page = await self.page()
        await page.insert_text(text)

    async def press(self, keys: list[str]) -> None:
        page = await self.page()
        await page.press("+".join(key_name(k) for k in keys))

    async def scroll(self, direction: str = "down", amount: int = 3, x: int | None = None,
                     y: int | None = None) -> dict[str, Any]:
        page = await self.page()
        step = 100 * amount
        dx, dy = {"down": (0, step), "up": (0, -step), "left": (-step, 0),
                  "right": (step, 0)}.get(direction, (0, step))
        if x is not None and y is not None:
            await page.move(x, y)
        await page.wheel(dx, dy)
        pos = await page.call(SCROLLED_JS)
        return {"scroll_x": pos[0], "scroll_y": pos[1]}

    async def wait(self, p: dict[str, Any]) -> dict[str, Any]:
        page = await self.page()
        timeout = _timeout(p)
        if p.get("selector"):
            await page.wait_for_selector(str(p["selector"]), timeout)
            return {"found": p["selector"]}
        if p.get("text"):
            await page.wait_for_text(str(p["text"]), timeout)
            return {"found": p["text"]}
        if p.get("load_state") or p.get("state"):
            state = str(p.get("load_state") or p.get("state"))
            await page.wait_for_load_state(state, timeout)
            return {"state": state}
        ms = p.get("ms", p.get("milliseconds", (p.get("seconds") or 1) * 1000))
        await asyncio.sleep(float(ms) / 1000)
        return {"waited_ms": ms}

    async def dom(self, p: dict[str, Any]) -> dict[str, Any]:
        page = await self.page()
        text = str(await page.evaluate(BODY_TEXT_JS) or "")
        out: dict[str, Any] = {"url": page.url, "title": await page.page_title(),
                               "text": text[:TEXT_LIMIT], "truncated": len(text) > TEXT_LIMIT}
        if p.get("html", True):
            html = await page.content()
            out["html"] = html[:HTML_LIMIT]
            out["html_truncated"] = len(html) > HTML_LIMIT
        return out

    async def clickables(self) -> list[dict[str, Any]]:
        page = await self.page()
        return await page.call(CLICKABLES_JS)  # type: ignore[no-any-return]

    async def find_label(self, label: str) -> dict[str, Any] | None:
        page = await self.page()
        return await page.call(FIND_LABEL_JS, label)  # type: ignore[no-any-return]

    async def visible_text(self) -> str:
        page = await self.page()
        return str(await page.evaluate(BODY_TEXT_JS) or "")

    async def state(self) -> dict[str, Any]:
        page = await self.page()
        view = await page.call(
            "() => ({w: innerWidth, h: innerHeight, sx: scrollX, sy: scrollY, "
            "ready: document.readyState})")
        return {"url": page.url, "title": await page.page_title(), "tabs": await self.tabs(),
                "active_tab": self._current, "viewport": {"width": view["w"],
                                                          "height": view["h"]},
                "scroll": {"x": view["sx"], "y": view["sy"]}, "ready_state": view["ready"]}

    async def info(self) -> dict[str, Any]:
        return {"running": self.running, "engine": "chromium", "version": self.version,
                "executable": CHROMIUM, "headless": self.headless, "network": self.network,
                "tabs": len(self.pages)}

    async def execute(self, script: str) -> Any:
        page = await self.page()
        return await page.evaluate(script)

    async def screenshot(self, quality: int = JPEG_QUALITY) -> Frame:
        """The current tab as JPEG through CDP (``Page.captureScreenshot``)."""
        page = await self.page()
        data = await page.screenshot(quality)
        w, h = jpeg_size(data)
        return Frame(data, w, h, "browser")


def _timeout(p: dict[str, Any]) -> float:
    return float(p.get("timeout_ms") or 10_000)


def chromium_available() -> bool:
    return os.path.exists(CHROMIUM) or shutil.which("chromium") is not None
