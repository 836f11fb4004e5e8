"""The machine's browser: Playwright driving Debian's Chromium
(``/usr/bin/chromium``; ``playwright install`` is never used), headless on a
machine without a desktop and headful inside its desktop otherwise.

One persistent profile per machine (kept outside the workspace, included in
snapshots), tabs, page text and clickable elements, label grounding on the
page's DOM, screenshots through CDP as JPEG. Only http(s), about: and data:
URLs are opened: file:// would let a page read the host's files.
"""

from __future__ import annotations

import asyncio
import base64
import io
import logging
import mimetypes
import os
import re
import shutil
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from PIL import Image
from playwright._impl._errors import Error as PlaywrightError  # cheap to import (async_api is not)

from deckhand.machine_agent.box import MachineBox
from deckhand.machine_agent.desktop import Frame
from deckhand.machine_agent.errors import AgentError
from deckhand.machine_agent.pagewatch import NetworkActivity

logger = logging.getLogger(__name__)

CHROMIUM = "/usr/bin/chromium"
BASE_ARGS = [
    "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-quic",
    "--disable-dev-shm-usage", "--password-store=basic", "--no-default-browser-check",
    "--test-type",  # no "unsupported command-line flag" bar over the page
    "--disable-smooth-scrolling",  # a wheel scrolls at once: nothing to wait for
]
# A machine whose metadata says network: "off": every request goes to a dead proxy.
NO_NETWORK_ARGS = ["--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>"]
ALLOWED_SCHEMES = {"http", "https", "about", "data"}
JPEG_QUALITY = 75
TEXT_LIMIT = 100_000
HTML_LIMIT = 500_000
# The scroll position once the wheel's scroll is applied: two animation frames
# on (a page that draws no frames, hidden, answers at the cap).
SCROLLED_JS = """
() => new Promise(done => {
  const answer = () => done([scrollX, scrollY]);
  requestAnimationFrame(() => requestAnimationFrame(answer));
  setTimeout(answer, 1000);
})
"""

CLICKABLES_JS = """
() => {
  const sel = 'a[href],button,input,select,textarea,summary,label,[role=button],[role=link],' +
    '[role=checkbox],[role=tab],[role=menuitem],[role=option],[onclick],[tabindex]';
  const out = [];
  for (const el of document.querySelectorAll(sel)) {
    const r = el.getBoundingClientRect();
    const st = getComputedStyle(el);
    if (r.width < 1 || r.height < 1 || st.visibility === 'hidden' || st.display === 'none') continue;
    const text = (el.innerText || el.value || el.getAttribute('aria-label') ||
      el.getAttribute('placeholder') || el.getAttribute('title') || el.getAttribute('alt') ||
      '').trim().replace(/\\s+/g, ' ').slice(0, 120);
    out.push({index: out.length, tag: el.tagName.toLowerCase(), type: el.type || null,
      id: el.id || null, name: el.getAttribute('name'), text, href: el.href || null,
      x: Math.round(r.left + r.width / 2), y: Math.round(r.top + r.height / 2),
      width: Math.round(r.width), height: Math.round(r.height),
      in_viewport: r.bottom > 0 && r.right > 0 && r.top < innerHeight && r.left < innerWidth});
  }
  return out;
}
"""

# Finds what a label names: a form control labelled so (label[for], aria-label,
# placeholder), else an element whose text is the label (exact before
# contained, clickable before plain, smallest first). Scrolls it into view.
FIND_LABEL_JS = """
(label) => {
  const norm = s => (s || '').toLowerCase().replace(/\\s+/g, ' ').trim();
  const want = norm(label);
  if (!want) return null;
  const visible = el => { const r = el.getBoundingClientRect(); const st = getComputedStyle(el);
    return r.width >= 1 && r.height >= 1 && st.visibility !== 'hidden' && st.display !== 'none'; };
  const controls = 'input,textarea,select,[contenteditable=true]';
  const labelOf = el => {
    const parts = [el.getAttribute('aria-label'), el.getAttribute('placeholder'),
                   el.getAttribute('title'), el.getAttribute('name')];
    if (el.labels) for (const l of el.labels) parts.push(l.innerText);
    return parts.map(norm);
  };
  const clickable = 'a,button,input,select,textarea,summary,label,[role=button],[role=link],' +
    '[role=tab],[role=menuitem],[onclick]';
  let best = null;
  const consider = (el, score, how) => {
    if (!visible(el)) return;
    const r = el.getBoundingClientRect();
    const area = r.width * r.height;
    if (!best || score > best.score || (score === best.score && area < best.area))
      best = {el, score, area, how};
  };
  for (const el of document.querySelectorAll(controls)) {
    const labels = labelOf(el);
    if (labels.includes(want)) consider(el, 100, 'label');
    else if (labels.some(l => l && l.includes(want))) consider(el, 60, 'label-contains');
  }
  for (const el of document.querySelectorAll('body *')) {
    const own = norm(el.innerText || el.value);
    if (!own) continue;
    const isClick = el.matches(clickable);
    if (own === want) consider(el, isClick ? 90 : 80, 'text');
    else if (own.includes(want) && own.length <= want.length * 4 + 20)
      consider(el, isClick ? 50 : 40, 'text-contains');
  }
  if (!best) return null;
  let el = best.el;
  if (el.tagName === 'LABEL' && el.control) el = el.control;
  el.scrollIntoView({block: 'center', inline: 'center'});
  const r = el.getBoundingClientRect();
  return {x: Math.round(r.left + r.width / 2), y: Math.round(r.top + r.height / 2),
          tag: el.tagName.toLowerCase(), text: (el.innerText || el.value || '').slice(0, 120),
          how: best.how};
}
"""


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
    (~1 s cold), every operation starts it when needed."""

    def __init__(self, profile_dir: Path, downloads_dir: Path, *, network: bool = True,
                 display_env: dict[str, str] | None = None, width: int = 1280,
                 height: int = 800, box: MachineBox | None = None) -> None:
        self.box = box
        self.profile_dir = profile_dir
        self.downloads_dir = downloads_dir
        self.network = network
        self.display_env = display_env
        self.width = width
        self.height = height
        self._pw: Any = None
        self.context: Any = None
        self._current = 0
        self._cdp: dict[int, Any] = {}
        self._lock = asyncio.Lock()
        self.version = ""
        self.requests = NetworkActivity()  # requests in flight, for the settle
        self._downloads: list[dict[str, Any]] = []  # finished, not yet taken
        self._saving: set[asyncio.Future[None]] = set()  # downloads in progress

    @property
    def headless(self) -> bool:
        return self.display_env is None

    @property
    def running(self) -> bool:
        return self.context is not None

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        async with self._lock:
            if self.context is not None:
                return
            if not os.path.exists(CHROMIUM):
                raise BrowserError(f"{CHROMIUM} is not installed (scripts/install-system-deps)")
            from playwright.async_api import async_playwright

            self.profile_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            args = list(BASE_ARGS)
            if not self.network:
                args += NO_NETWORK_ARGS
            kwargs: dict[str, Any] = {}
            if self.headless:
                kwargs["viewport"] = {"width": self.width, "height": self.height}
            else:
                args += ["--window-position=0,0", f"--window-size={self.width},{self.height}",
                         "--start-maximized"]
                kwargs["no_viewport"] = True
                kwargs["env"] = {**os.environ, **(self.display_env or {})}
            executable, own_user = CHROMIUM, False
            if self.box is not None:
                executable, own_user = self.box.chromium(CHROMIUM, self.profile_dir,
                                                         self.display_env)
            # as the machine's user Chromium keeps its own sandbox (a user
            # namespace per renderer); as root it refuses to start with it
            pw = await async_playwright().start()
            try:
                self.context = await pw.chromium.launch_persistent_context(
                    str(self.profile_dir), executable_path=executable, headless=self.headless,
                    args=args, accept_downloads=True, chromium_sandbox=own_user, **kwargs,
                )
            except BaseException:
                await pw.stop()
                raise
            if self.box is not None:
                self.box.own_browser_tmp()  # Playwright's artifacts dir: downloads land there
            self._pw = pw
            self.version = self.context.browser.version if self.context.browser else ""
            self.requests.attach(self.context)
            self.context.on("page", self._on_page)
            for page in self.context.pages:
                self._on_page(page)
            if not self.context.pages:
                await self.context.new_page()
            self._current = 0

    async def close(self) -> None:
        async with self._lock:
            ctx, pw = self.context, self._pw
            self.context, self._pw = None, None
            self._cdp.clear()
            if ctx is not None:
                try:
                    await asyncio.wait_for(ctx.close(), 5.0)
                except (PlaywrightError, TimeoutError, OSError) as exc:  # it died already
                    logger.warning("closing the browser: %s", exc)
            if pw is not None:
                try:
                    await asyncio.wait_for(pw.stop(), 5.0)
                except (PlaywrightError, TimeoutError, OSError) as exc:
                    logger.warning("stopping playwright: %s", exc)

    def _on_page(self, page: Any) -> None:
        page.on("download", self._download_started)

    def _download_started(self, download: Any) -> None:
        saving = asyncio.ensure_future(self._save_download(download))
        self._saving.add(saving)
        saving.add_done_callback(self._saving.discard)

    async def downloads_done(self, timeout: float = DOWNLOAD_WAIT_S) -> None:
        """Wait (at most ``timeout`` s) for the downloads in progress: an
        action that started one answers once it is saved. One that takes
        longer is reported by a later answer."""
        if self._saving:
            await asyncio.wait(set(self._saving), timeout=timeout)

    async def _save_download(self, download: Any) -> None:
        self.downloads_dir.mkdir(parents=True, exist_ok=True)
        name = os.path.basename(download.suggested_filename) or "download"
        target = self.downloads_dir / name
        try:
            await download.save_as(str(target))
            size = target.stat().st_size
        except (PlaywrightError, OSError) as exc:
            logger.warning("download %s failed: %s", name, exc)
            return
        if self.box is not None:  # saved by the agent: the machine's user's file
            self.box.own(self.downloads_dir)
            self.box.own(target)
        self._downloads.append({"name": name, "size": size, "url": download.url,
                                "mime": mimetypes.guess_type(name)[0]})

    def take_downloads(self) -> list[dict[str, Any]]:
        """The downloads that finished since the last call (each saved as
        ``downloads_dir/<name>``: name, size, the URL it came from, its mime
        type or None); a failed one is not listed."""
        taken, self._downloads = self._downloads, []
        return taken

    # ------------------------------------------------------------------ tabs

    @property
    def pages(self) -> list[Any]:
        return list(self.context.pages) if self.context is not None else []

    async def page(self) -> Any:
        await self.start()
        pages = self.pages
        if not pages:
            page = await self.context.new_page()
            self._current = 0
            return page
        if self._current >= len(pages):
            self._current = len(pages) - 1
        return pages[self._current]

    def current_page(self) -> Any:
        """The active tab, or None (the browser is not started by asking)."""
        pages = self.pages
        return pages[min(self._current, len(pages) - 1)] if pages else None

    def has_page(self) -> bool:
        """Whether a page with content is open (for the agent's screen)."""
        pages = self.pages
        if not pages:
            return False
        page = pages[min(self._current, len(pages) - 1)]
        return page.url not in ("", "about:blank")

    async def tabs(self) -> list[dict[str, Any]]:
        out = []
        for i, p in enumerate(self.pages):
            try:
                title = await p.title()
            except PlaywrightError:
                title = ""
            out.append({"index": i, "url": p.url, "title": title, "active": i == self._current})
        return out

    async def open_tab(self, url: str | None = None) -> dict[str, Any]:
        await self.start()
        page = await self.context.new_page()
        self._current = self.pages.index(page)
        if url:
            await page.goto(check_url(url), wait_until="load")
        await page.bring_to_front()
        return {"index": self._current, "url": page.url}

    async def close_tab(self, index: int | None = None) -> dict[str, Any]:
        pages = self.pages
        if not pages:
            raise BrowserError("no tab is open")
        i = self._current if index is None else index
        if not 0 <= i < len(pages):
            raise BrowserError(f"no tab {i}; tabs 0-{len(pages) - 1}")
        self._cdp.pop(id(pages[i]), None)
        await pages[i].close()
        self._current = max(0, min(self._current, len(self.pages) - 1))
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

    async def goto(self, url: str, *, timeout_ms: int = 30_000) -> dict[str, Any]:
        page = await self.page()
        response = await page.goto(check_url(url), wait_until="load", timeout=timeout_ms)
        return {"url": page.url, "title": await page.title(),
                "status": response.status if response is not None else None}

    async def click_at(self, x: int, y: int, button: str = "left", count: int = 1,
                       modifiers: list[str] | None = None) -> None:
        page = await self.page()
        mods = [_modifier(m) for m in modifiers or []]
        for m in mods:
            await page.keyboard.down(m)
        try:
            await page.mouse.click(x, y, button=button, click_count=count)
        finally:
            for m in reversed(mods):
                await page.keyboard.up(m)

    async def click(self, p: dict[str, Any]) -> dict[str, Any]:
        page = await self.page()
        if p.get("selector"):
            await page.click(str(p["selector"]), timeout=_timeout(p))
            return {"clicked": p["selector"]}
        if p.get("index") is not None:
            items = await self.clickables()
            i = int(p["index"])
            if not 0 <= i < len(items):
                raise BrowserError(f"no clickable {i}; {len(items)} on the page")
            await page.mouse.click(items[i]["x"], items[i]["y"])
            return {"clicked": items[i]}
        label = p.get("text") or p.get("label")
        if label:
            found = await self.find_label(str(label))
            if found is None:
                raise BrowserError(f"nothing on the page reads {label!r}")
            await page.mouse.click(found["x"], found["y"])
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
            locator = page.locator(str(p["selector"])).first
            if p.get("clear", True):
                await locator.fill("", timeout=_timeout(p))
            await locator.click(timeout=_timeout(p))
        await page.keyboard.insert_text(text)
        if p.get("press_enter") or p.get("submit"):
            await page.keyboard.press("Enter")
        return {"typed": len(text)}

    async def insert_text(self, text: str) -> None:
        page = await self.page()
        await page.keyboard.insert_text(text)

    async def press(self, keys: list[str]) -> None:
        page = await self.page()
        await page.keyboard.press("+".join(_key(k) for k in keys))

    async def scroll(self, direction: str = "down", amount: int = 3, x: int | None = None,
                     y: int | None = None) -> dict[str, Any]:
        page = await self.page()
        step = 100 * amount
        dx, dy = {"down": (0, step), "up": (0, -step), "left": (-step, 0),
                  "right": (step, 0)}.get(direction, (0, step))
        if x is not None and y is not None:
            await page.mouse.move(x, y)
        await page.mouse.wheel(dx, dy)
        pos = await page.evaluate(SCROLLED_JS)
        return {"scroll_x": pos[0], "scroll_y": pos[1]}

    async def wait(self, p: dict[str, Any]) -> dict[str, Any]:
        page = await self.page()
        timeout = _timeout(p)
        if p.get("selector"):
            await page.wait_for_selector(str(p["selector"]), timeout=timeout)
            return {"found": p["selector"]}
        if p.get("text"):
            await page.get_by_text(str(p["text"])).first.wait_for(timeout=timeout)
            return {"found": p["text"]}
        if p.get("load_state") or p.get("state"):
            await page.wait_for_load_state(p.get("load_state") or p.get("state"),
                                           timeout=timeout)
            return {"state": p.get("load_state") or p.get("state")}
        ms = p.get("ms", p.get("milliseconds", (p.get("seconds") or 1) * 1000))
        await page.wait_for_timeout(float(ms))
        return {"waited_ms": ms}

    async def dom(self, p: dict[str, Any]) -> dict[str, Any]:
        page = await self.page()
        text = await page.evaluate("() => document.body ? document.body.innerText : ''")
        out: dict[str, Any] = {"url": page.url, "title": await page.title(),
                               "text": text[:TEXT_LIMIT], "truncated": len(text) > TEXT_LIMIT}
        if p.get("html", True):
            html = await page.content()
            out["html"] = html[:HTML_LIMIT]
            out["html_truncated"] = len(html) > HTML_LIMIT
        return out

    async def clickables(self) -> list[dict[str, Any]]:
        page = await self.page()
        return await page.evaluate(CLICKABLES_JS)  # type: ignore[no-any-return]

    async def find_label(self, label: str) -> dict[str, Any] | None:
        page = await self.page()
        return await page.evaluate(FIND_LABEL_JS, label)  # type: ignore[no-any-return]

    async def visible_text(self) -> str:
        page = await self.page()
        return await page.evaluate(  # type: ignore[no-any-return]
            "() => document.body ? document.body.innerText : ''")

    async def state(self) -> dict[str, Any]:
        page = await self.page()
        view = await page.evaluate(
            "() => ({w: innerWidth, h: innerHeight, sx: scrollX, sy: scrollY, "
            "ready: document.readyState})")
        return {"url": page.url, "title": await page.title(), "tabs": await self.tabs(),
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
        cdp = await self.cdp(page)
        shot = await cdp.send("Page.captureScreenshot", {
            "format": "jpeg", "quality": quality, "optimizeForSpeed": True})
        data = base64.b64decode(shot["data"])
        w, h = Image.open(io.BytesIO(data)).size
        return Frame(data, w, h, "browser")

    async def cdp(self, page: Any) -> Any:
        key = id(page)
        session = self._cdp.get(key)
        if session is None:
            session = await self.context.new_cdp_session(page)
            self._cdp[key] = session
        return session


def _timeout(p: dict[str, Any]) -> float:
    return float(p.get("timeout_ms") or 10_000)


_KEY_NAMES = {"ctrl": "Control", "control": "Control", "alt": "Alt", "shift": "Shift",
              "super": "Meta", "meta": "Meta", "cmd": "Meta", "win": "Meta",
              "enter": "Enter", "return": "Enter", "esc": "Escape", "escape": "Escape",
              "tab": "Tab", "backspace": "Backspace", "delete": "Delete", "del": "Delete",
              "space": " ", "up": "ArrowUp", "down": "ArrowDown", "left": "ArrowLeft",
              "right": "ArrowRight", "home": "Home", "end": "End", "pageup": "PageUp",
              "pagedown": "PageDown", "page_up": "PageUp", "page_down": "PageDown",
              "insert": "Insert", "plus": "+", "minus": "-"}


def _key(name: str) -> str:
    mapped = _KEY_NAMES.get(name.lower())
    if mapped is not None:
        return mapped
    if len(name) > 1 and name[0] in "fF" and name[1:].isdigit():
        return "F" + name[1:]
    return name


def _modifier(name: str) -> str:
    return _key(name)


def chromium_available() -> bool:
    return os.path.exists(CHROMIUM) or shutil.which("chromium") is not None
