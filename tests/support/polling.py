"""The one way tests wait for something that happens in another task or process.

A test that waits polls: it checks, and if the answer is not yet the one it
wants, it waits a little and checks again, until a deadline. Doing that in one
place means every wait has a deadline (no test hangs until pytest's timeout),
and every timed-out wait says what it was waiting for and the last value it
saw, which is what one needs to tell a slow system from a wrong one.

``wait_until`` is for async tests (the check may be a plain function or a
coroutine function); ``wait_until_sync`` is for the synchronous fixtures that
start processes. Both share ``_Attempts``, which keeps the deadline, the last
value and the failure message.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

T = TypeVar("T")

EVERY = 0.05  # seconds between checks: fast enough for a test, light enough for 2 cores
_SHOWN = 2000  # characters of the last value kept in the failure message
_NOTHING = object()


def _nothing() -> str:
    return ""


class _Attempts:
    """One wait's deadline and the last value seen, shared by both variants."""

    def __init__(self, what: str, timeout: float, done: Callable[[Any], object],
                 details: Callable[[], str]) -> None:
        self.what, self.timeout, self.done, self.details = what, timeout, done, details
        self.deadline = time.monotonic() + timeout
        self.last: object = _NOTHING

    def settled(self, value: object) -> bool:
        """Record ``value``; whether it is the one awaited."""
        self.last = value
        return bool(self.done(value))

    def expired(self) -> bool:
        return time.monotonic() > self.deadline

    def failure(self) -> AssertionError:
        last = "nothing (never checked)" if self.last is _NOTHING else repr(self.last)
        if len(last) > _SHOWN:
            last = last[:_SHOWN] + "…"
        extra = self.details()
        return AssertionError(f"timed out after {self.timeout} s waiting for {self.what}; "
                              f"last seen: {last}" + (f"\n{extra}" if extra else ""))


async def wait_until(check: Callable[[], Awaitable[T]] | Callable[[], T], *, timeout: float,
                     what: str, done: Callable[[T], object] = bool, every: float = EVERY,
                     details: Callable[[], str] = _nothing) -> T:
    """Call ``check()`` (awaiting it if it returns an awaitable) until ``done``
    of its value is true (by default: the value is truthy), and return that
    value. After ``timeout`` seconds, fail with an AssertionError naming
    ``what`` was awaited, the last value seen and ``details()`` (logs, say).
    The check runs at least once, even with a timeout of 0."""
    attempts = _Attempts(what, timeout, done, details)
    while True:
        value = check()
        if inspect.isawaitable(value):
            value = await value
        if attempts.settled(value):
            return cast(T, value)
        if attempts.expired():
            raise attempts.failure()
        await asyncio.sleep(every)


def wait_until_sync(check: Callable[[], T], *, timeout: float, what: str,
                    done: Callable[[T], object] = bool, every: float = EVERY,
                    details: Callable[[], str] = _nothing) -> T:
    """``wait_until`` for synchronous code (a fixture starting a process):
    the same rules, blocking the thread between checks."""
    attempts = _Attempts(what, timeout, done, details)
    while True:
        value = check()
        if attempts.settled(value):
            return value
        if attempts.expired():
            raise attempts.failure()
        time.sleep(every)
