"""One tab of the machine's browser, over its CDP session (:mod:`.cdp`):
navigation with a wait for the load, scripts (``Runtime.evaluate``), the
mouse and the keyboard (``Input.dispatch*Event``), waits for a selector,
text or load state (polled inside the page up to a deadline), screenshots
(``Page.captureScreenshot``, JPEG). Dialogs a page opens (alert, confirm)
are dismissed, as a browser driver does: they would block the page."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
from collections.abc import Callable
from typing import Any

from deckhand.machine_agent.cdp import CDPError, Session
from deckhand.machine_agent.errors import AgentError
from deckhand.machine_agent.keys import MODIFIER_BITS, describe, key_name
from deckhand.machine_agent.pagewatch import NetworkActivity

BUTTON_BITS = {"left": 1, "right": 2, "middle": 4, "back": 8, "forward": 16}
CONTENT_JS = ("(document.doctype ? new XMLSerializer().serializeToString(document.doctype) "
              ": '') + (document.documentElement ? document.documentElement.outerHTML : '')")
# Polls `find` (an expression of `arg`) each animation frame (and at least
# every 50 ms, a hidden page draws no frames) until it is truthy or the
# deadline passes (then null).
POLL_JS = """
(arg, timeoutMs) => new Promise((done, fail) => {
  const until = Date.now() + timeoutMs;
  const look = () => {
    let found;
    try { found = (FIND)(arg); } catch (e) { fail(e); return; }
    if (found) { done(found); return; }
    if (Date.now() >= until) { done(null); return; }
    setTimeout(look, 50);
  };
  look();
})
"""
SELECTOR_JS = """sel => {
  const el = document.querySelector(sel);
  if (!el) return null;
  const r = el.getBoundingClientRect(); const st = getComputedStyle(el);
  if (r.width < 1 || r.height < 1 || st.visibility === 'hidden') return null;
  el.scrollIntoView({block: 'center', inline: 'center'});
  const b = el.getBoundingClientRect();
  return {x: b.left + b.width / 2, y: b.top + b.height / 2};
}"""
CLEAR_JS = """sel => {
  const el = document.querySelector(sel);
  if (!el) return false;
  el.focus();
  if ('value' in el) { el.value = ''; }
  else if (el.isContentEditable) { el.textContent = ''; }
  el.dispatchEvent(new Event('input', {bubbles: true}));
  return true;
}"""
TEXT_JS = """t => document.body && document.body.innerText.toLowerCase()
  .includes(t.toLowerCase())"""
STATE_JS = {"load": "() => document.readyState === 'complete'",
            "domcontentloaded": "() => document.readyState !== 'loading'"}


class TabError(AgentError):
    pass


class Tab:
    """A page target. ``url`` and ``title`` follow the target's events."""

    def __init__(self, target_id: str, session: Session, network: NetworkActivity,
                 on_response: Callable[[str, str | None], None] | None = None) -> None:
        self.target_id = target_id
        self._on_response = on_response
        self.session = session
        self.network = network
        self.url = ""
        self.title = ""
        self.closed = False
        self._mouse = (0.0, 0.0)
        self._buttons = 0
        self._modifiers = 0
        self._loads: dict[str, asyncio.Future[None]] = {}
        self._statuses: dict[str, int] = {}

    async def setup(self) -> None:
        """Enable the domains the agent reads (pages attach paused: let them run)."""
        s = self.session
        s.on("Page.lifecycleEvent", self._lifecycle)
        s.on("Page.frameNavigated", self._navigated)
        s.on("Page.javascriptDialogOpening", self._dialog)
        s.on("Network.responseReceived", self._response)
        self.network.listen(s)
        await asyncio.gather(
            s.send("Page.enable"), s.send("Page.setLifecycleEventsEnabled", {"enabled": True}),
            s.send("Network.enable", {"maxTotalBufferSize": 1 << 20,
                                      "maxResourceBufferSize": 1 << 19}),
            s.send("Runtime.runIfWaitingForDebugger"))

    # ------------------------------------------------------------------ events

    def _lifecycle(self, p: dict[str, Any]) -> None:
        if p.get("frameId") != self.target_id or p.get("name") != "load":
            return
        future = self._loads.get(p.get("loaderId", ""))
        if future is not None and not future.done():
            future.set_result(None)

    def _navigated(self, p: dict[str, Any]) -> None:
        frame = p.get("frame") or {}
        if not frame.get("parentId"):
            self.url = frame.get("url", self.url) + frame.get("urlFragment", "")

    def _response(self, p: dict[str, Any]) -> None:
        if self._on_response is not None:
            self._on_response(p["response"].get("url", ""), p["response"].get("mimeType"))
        if p.get("type") == "Document" and p.get("frameId") == self.target_id:
            self._statuses[p.get("requestId", "")] = int(p["response"].get("status", 0))
            if len(self._statuses) > 20:
                self._statuses.pop(next(iter(self._statuses)))

    def _dialog(self, p: dict[str, Any]) -> None:
        accept = p.get("type") == "beforeunload"  # leaving a page is never refused
        asyncio.ensure_future(self._answer_dialog(accept))

    async def _answer_dialog(self, accept: bool) -> None:
        # a page that went away with its dialog needs no answer
        with contextlib.suppress(CDPError):
            await self.session.send("Page.handleJavaScriptDialog", {"accept": accept})

    # ------------------------------------------------------------------ pages

    async def navigate(self, url: str, timeout_ms: float = 30_000) -> int | None:
        """Open ``url`` and wait for its load event; the document's HTTP status."""
        loop = asyncio.get_running_loop()
        deadline = time.monotonic() + timeout_ms / 1000
        result = await self.session.send("Page.navigate", {"url": url},
                                         timeout=timeout_ms / 1000)
        if result.get("errorText"):
            raise TabError(f"{result['errorText']} at {url}")
        loader = result.get("loaderId")
        if not loader:  # the same document (a #fragment): nothing loads
            return None
        future = self._loads.setdefault(loader, loop.create_future())
        try:
            # the load may have fired already: the document says so
            if not future.done() and await self._document_loaded(loader):
                return self._statuses.get(loader)
            await asyncio.wait_for(future, max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            raise TabError(f"{url} did not finish loading in {timeout_ms / 1000:g} s") from None
        finally:
            self._loads.pop(loader, None)
        return self._statuses.get(loader)

    async def _document_loaded(self, loader: str) -> bool:
        tree = await self.session.send("Page.getFrameTree")
        frame = tree.get("frameTree", {}).get("frame", {})
        if frame.get("loaderId") != loader:
            return False
        return bool(await self.evaluate("document.readyState === 'complete'"))

    async def page_title(self) -> str:
        title = await self.evaluate("document.title")
        self.title = str(title or "")
        return self.title

    async def content(self) -> str:
        return str(await self.evaluate(CONTENT_JS))

    async def bring_to_front(self) -> None:
        await self.session.send("Page.bringToFront")

    async def screenshot(self, quality: int) -> bytes:
        shot = await self.session.send("Page.captureScreenshot", {
            "format": "jpeg", "quality": quality, "optimizeForSpeed": True})
        return base64.b64decode(shot["data"])

    # ------------------------------------------------------------------ scripts

    async def evaluate(self, expression: str) -> Any:
        """The value of ``expression`` (awaited if a promise; called if it is a
        function, as a driver's ``evaluate`` does), as JSON; a value that is
        not (a window, a node with cycles) is its description."""
        r = await self.session.send("Runtime.evaluate", {
            "expression": expression, "awaitPromise": True})
        _raise_for(r)
        result = r.get("result", {})
        if result.get("type") == "function" and result.get("objectId"):
            called = await self.session.send("Runtime.callFunctionOn", {
                "objectId": result["objectId"], "functionDeclaration": "function() { return this(); }",
                "awaitPromise": True})
            self._release(result)
            _raise_for(called)
            result = called.get("result", {})
        return await self._by_value(result)

    async def _by_value(self, obj: dict[str, Any]) -> Any:
        if not obj.get("objectId"):
            return None if obj.get("type") == "undefined" else obj.get("value")
        try:
            r = await self.session.send("Runtime.callFunctionOn", {
                "objectId": obj["objectId"], "functionDeclaration": "function() { return this; }",
                "returnByValue": True})
            return r.get("result", {}).get("value")
        except CDPError:  # not serializable: what it is
            return obj.get("description")
        finally:
            self._release(obj)

    def _release(self, obj: dict[str, Any]) -> None:
        release = asyncio.ensure_future(self.session.send(
            "Runtime.releaseObject", {"objectId": obj["objectId"]}))
        release.add_done_callback(lambda f: f.cancelled() or f.exception())

    async def call(self, function: str, *args: Any) -> Any:
        """``function`` (JavaScript source) called with ``args`` (JSON values)."""
        expression = f"({function})({', '.join(json.dumps(a) for a in args)})"
        r = await self.session.send("Runtime.evaluate", {
            "expression": expression, "returnByValue": True, "awaitPromise": True})
        return _value(r)

    async def poll(self, find: str, arg: Any, timeout_ms: float) -> Any:
        """The first truthy value of the function ``find(arg)``, looked at in
        the page until ``timeout_ms`` (None when it never was)."""
        return await self.call(POLL_JS.replace("FIND", find), arg, timeout_ms)

    async def wait_for_selector(self, selector: str, timeout_ms: float) -> dict[str, float]:
        found = await self.poll(SELECTOR_JS, selector, timeout_ms)
        if not found:
            raise TabError(f"no visible element matches {selector!r} "
                           f"(waited {timeout_ms / 1000:g} s)")
        return found  # type: ignore[no-any-return]

    async def wait_for_text(self, text: str, timeout_ms: float) -> None:
        if not await self.poll(TEXT_JS, text, timeout_ms):
            raise TabError(f"the page shows no {text!r} (waited {timeout_ms / 1000:g} s)")

    async def wait_for_load_state(self, state: str, timeout_ms: float) -> None:
        if state == "networkidle":
            deadline = time.monotonic() + timeout_ms / 1000
            await self.wait_for_load_state("load", timeout_ms)
            while not self.network.idle_for(0.5, self.session.id):
                if time.monotonic() >= deadline:
                    raise TabError(f"the page's network was not idle in {timeout_ms / 1000:g} s")
                await asyncio.sleep(0.1)
            return
        js = STATE_JS.get(state)
        if js is None:
            raise TabError(f"unknown load state {state!r} (load, domcontentloaded, networkidle)")
        if not await self.poll(js, None, timeout_ms):
            raise TabError(f"the page did not reach {state} in {timeout_ms / 1000:g} s")

    async def clear(self, selector: str) -> None:
        await self.call(CLEAR_JS, selector)

    # ------------------------------------------------------------------ mouse

    async def _mouse_event(self, kind: str, x: float, y: float, **extra: Any) -> None:
        await self.session.send("Input.dispatchMouseEvent", {
            "type": kind, "x": x, "y": y, "modifiers": self._modifiers,
            "buttons": self._buttons, **extra})

    async def move(self, x: float, y: float, steps: int = 1) -> None:
        fx, fy = self._mouse
        for i in range(1, max(1, steps) + 1):
            px, py = fx + (x - fx) * i / max(1, steps), fy + (y - fy) * i / max(1, steps)
            await self._mouse_event("mouseMoved", px, py)
        self._mouse = (x, y)

    async def down(self, button: str = "left", count: int = 1) -> None:
        self._buttons |= BUTTON_BITS.get(button, 1)
        await self._mouse_event("mousePressed", *self._mouse, button=button, clickCount=count)

    async def up(self, button: str = "left", count: int = 1) -> None:
        self._buttons &= ~BUTTON_BITS.get(button, 1)
        await self._mouse_event("mouseReleased", *self._mouse, button=button, clickCount=count)

    async def click(self, x: float, y: float, button: str = "left", count: int = 1) -> None:
        if button not in BUTTON_BITS:
            raise TabError(f"unknown mouse button {button!r} (left, right, middle)")
        await self.move(x, y)
        for n in range(1, max(1, count) + 1):
            await self.down(button, n)
            await self.up(button, n)

    async def wheel(self, dx: float, dy: float) -> None:
        await self._mouse_event("mouseWheel", *self._mouse, deltaX=dx, deltaY=dy)

    # ------------------------------------------------------------------ keyboard

    async def key_down(self, name: str) -> None:
        k = describe(key_name(name))
        if k.modifier:
            self._modifiers |= MODIFIER_BITS[k.key]
        # with a modifier other than Shift held a key is a shortcut: no text
        text = k.text if not self._modifiers & ~MODIFIER_BITS["Shift"] else ""
        await self.session.send("Input.dispatchKeyEvent", {
            "type": "keyDown" if text else "rawKeyDown", "key": k.key, "code": k.code,
            "windowsVirtualKeyCode": k.key_code, "text": text, "unmodifiedText": text,
            "modifiers": self._modifiers, "location": 1 if k.modifier else 0})

    async def key_up(self, name: str) -> None:
        k = describe(key_name(name))
        if k.modifier:
            self._modifiers &= ~MODIFIER_BITS[k.key]
        await self.session.send("Input.dispatchKeyEvent", {
            "type": "keyUp", "key": k.key, "code": k.code,
            "windowsVirtualKeyCode": k.key_code, "modifiers": self._modifiers,
            "location": 1 if k.modifier else 0})

    async def press(self, combo: str) -> None:
        """``"Control+Shift+a"``: the modifiers held down around the last key."""
        parts = combo.split("+") if combo != "+" else ["+"]
        if combo.endswith("++"):
            parts = [*combo[:-2].split("+"), "+"]
        keys = [key_name(p) for p in parts if p]
        for k in keys:
            describe(k)  # an unknown key fails before anything is pressed
        for k in keys:
            await self.key_down(k)
        for k in reversed(keys):
            await self.key_up(k)

    async def insert_text(self, text: str) -> None:
        if text:
            await self.session.send("Input.insertText", {"text": text})


def _raise_for(r: dict[str, Any]) -> None:
    details = r.get("exceptionDetails")
    if details is not None:
        exc = details.get("exception") or {}
        text = exc.get("description") or details.get("text") or "the script failed"
        raise TabError(f"the script failed: {str(text).splitlines()[0][:500]}")


def _value(r: dict[str, Any]) -> Any:
    _raise_for(r)
    result = r.get("result", {})
    if result.get("type") == "undefined":
        return None
    return result.get("value")
