"""The adaptive settle's decision, on a scripted screen and a clock that moves
only when the screen is looked at (the real screens are in
tests/integration/test_step_settle.py)."""

from __future__ import annotations

import pytest

from deckhand.machine_agent.desktop import Frame
from deckhand.machine_agent.settle import (
    Sample,
    Settle,
    SettleError,
    SettlePolicy,
    Watch,
    until_changed,
)

pytestmark = pytest.mark.asyncio
LOOK_S = 0.010  # each look at the scripted screen takes 10 ms of the fake clock


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class ScriptedScreen:
    """Shows ``keys[i]`` at the i-th look (the last one for ever after);
    ``busy`` looks report activity."""

    pause_s = 0.0

    def __init__(self, clock: Clock, keys: list[str], busy: set[int] | None = None,
                 fail_at: int | None = None) -> None:
        self.clock, self.keys, self.busy, self.fail_at = clock, keys, busy or set(), fail_at
        self.looks = 0
        self.closed = False

    async def sample(self) -> Sample:
        i = self.looks
        if i == self.fail_at:
            raise ConnectionError("the screen went away")
        self.looks += 1
        at = self.clock.now
        self.clock.now += LOOK_S
        key = self.keys[min(i, len(self.keys) - 1)]
        return Sample(key=key, busy=i in self.busy, at=at, payload=key)

    def frame(self, sample: Sample) -> Frame:
        return Frame(str(sample.payload).encode(), 1, 1, "test")

    def close(self) -> None:
        self.closed = True


def _watch(screen: ScriptedScreen, clock: Clock) -> Watch:
    async def capture() -> Frame:
        return Frame(b"now", 1, 1, "test")

    return Watch(lambda since: screen, capture, errors=(ConnectionError,), clock=clock)


AUTO = Settle("auto", quiet_ms=60, cap_ms=1000)


async def test_a_still_screen_settles_after_the_quiet_period() -> None:
    clock = Clock()
    screen = ScriptedScreen(clock, ["a"])
    done = await _watch(screen, clock).settle(AUTO, frame=True)
    assert done.report.settled is True and done.report.changes == 0
    assert 60 <= done.report.waited_ms < 80 and done.frame is not None
    assert screen.closed


async def test_the_frame_returned_is_the_last_one_after_the_changes_stop() -> None:
    clock = Clock()
    screen = ScriptedScreen(clock, ["a", "b", "c", "d", "e", "final"])
    done = await _watch(screen, clock).settle(AUTO, frame=True)
    assert done.report.settled is True and done.report.changes == 5
    assert done.frame is not None and done.frame.jpeg == b"final"
    assert done.report.waited_ms >= 50 + 60  # the last change at the 6th look, then quiet


async def test_busy_signals_hold_the_settle_even_when_frames_do_not_change() -> None:
    clock = Clock()
    screen = ScriptedScreen(clock, ["a"], busy=set(range(20)))
    done = await _watch(screen, clock).settle(AUTO)
    assert done.report.settled is True and done.report.waited_ms >= 200 + 60


async def test_a_screen_that_never_stops_changing_returns_at_the_cap_unsettled() -> None:
    clock = Clock()
    screen = ScriptedScreen(clock, [str(i) for i in range(1000)])
    done = await _watch(screen, clock).settle(Settle("auto", quiet_ms=60, cap_ms=300),
                                              frame=True)
    assert done.report.settled is False and 300 <= done.report.waited_ms < 320
    assert done.report.changes >= 29 and done.frame is not None


async def test_none_and_fixed_do_not_watch() -> None:
    clock = Clock()
    screen = ScriptedScreen(clock, ["a"])
    done = await _watch(screen, clock).settle(Settle("none"), frame=True)
    assert done.report.as_dict() == {"mode": "none", "settled": None, "waited_ms": 0,
                                     "changes": 0}
    assert done.frame == Frame(b"now", 1, 1, "test") and screen.looks == 0
    done = await _watch(screen, clock).settle(Settle("fixed", fixed_ms=5))
    assert done.report.mode == "fixed" and done.report.settled is None and screen.looks == 0


async def test_a_screen_that_fails_to_answer_is_a_report_not_an_exception() -> None:
    clock = Clock()
    screen = ScriptedScreen(clock, ["a", "b"], fail_at=1)
    done = await _watch(screen, clock).settle(AUTO, frame=True)
    assert done.report.settled is False and done.frame is None
    assert "went away" in (done.report.error or "") and screen.closed


@pytest.mark.parametrize(("value", "want"), [
    (None, Settle("auto", 60, 3000)),
    ("auto", Settle("auto", 60, 3000)),
    ("NONE", Settle("none", 60, 3000)),
    (250, Settle("fixed", 60, 3000, 250)),
    ("250ms", Settle("fixed", 60, 3000, 250)),
    ({"cap_ms": 400}, Settle("auto", 60, 400)),
    ({"mode": "auto", "quiet_ms": 100, "cap_ms": 500}, Settle("auto", 100, 500)),
    ({"ms": 30}, Settle("fixed", 60, 3000, 30)),
])
async def test_the_settle_parameter(value: object, want: Settle) -> None:
    assert SettlePolicy(60, 3000).resolve(value) == want


@pytest.mark.parametrize("value", [True, "sometimes", -1, 60_001, {"mode": "slow"},
                                   {"cap_ms": "1s"}, {"quiet_ms": 0}, {"wait": 1}, [1]])
async def test_a_settle_parameter_that_means_nothing_is_refused(value: object) -> None:
    with pytest.raises(SettleError, match="settle|_ms"):
        SettlePolicy().resolve(value)


async def test_until_changed_looks_again_until_a_late_change_or_the_cap() -> None:
    clock = Clock()
    frames = iter(["a", "a", "a", "b", "c"])

    def look() -> str:
        clock.now += LOOK_S
        return next(frames)

    # the third look again sees the change
    assert await until_changed(look, "a", str.__ne__, cap_ms=1000, every_s=0,
                               clock=clock) == "b"
    # nothing changes: the last look once the cap has passed
    still = Clock()

    def same() -> str:
        still.now += LOOK_S
        return "a"

    started = still.now
    assert await until_changed(same, "a", str.__ne__, cap_ms=100, every_s=0,
                               clock=still) == "a"
    assert 0.1 <= still.now - started <= 0.1 + 2 * LOOK_S
