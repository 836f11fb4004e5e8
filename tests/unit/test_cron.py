"""core/cron.py: fields, presets, refusals, and the DST rule with a frozen
clock (a skipped local time fires once, a repeated one fires once)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from deckhand.core import cron
from deckhand.errors import ValidationFailed

NY = cron.zone("America/New_York")


def firings(expr: str, start: datetime, count: int, tz: object = NY) -> list[datetime]:
    c, out, t = cron.parse(expr), [], start
    for _ in range(count):
        nxt = cron.next_after(c, tz, t)  # type: ignore[arg-type]
        assert nxt is not None
        out.append(nxt)
        t = nxt
    return out


def test_a_daily_0230_fires_once_on_the_day_new_york_skips_it() -> None:
    # 2026-03-08: clocks jump from 02:00 EST to 03:00 EDT
    got = firings("30 2 * * *", datetime(2026, 3, 7, 12, tzinfo=UTC), 3)
    local = [g.astimezone(NY) for g in got]
    assert [(d.day, d.hour, d.minute) for d in local] == [(8, 3, 30), (9, 2, 30), (10, 2, 30)]
    assert len({d.date() for d in local}) == 3


def test_a_time_in_the_repeated_hour_fires_once() -> None:
    # 2026-11-01: 01:00-02:00 happens twice (EDT, then EST)
    got = firings("30 1 * * *", datetime(2026, 10, 31, 12, tzinfo=UTC), 2)
    assert got[0] == datetime(2026, 11, 1, 5, 30, tzinfo=UTC)  # the first 01:30 (EDT)
    assert got[1] == datetime(2026, 11, 2, 6, 30, tzinfo=UTC)  # the next day (EST)
    every = firings("*/30 * * * *", datetime(2026, 11, 1, 4, 50, tzinfo=UTC), 4)
    local = [g.astimezone(NY).strftime("%H:%M%z") for g in every]
    assert local == ["01:00-0400", "01:30-0400", "02:00-0500", "02:30-0500"]


def test_every_15_minutes_stays_every_15_minutes_across_spring_forward() -> None:
    got = firings("*/15 * * * *", datetime(2026, 3, 8, 6, 40, tzinfo=UTC), 6)
    gaps = {(b - a) for a, b in zip(got, got[1:], strict=False)}
    assert gaps == {timedelta(minutes=15)}


def test_presets_and_six_fields() -> None:
    assert cron.preset_expression("every_6_hours", time="08:20") == "20 2,8,14,20 * * *"
    assert cron.preset_expression("monthly", time="07:05", day_of_month=3) == "5 7 3 * *"
    assert cron.preset_expression("weekly") == "0 0 * * 1"
    utc = cron.zone("UTC")
    t = datetime(2026, 12, 7, 12, 0, 0, 500_000, tzinfo=UTC)
    assert cron.next_after(cron.parse("*/2 * * * * *"), utc, t) == t.replace(
        second=2, microsecond=0)
    assert cron.next_after(cron.parse("0 9 * * MON-FRI"), utc, t) == datetime(
        2026, 12, 8, 9, tzinfo=UTC)
    # both day fields restricted: either matches (classic cron)
    assert cron.next_after(cron.parse("0 0 13 * 5"), utc, t) == datetime(
        2026, 12, 11, tzinfo=UTC)
    leap = cron.next_after(cron.parse("0 0 29 2 *"), utc, t)
    assert leap == datetime(2028, 2, 29, tzinfo=UTC)


@pytest.mark.parametrize(("expr", "word"), [
    ("61 * * * *", "minute"), ("0 0 31 2 *", "never"), ("0 0 31 2,4,6 *", "never"),
    ("* * *", "5 or 6"), ("*/0 * * * *", "step"), ("5-1 * * * *", "reversed"),
    ("0 24 * * *", "hour"), ("0 0 * 13 *", "month"), ("x * * * *", "minute"),
])
def test_refused(expr: str, word: str) -> None:
    with pytest.raises(ValidationFailed) as exc:
        cron.parse(expr)
    assert word in exc.value.message and exc.value.message.startswith("cron:")


def test_timing_refusals_name_the_field() -> None:
    now = datetime(2026, 12, 7, tzinfo=UTC)
    base = {"frequency": "daily", "cron": None, "timezone": "UTC", "time": None,
            "day_of_week": None, "day_of_month": None, "run_at": None, "now": now}
    for change, field in [({"timezone": "No/Where"}, "timezone"), ({"time": "7:5"}, "time"),
                          ({"frequency": "custom"}, "cron"),
                          ({"frequency": None, "run_at": now}, "run_at"),
                          ({"run_at": now + timedelta(hours=1)}, "run_at"),
                          ({"frequency": None}, "frequency")]:
        with pytest.raises(ValidationFailed) as exc:
            cron.timing(**{**base, **change})  # type: ignore[arg-type]
        assert exc.value.message.startswith(field + ":"), (change, exc.value.message)
    once = cron.timing(**{**base, "frequency": None,  # type: ignore[arg-type]
                          "run_at": now + timedelta(hours=1)})
    assert once.frequency == "once" and once.cron == ""
