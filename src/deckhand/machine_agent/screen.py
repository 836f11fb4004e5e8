"""The agent's screen, whatever the machine: the desktop when it has one,
else the browser's viewport when a page is open, else the terminal rendered
to an image. Screen actions (click, type, keys, scroll, open a URL, click a
label) go to the same place, and labels are grounded on what is there: text
recognition on the desktop, the page's DOM in a headless browser."""

from __future__ import annotations

import asyncio
from typing import Any

from deckhand.core.actions import (
    ActionResult,
    Click,
    ClickText,
    Drag,
    KeyPress,
    MoveMouse,
    OpenUrl,
    Screenshot,
    Scroll,
    TypeText,
)
from deckhand.machine_agent import fill
from deckhand.machine_agent.browser import Browser
from deckhand.machine_agent.desktop import Desktop, Frame
from deckhand.machine_agent.errors import AgentError
from deckhand.machine_agent.keys import split_combo
from deckhand.machine_agent.probes import BrowserProbe, DesktopProbe
from deckhand.machine_agent.settle import Probe, SettlePolicy, Watch
from deckhand.machine_agent.terminal import TerminalSessions
from deckhand.machine_agent.termscreen import TerminalScreen, screen_lines

SCREEN_TEXT_LIMIT = 20_000
GROUNDING_LOOKS = 3  # text recognition again while the screen keeps changing under it
# Actions after which the screen is settled unless the caller says otherwise.
SETTLING_ACTIONS = frozenset({"click", "move", "drag", "type", "key", "scroll", "open_url",
                              "click_text"})


class ScreenError(AgentError):
    pass


NO_SCREEN = ("this machine has no desktop and no page is open, so there is nothing to "
             "{what}: open a URL first (open_url / browser_open), or provision the machine "
             "with desktop_enabled: true")


class Screen:
    def __init__(self, terminals: TerminalSessions, browser: Browser,
                 desktop: Desktop | None = None, settle: SettlePolicy | None = None) -> None:
        self.terminals = terminals
        self.browser = browser
        self.desktop = desktop
        self.settle_policy = settle or SettlePolicy()
        self._term = TerminalScreen()

    @property
    def source(self) -> str:
        if self.desktop is not None:
            return "desktop"
        if self.browser.running and self.browser.has_page():
            return "browser"
        return "terminal"

    async def capture(self) -> Frame:
        source = self.source
        if source == "desktop":
            assert self.desktop is not None
            return self.desktop.capture()
        if source == "browser":
            return await self.browser.screenshot()
        return self._term.render(self.terminals.transcript(), self.terminals.version)

    # ------------------------------------------------------------------ settle

    def watch(self, target: str | None = None) -> Watch:
        """Start watching the screen before an action (``target="browser"``:
        the browser's page, whatever the machine's screen is)."""
        capture = self.browser.screenshot if target == "browser" else self.capture
        return Watch(lambda since: self._probe(target, since), capture, errors=(AgentError,))

    def _probe(self, target: str | None, since: float) -> Probe | None:
        source = target or self.source
        if source == "desktop" and self.desktop is not None:
            return DesktopProbe(self.desktop, self.browser, since)
        if source == "browser" and self.browser.current_page() is not None:
            return BrowserProbe(self.browser, since)
        return None  # the rendered terminal changes only when a command writes

    async def settle_now(self) -> None:
        """Let whatever is still drawing finish before the screen is read."""
        await self.watch().settle(self.settle_policy.resolve("auto"))

    async def text(self) -> tuple[str, str]:
        """The text on the screen now, and where it was read from (``ocr``,
        ``dom`` or ``terminal``)."""
        source = self.source
        if source == "desktop":
            assert self.desktop is not None
            from deckhand.machine_agent import ocr  # Pillow, tesseract: desktops only

            found = await ocr.words(self.desktop.image())
            text = ocr.text_of(found)
            inverted = await ocr.words(self.desktop.image(), invert=True)
            return text + "\n" + ocr.text_of(inverted), "ocr"
        if source == "browser":
            return (await self.browser.visible_text())[:SCREEN_TEXT_LIMIT], "dom"
        lines = screen_lines(self.terminals.transcript())
        return "\n".join(lines), "terminal"

    # ------------------------------------------------------------------ actions

    async def act(self, action: Any) -> ActionResult:
        if isinstance(action, OpenUrl):
            info = await self.browser.goto(action.url)
            await self._to_front(str(info.get("title") or ""))
            return ActionResult(ok=True, output=f"opened {info['url']}", data=info)
        if isinstance(action, Screenshot):
            await self.settle_now()
            frame = await self.capture()
            text, how = await self.text()
            return ActionResult(ok=True, data={"width": frame.width, "height": frame.height,
                                               "source": frame.source, "text": text,
                                               "text_source": how})
        if isinstance(action, ClickText):
            return await self._click_text(action.label)
        if isinstance(action, TypeText):
            return await self._type(action)
        if self.desktop is not None:
            return self._desktop_input(action)
        if self.source != "browser":
            raise ScreenError(NO_SCREEN.format(what=_verb(action)))
        return await self._browser_input(action)

    async def _to_front(self, title: str) -> None:
        """On a desktop the page just opened is what the screen shows: its
        browser window comes to the front (a terminal opened at start may
        cover it, and the next action reads the screen)."""
        from deckhand.machine_agent.windows import WindowError  # X: desktops only

        windows = self.desktop.windows if self.desktop is not None else None
        if windows is None or not title:
            return
        try:
            window = await asyncio.to_thread(windows.find, title)
        except WindowError:
            return  # no window with that title (yet): nothing to raise
        if not window.active:
            await asyncio.to_thread(windows.activate, window.id)

    def _desktop_input(self, action: Any) -> ActionResult:
        assert self.desktop is not None and self.desktop.input is not None
        x = self.desktop.input
        if isinstance(action, Click):
            _inside(action.x, action.y, self.desktop.width, self.desktop.height)
            x.click(action.x, action.y, action.button, action.count)
        elif isinstance(action, MoveMouse):
            x.move(action.x, action.y)
        elif isinstance(action, Drag):
            x.drag(action.x, action.y, action.to_x, action.to_y)
        elif isinstance(action, KeyPress):
            x.key_combo(action.keys)
        elif isinstance(action, Scroll):
            x.scroll(action.direction, action.amount, action.x, action.y)
        else:
            raise ScreenError(f"unsupported screen action {getattr(action, 'kind', '?')!r}")
        return ActionResult(ok=True)

    async def _browser_input(self, action: Any) -> ActionResult:
        b = self.browser
        page = await b.page()
        if isinstance(action, Click):
            await b.click_at(action.x, action.y, action.button, action.count)
        elif isinstance(action, MoveMouse):
            await page.move(action.x, action.y)
        elif isinstance(action, Drag):
            await page.move(action.x, action.y)
            await page.down()
            await page.move(action.to_x, action.to_y, steps=10)
            await page.up()
        elif isinstance(action, KeyPress):
            await b.press(split_combo(action.keys))
        elif isinstance(action, Scroll):
            data = await b.scroll(action.direction, action.amount, action.x, action.y)
            return ActionResult(ok=True, data=data)
        else:
            raise ScreenError(f"unsupported screen action {getattr(action, 'kind', '?')!r}")
        return ActionResult(ok=True)

    async def _type(self, action: TypeText) -> ActionResult:
        """Typing answers whether the text landed (:mod:`.fill`)."""
        if self.desktop is not None:
            return await fill.type_on_desktop(self.desktop, self.settle_now, action)
        if self.source != "browser":
            raise ScreenError(NO_SCREEN.format(what=_verb(action)))
        return await fill.type_in_browser(self.browser, action)

    async def _click_text(self, label: str) -> ActionResult:
        source = self.source
        if source == "desktop":
            assert self.desktop is not None and self.desktop.input is not None
            from deckhand.machine_agent import ocr

            # The screen may still be drawing what the last action caused.
            await self.settle_now()
            for look in range(GROUNDING_LOOKS):
                shot = self.desktop.grab()
                match, found = await ocr.locate(self.desktop.image(shot), label)
                if match is not None or look + 1 == GROUNDING_LOOKS \
                        or self.desktop.grab()[0] == shot[0]:
                    break  # found, or the screen is as it was read: the label is not there
                await self.settle_now()
            if match is None:
                seen = ocr.text_of(found)[:400] or "(no text recognised)"
                return ActionResult(ok=False, error=f"{label!r} is not on the screen "
                                    f"(text recognition read: {seen})",
                                    data={"grounding": "ocr"})
            self.desktop.input.click(match.x, match.y)
            return ActionResult(ok=True, output=f"clicked {match.text!r}", data={
                "x": match.x, "y": match.y, "grounding": "ocr", "text": match.text})
        if source == "browser":
            found_el = await self.browser.find_label(label)
            if found_el is None:
                return ActionResult(ok=False, error=f"nothing on the page reads {label!r}",
                                    data={"grounding": "dom"})
            page = await self.browser.page()
            await page.click(found_el["x"], found_el["y"])
            return ActionResult(ok=True, output=f"clicked {found_el['tag']} {label!r}",
                                data={**found_el, "grounding": "dom"})
        raise ScreenError(NO_SCREEN.format(what=f"click {label!r} on"))


def _verb(action: Any) -> str:
    return {"click": "click on", "move": "move the mouse over", "drag": "drag on",
            "type": "type into", "key": "send keys to", "scroll": "scroll"}.get(
        getattr(action, "kind", ""), "act on")


def _inside(x: int, y: int, w: int, h: int) -> None:
    if not (0 <= x < w and 0 <= y < h):
        raise ScreenError(f"({x}, {y}) is outside the {w}x{h} screen")
