"""The page-signals poller of the desktop settle: a reading counts only if
it began after the screen's last change."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from deckhand.machine_agent.pagewatch import NetworkActivity, SignalsPoller


class Page:
    """Answers the signals script with what ``state`` holds, once ``go`` is set."""

    def __init__(self) -> None:
        self.state: dict[str, Any] = {"hidden": False, "dirty": False, "animations": 0,
                                      "ready": "complete"}
        self.go = asyncio.Event()
        self.readings = 0

    async def call(self, script: str) -> dict[str, Any]:
        await self.go.wait()
        self.readings += 1
        return dict(self.state)


async def _finish(page: Page, poller: SignalsPoller) -> None:
    """Let the poller's running reading answer."""
    page.go.set()
    reading = poller._task
    assert reading is not None
    await asyncio.wait({reading}, timeout=5)
    page.go.clear()


async def test_a_reading_older_than_the_last_change_is_not_trusted() -> None:
    page = Page()
    poller = SignalsPoller(page, NetworkActivity(), since=0.0, timeout_s=5.0)
    assert poller.busy()  # no reading yet: busy; one starts
    await _finish(page, poller)
    assert not poller.busy()  # the page was idle; a second reading starts
    changed = time.monotonic()  # the screen changes
    # the readings so far began before the change: they cannot say it is over
    assert poller.busy(fresh_after=changed)
    await _finish(page, poller)
    assert poller.busy(fresh_after=changed)  # the second began before it too; a third starts
    await _finish(page, poller)
    assert not poller.busy(fresh_after=changed)  # the third began after it
    page.state["animations"] = 1
    await _finish(page, poller)
    assert poller.busy()
    poller.close()
