"""Adaptive settle: after an action, watch the screen and return as soon as
it has been still for a quiet period (default 60 ms), or at a hard cap
(default 3 s) with ``settled: false`` — never a fixed sleep.

A :class:`Watch` starts before the action (so activity the action itself
starts, like a request, counts) and settles after it. It samples a
:class:`Probe` in a loop: each sample is a frame key compared with the
previous one (a desktop's raw XShm buffer, a page's JPEG) plus the machine's
own activity signals (a page's pending requests, DOM mutations not yet
painted, running finite animations; see :mod:`.pagewatch`). The screen is
settled when two consecutive samples are equal, no signal is busy, and
nothing changed for the quiet period; the frame returned is that last
sample, so a caller's screenshot is exactly the settled screen.

A caller picks the mode with a ``settle`` parameter: ``"auto"``,
``"none"``, a fixed number of milliseconds, or
``{"mode": "auto", "quiet_ms": …, "cap_ms": …}``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from deckhand.errors import ErrorCode, ValidationFailed
from deckhand.machine_agent.desktop import Frame
from deckhand.machine_agent.errors import AgentError

DEFAULT_QUIET_MS = 60
DEFAULT_CAP_MS = 3000
MAX_MS = 60_000
MODES = ("none", "auto", "fixed")


class SettleError(AgentError, ValidationFailed):
    """A ``settle`` parameter that means nothing (the caller's mistake, so
    also a :class:`ValidationFailed`)."""

    code = ErrorCode.VALIDATION_ERROR


@dataclass(frozen=True)
class Settle:
    """How to settle after one action."""

    mode: str  # none | auto | fixed
    quiet_ms: int = DEFAULT_QUIET_MS
    cap_ms: int = DEFAULT_CAP_MS
    fixed_ms: int = 0


@dataclass(frozen=True)
class SettlePolicy:
    """The machine's defaults (``DECKHAND_SETTLE_QUIET_MS``, ``…_CAP_MS``)."""

    quiet_ms: int = DEFAULT_QUIET_MS
    cap_ms: int = DEFAULT_CAP_MS

    def resolve(self, value: object, default: str = "auto") -> Settle:
        """The caller's ``settle`` parameter (None: ``default``) → :class:`Settle`."""
        if value is None:
            value = default
        if isinstance(value, bool):
            raise SettleError(_USAGE)
        if isinstance(value, (int, float)):
            return Settle("fixed", self.quiet_ms, self.cap_ms, _ms(value, "settle"))
        if isinstance(value, str):
            word = value.strip().lower()
            if word in ("none", "auto"):
                return Settle(word, self.quiet_ms, self.cap_ms)
            digits = word.removesuffix("ms").strip()
            if digits.isdigit():
                return Settle("fixed", self.quiet_ms, self.cap_ms, _ms(int(digits), "settle"))
            raise SettleError(_USAGE)
        if isinstance(value, dict):
            unknown = set(value) - {"mode", "quiet_ms", "cap_ms", "ms"}
            mode = value.get("mode", "fixed" if "ms" in value else "auto")
            if unknown or mode not in MODES:
                raise SettleError(_USAGE)
            quiet = _ms(value.get("quiet_ms", self.quiet_ms), "quiet_ms", low=1)
            cap = _ms(value.get("cap_ms", self.cap_ms), "cap_ms")
            return Settle(mode, quiet, cap, _ms(value.get("ms", 0), "ms"))
        raise SettleError(_USAGE)


_USAGE = ('settle must be "auto", "none", a number of milliseconds (0-60000) or '
          '{"mode": "auto", "quiet_ms": N, "cap_ms": N}')


def _ms(value: object, name: str, low: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not low <= value <= MAX_MS:
        raise SettleError(f"{name} must be a number of milliseconds from {low} to {MAX_MS}")
    return int(value)


@dataclass(frozen=True)
class SettleReport:
    """What the settle did: ``settled`` is None when nothing was checked
    (modes ``none`` and ``fixed``); ``error`` says why the screen could not
    be watched (the action itself still happened)."""

    mode: str
    settled: bool | None
    waited_ms: int
    changes: int = 0  # how many times the screen was seen changing
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        out = {"mode": self.mode, "settled": self.settled, "waited_ms": self.waited_ms,
               "changes": self.changes}
        if self.error is not None:
            out["error"] = self.error
        return out


@dataclass(frozen=True)
class Sample:
    """One look at the screen. ``key`` is compared with ``==`` (equal: same
    screen); ``busy`` says the machine's own signals report activity that
    will show; ``at`` is when the look began."""

    key: object
    busy: bool
    at: float
    payload: Any = None


class Probe(Protocol):
    """Looks at one screen. ``pause_s`` is the wait between two samples (0
    when a sample is itself slow, like a browser capture)."""

    pause_s: float

    async def sample(self) -> Sample: ...

    def frame(self, sample: Sample) -> Frame: ...

    def close(self) -> None:
        """Stop whatever the probe runs in the background."""


@dataclass(frozen=True)
class Settled:
    report: SettleReport
    frame: Frame | None = None


class Watch:
    """Started just before an action; :meth:`settle` after it.
    ``probe(since)`` gives the probe of the screen as it is after the action
    (None: a screen that does not move by itself, like the rendered
    terminal); ``capture`` takes a frame without watching. A screen that
    fails to be looked at (one of ``errors``: the browser went away) makes a
    report with an error and no frame, not a failed action."""

    def __init__(self, probe: Callable[[float], Probe | None],
                 capture: Callable[[], Awaitable[Frame]],
                 errors: tuple[type[Exception], ...] = (),
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._probe = probe
        self._capture = capture
        self._errors = errors
        self._clock = clock
        self.started = clock()

    async def settle(self, spec: Settle, *, frame: bool = False) -> Settled:
        start = self._clock()
        try:
            return await self._settle(spec, start, frame)
        except self._errors as exc:
            settled = False if spec.mode == "auto" else None
            return Settled(SettleReport(spec.mode, settled, self._ms_since(start),
                                        error=f"the screen could not be looked at: {exc}"))

    async def _settle(self, spec: Settle, start: float, frame: bool) -> Settled:
        if spec.mode == "fixed":
            await asyncio.sleep(spec.fixed_ms / 1000)
        probe = self._probe(self.started) if spec.mode == "auto" else None
        if probe is None:
            shot = await self._capture() if frame else None
            settled = True if spec.mode == "auto" else None
            return Settled(SettleReport(spec.mode, settled, self._ms_since(start)), shot)
        try:
            return await self._watch(probe, spec, start, frame)
        finally:
            probe.close()

    async def _watch(self, probe: Probe, spec: Settle, start: float, frame: bool) -> Settled:
        quiet, deadline = spec.quiet_ms / 1000, start + spec.cap_ms / 1000
        last_change, prev, changes = start, None, 0
        while True:
            try:
                async with asyncio.timeout(max(0.0, deadline - self._clock()) + quiet):
                    sample = await probe.sample()
            except TimeoutError:  # the screen did not even answer before the cap
                shot = probe.frame(prev) if frame and prev is not None else None
                return Settled(SettleReport("auto", False, self._ms_since(start), changes), shot)
            now = self._clock()
            changed = prev is not None and sample.key != prev.key
            changes += changed
            if changed:
                last_change = sample.at
            if sample.busy:
                last_change = now
            if prev is not None and not changed and not sample.busy \
                    and now - last_change >= quiet:
                return self._done(probe, sample, True, start, changes, frame)
            if now >= deadline:
                return self._done(probe, sample, False, start, changes, frame)
            prev = sample
            if probe.pause_s:
                await asyncio.sleep(min(probe.pause_s, max(0.0, deadline - now)))

    def _done(self, probe: Probe, sample: Sample, settled: bool, start: float, changes: int,
              frame: bool) -> Settled:
        report = SettleReport("auto", settled, self._ms_since(start), changes)
        return Settled(report, probe.frame(sample) if frame else None)

    def _ms_since(self, start: float) -> int:
        return int((self._clock() - start) * 1000)


async def until_changed(look: Callable[[], Any], before: Any,
                        differs: Callable[[Any, Any], bool], cap_ms: int,
                        every_s: float = 0.05,
                        clock: Callable[[], float] = time.monotonic) -> Any:
    """Look again (every ``every_s``) until what ``look`` sees differs from
    ``before`` or ``cap_ms`` has passed; returns the last look. For a change
    an app draws late — after the screen already looked still, as a
    spreadsheet does when typing opens its formula editor."""
    deadline = clock() + cap_ms / 1000
    seen = look()
    while not differs(before, seen) and clock() < deadline:
        await asyncio.sleep(every_s)
        seen = look()
    return seen
