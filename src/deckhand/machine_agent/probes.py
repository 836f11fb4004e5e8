"""What the adaptive settle (:mod:`.settle`) looks at: a desktop (XShm grabs
compared byte for byte, ~1 ms a look, plus the signals of the page its
browser shows, if any, read in the background) or a headless browser's
page (CDP JPEG captures compared byte for byte, ~35 ms a look, plus the
page's signals, read after the frame so that activity starting after the
frame was taken is seen by the same sample)."""

from __future__ import annotations

import time

from deckhand.machine_agent.browser import Browser
from deckhand.machine_agent.desktop import Desktop, Frame, encode_jpeg
from deckhand.machine_agent.pagewatch import SignalsPoller, page_busy
from deckhand.machine_agent.settle import Sample

DESKTOP_PAUSE_S = 0.008  # between two looks at a desktop (a grab and a compare: ~1 ms)
SIGNALS_TIMEOUT_S = 0.5  # a page that does not answer this fast is busy


class DesktopProbe:
    pause_s = DESKTOP_PAUSE_S

    def __init__(self, desktop: Desktop, browser: Browser, since: float) -> None:
        self.desktop = desktop
        page = browser.current_page()
        # The desktop's browser is read beside the grabs: a busy renderer answers slowly.
        self._page = (SignalsPoller(page, browser.requests, since, SIGNALS_TIMEOUT_S)
                      if page is not None else None)
        self._last: bytes | None = None
        self._changed_at = since  # when the screen last changed

    async def sample(self) -> Sample:
        at = time.monotonic()
        raw, width, height = self.desktop.grab()
        if raw != self._last:
            self._last, self._changed_at = raw, at
        # only a reading of the page begun after the screen's last change
        # says it is done: under load a renderer paints an animation late
        busy = (self._page.busy(fresh_after=self._changed_at) if self._page is not None
                else False)
        return Sample(key=raw, busy=busy, at=at, payload=(raw, width, height))

    def frame(self, sample: Sample) -> Frame:
        raw, width, height = sample.payload
        return Frame(encode_jpeg(raw, width, height), width, height, "desktop")

    def close(self) -> None:
        if self._page is not None:
            self._page.close()


class BrowserProbe:
    pause_s = 0.0  # a capture takes a frame's time already

    def __init__(self, browser: Browser, since: float) -> None:
        self.browser = browser
        self.since = since

    async def sample(self) -> Sample:
        at = time.monotonic()
        shot = await self.browser.screenshot()
        page = self.browser.current_page()
        busy = page is None or await page_busy(page, self.browser.requests, self.since,
                                               SIGNALS_TIMEOUT_S)
        return Sample(key=shot.jpeg, busy=busy, at=at, payload=shot)

    def frame(self, sample: Sample) -> Frame:
        shot: Frame = sample.payload
        return shot

    def close(self) -> None:
        return None
