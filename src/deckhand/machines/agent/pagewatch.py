"""A page's own activity signals, for the adaptive settle (:mod:`.settle`):
requests in flight (from the browser context's network events), and from
inside the page its load state, finite animations still running and DOM
mutations not yet painted (a MutationObserver that counts a change as
painted two animation frames later).

Infinite animations (a spinner) are not a signal: whether they change the
screen is left to frame comparison, so a hidden one does not hold every
settle to its cap.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from playwright._impl._errors import Error as PlaywrightError

# Requests that stay open by design: they never mean "still loading".
LONG_LIVED = frozenset({"websocket", "eventsource", "ping", "media"})
FORGET_AFTER_S = 120.0  # a request without an end event (its page closed) is dropped

SIGNALS_JS = """
() => {
  const key = Symbol.for('deckhand.settle');
  let s = window[key];
  if (!s) {
    s = {dirty: false, last: 0};  // 0: the page's time origin
    const painted = () => requestAnimationFrame(() => requestAnimationFrame(() => {
      s.dirty = false; s.last = performance.now(); }));
    new MutationObserver(() => {
      s.last = performance.now();
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
  return {dirty: s.dirty, idle_ms: performance.now() - s.last, animations,
          ready: document.readyState};
}
"""


@dataclass(frozen=True)
class Signals:
    busy: bool
    idle_s: float  # since the last DOM change was painted


class NetworkActivity:
    """Requests of a browser context in flight, with when each started."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._inflight: dict[Any, float] = {}

    def attach(self, context: Any) -> None:
        self._inflight.clear()
        context.on("request", self._started)
        context.on("requestfinished", self._ended)
        context.on("requestfailed", self._ended)

    def _started(self, request: Any) -> None:
        if request.resource_type in LONG_LIVED:
            return
        now = self._clock()
        for old in [r for r, t in self._inflight.items() if now - t > FORGET_AFTER_S]:
            del self._inflight[old]
        self._inflight[request] = now

    def _ended(self, request: Any) -> None:
        self._inflight.pop(request, None)

    def pending_since(self, since: float) -> int:
        """Requests started at or after ``since`` that have not ended."""
        return sum(1 for t in self._inflight.values() if t >= since)


async def page_signals(page: Any, network: NetworkActivity, since: float,
                       timeout_s: float) -> Signals:
    """The page's activity now. A page that cannot answer (navigating, its
    main thread busy beyond ``timeout_s``) is busy."""
    try:
        state = await asyncio.wait_for(page.evaluate(SIGNALS_JS), timeout_s)
    except (PlaywrightError, TimeoutError):
        return Signals(busy=True, idle_s=0.0)
    busy = bool(state["dirty"]) or state["animations"] > 0 or state["ready"] != "complete" \
        or network.pending_since(since) > 0
    return Signals(busy=busy, idle_s=max(0.0, float(state["idle_ms"]) / 1000))
