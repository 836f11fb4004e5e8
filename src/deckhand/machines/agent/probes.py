"""What the adaptive settle (:mod:`.settle`) looks at: a desktop (XShm grabs
compared byte for byte, ~1 ms a look, plus the signals of the page its
browser shows, if any) or a headless browser's page (CDP JPEG captures
compared byte for byte, ~35 ms a look, plus the page's signals). Signals
are read after the frame, so activity that starts after a frame was taken
is seen by the same sample."""

from __future__ import annotations

import time
from typing import Any

from deckhand.machines.agent.browser import Browser
from deckhand.machines.agent.desktop import Desktop, Frame, encode_jpeg
from deckhand.machines.agent.pagewatch import Signals, page_signals
from deckhand.machines.agent.settle import Sample

DESKTOP_PAUSE_S = 0.008  # between two looks at a desktop (a grab and a compare: ~1 ms)
SIGNALS_TIMEOUT_S = 0.5  # a page that does not answer this fast is busy


class DesktopProbe:
    pause_s = DESKTOP_PAUSE_S

    def __init__(self, desktop: Desktop, browser: Browser, since: float) -> None:
        self.desktop = desktop
        self.browser = browser
        self.since = since

    async def sample(self) -> Sample:
        at = time.monotonic()
        raw, width, height = self.desktop.grab()
        signals = await _signals(self.browser, self.since)
        return Sample(key=raw, busy=signals.busy if signals else False, at=at,
                      idle_s=signals.idle_s if signals else float("inf"),
                      payload=(raw, width, height))

    def frame(self, sample: Sample) -> Frame:
        raw, width, height = sample.payload
        return Frame(encode_jpeg(raw, width, height), width, height, "desktop")


class BrowserProbe:
    pause_s = 0.0  # a capture takes a frame's time already

    def __init__(self, browser: Browser, since: float) -> None:
        self.browser = browser
        self.since = since

    async def sample(self) -> Sample:
        at = time.monotonic()
        shot = await self.browser.screenshot()
        signals = await _signals(self.browser, self.since)
        return Sample(key=shot.jpeg, busy=signals.busy if signals else True, at=at,
                      idle_s=signals.idle_s if signals else 0.0, payload=shot)

    def frame(self, sample: Sample) -> Frame:
        shot: Frame = sample.payload
        return shot


async def _signals(browser: Browser, since: float) -> Signals | None:
    page: Any = browser.current_page()
    if page is None:
        return None
    return await page_signals(page, browser.requests, since, SIGNALS_TIMEOUT_S)
