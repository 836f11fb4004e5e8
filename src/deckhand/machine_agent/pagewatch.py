"""A page's own activity signals, for the adaptive settle (:mod:`.settle`):
requests in flight (from the tabs' CDP ``Network`` events), and from
inside the page its load state, finite animations still running and DOM
mutations not yet painted (a MutationObserver that counts a change as
painted two animation frames later).

They only ever hold a settle back ("busy"); how long the screen has been
still is for frame comparison to say. Infinite animations (a spinner) are
not a signal, nor is anything on a page that is not visible (a hidden tab, a
browser window covered on the desktop): whether they change the screen is
left to the frames, so that they do not hold every settle to its cap.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from deckhand.machine_agent.errors import AgentError

# Requests that stay open by design: they never mean "still loading".
LONG_LIVED = frozenset({"websocket", "eventsource", "ping", "media"})
FORGET_AFTER_S = 120.0  # a request without an end event (its page closed) is dropped

SIGNALS_JS = """
() => {
  if (document.visibilityState !== 'visible') return {hidden: true};
  const key = Symbol.for('deckhand.settle');
  let s = window[key];
  if (!s) {
    s = {dirty: false};
    const painted = () => requestAnimationFrame(() => requestAnimationFrame(() => {
      s.dirty = false; }));
    new MutationObserver(() => {
      if (!s.dirty) { s.dirty = true; painted(); }
    }).observe(document, {subtree: true, childList: true, attributes: true,
                          characterData: true});
    Object.defineProperty(window, key, {value: s});
  }
  let animations = 0;
  for (const a of document.getAnimations()) {
    if (a.playState !== 'running' || !a.effect) continue;
    if (Number.isFinite(a.effect.getComputedTiming().endTime)) animations++;
  }
  return {hidden: false, dirty: s.dirty, animations, ready: document.readyState};
}
"""


class NetworkActivity:
    """Requests of the browser's tabs in flight, with when each started (from
    each tab's ``Network`` events; a request is its session and its id)."""

    def __init__(self) -> None:
        self._inflight: dict[tuple[str | None, str], float] = {}
        self._last_end: dict[str | None, float] = {}

    def listen(self, session: Any) -> None:
        sid = session.id
        session.on("Network.requestWillBeSent", lambda p: self._started(sid, p))
        session.on("Network.loadingFinished", lambda p: self._ended(sid, p))
        session.on("Network.loadingFailed", lambda p: self._ended(sid, p))

    def _started(self, sid: str | None, p: dict[str, Any]) -> None:
        if str(p.get("type", "")).lower() in LONG_LIVED:
            return
        now = time.monotonic()
        for old in [r for r, t in self._inflight.items() if now - t > FORGET_AFTER_S]:
            del self._inflight[old]
        # a redirect is the same request (same id) going on: it keeps its start
        self._inflight.setdefault((sid, str(p.get("requestId"))), now)

    def _ended(self, sid: str | None, p: dict[str, Any]) -> None:
        if self._inflight.pop((sid, str(p.get("requestId"))), None) is not None:
            self._last_end[sid] = time.monotonic()

    def forget(self, sid: str | None) -> None:
        """A tab closed: its requests will not end."""
        for key in [k for k in self._inflight if k[0] == sid]:
            del self._inflight[key]
        self._last_end.pop(sid, None)

    def pending_since(self, since: float) -> int:
        """Requests started at or after ``since`` that have not ended."""
        return sum(1 for t in self._inflight.values() if t >= since)

    def idle_for(self, seconds: float, sid: str | None) -> bool:
        """No request of the tab ``sid`` in flight, none ended for ``seconds``."""
        if any(k[0] == sid for k in self._inflight):
            return False
        return time.monotonic() - self._last_end.get(sid, 0.0) >= seconds


class SignalsPoller:
    """Reads a page's signals in the background, one reading at a time, so
    that a page slow to answer does not slow whoever samples frames. Until
    its first reading it answers busy."""

    def __init__(self, page: Any, network: NetworkActivity, since: float,
                 timeout_s: float) -> None:
        self._read = lambda: page_busy(page, network, since, timeout_s)
        self._task: asyncio.Task[bool] | None = None
        self._busy = True
        self._began = 0.0  # when the running reading began
        self._read_at = float("-inf")  # when the last finished one began

    def busy(self, fresh_after: float = float("-inf")) -> bool:
        """The last reading, or busy if that reading began before
        ``fresh_after`` (the screen's last change: an older reading may
        predate what changed it, an animation the renderer was slow to
        start); starts the next one."""
        if self._task is None or self._task.done():
            if self._task is not None:
                self._busy, self._read_at = self._task.result(), self._began
            self._began = time.monotonic()
            self._task = asyncio.ensure_future(self._read())
        return self._busy or self._read_at < fresh_after

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()


async def page_busy(page: Any, network: NetworkActivity, since: float,
                    timeout_s: float) -> bool:
    """Whether the page is still doing something that will show: requests
    started since ``since`` in flight, not loaded, a finite animation
    running, a DOM change not painted yet. A page that cannot answer within
    ``timeout_s`` (navigating, its main thread busy) is busy."""
    try:
        state = await asyncio.wait_for(page.call(SIGNALS_JS), timeout_s)
    except (AgentError, TimeoutError):
        return True
    if state["hidden"]:
        return False
    return bool(state["dirty"]) or state["animations"] > 0 or state["ready"] != "complete" \
        or network.pending_since(since) > 0
