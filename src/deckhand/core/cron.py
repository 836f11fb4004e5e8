"""When a schedule fires: cron expressions (5 fields, or 6 with seconds
first), the contract's presets, time zones, and the next firing after a time.

Times are wall-clock times in the schedule's zone (docs/schedules.md):

- a local time that does not exist (the hour a spring-forward skips) fires at
  the same distance past the transition, once (02:30 in New York on the day
  clocks jump from 02:00 to 03:00 fires at 03:30 EDT);
- a local time that happens twice (the hour a fall-back repeats) fires once,
  at its first occurrence.

Pure functions over aware UTC datetimes; nothing here reads the clock.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from deckhand.errors import ValidationFailed

PRESETS = ("every_15_minutes", "every_30_minutes", "hourly", "every_6_hours",
           "every_12_hours", "daily", "weekly", "monthly", "custom")
_NAMES = {
    "jan": 1, "feb": 2, "mar": 3, "apr": 4, "may": 5, "jun": 6, "jul": 7, "aug": 8,
    "sep": 9, "oct": 10, "nov": 11, "dec": 12,
    "sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6,
}
# (name, low, high) of each field of a 6-field expression, seconds first.
_FIELDS = (("second", 0, 59), ("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31),
           ("month", 1, 12), ("day of week", 0, 7))
_TIME_RE = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
# Far enough to reach a 29 February from any year (2096 -> 2104 skips one).
_HORIZON_DAYS = 366 * 9


@dataclass(frozen=True, slots=True)
class Cron:
    """A parsed expression: the values each field allows."""

    expression: str
    seconds: tuple[int, ...]
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    any_day: bool  # day of month was *
    any_weekday: bool  # day of week was *

    def matches_day(self, d: date) -> bool:
        if d.month not in self.months:
            return False
        dom = d.day in self.days
        dow = (d.weekday() + 1) % 7 in self.weekdays
        if self.any_day and self.any_weekday:
            return True
        if self.any_day:
            return dow
        if self.any_weekday:
            return dom
        return dom or dow  # both restricted: either (as cron has always done)


def _value(token: str, low: int, high: int, what: str, field: str) -> int:
    raw = _NAMES.get(token.lower()) if not token.isdigit() else int(token)
    if raw is None or not low <= raw <= high:
        raise ValidationFailed(f"{field}: {what} value {token!r} is outside {low}-{high}.")
    return raw


def _field(text: str, low: int, high: int, what: str, field: str) -> tuple[set[int], bool]:
    out: set[int] = set()
    star = False
    for part in text.split(","):
        rng, _, step_text = part.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) == 0:
                raise ValidationFailed(f"{field}: bad step {step_text!r} in the {what} field.")
            step = int(step_text)
        if rng in ("*", "?"):
            start, end = low, high
            star = star or not step_text
        elif "-" in rng:
            a, _, b = rng.partition("-")
            start, end = _value(a, low, high, what, field), _value(b, low, high, what, field)
            if start > end:
                raise ValidationFailed(f"{field}: range {rng!r} of the {what} field is reversed.")
        else:
            start = _value(rng, low, high, what, field)
            end = high if step_text else start
        out.update(range(start, end + 1, step))
    return out, star


def parse(expression: str, field: str = "cron") -> Cron:
    """A 5-field (minute hour dom month dow) or 6-field (second first)
    expression; a 4xx naming ``field`` when it is malformed or can never fire."""
    if field == "cron":
        return _parse_cached(expression)
    return _parse(expression, field)


@lru_cache(maxsize=4096)
def _parse_cached(expression: str) -> Cron:
    return _parse(expression, "cron")  # (an error is raised again each time, not cached)


def _parse(expression: str, field: str) -> Cron:
    parts = expression.split()
    if len(parts) == 5:
        parts = ["0", *parts]
    if len(parts) != 6:
        raise ValidationFailed(f"{field}: a cron expression has 5 or 6 fields, "
                               f"not {len(expression.split())}.")
    values: list[set[int]] = []
    stars: list[bool] = []
    for text, (what, low, high) in zip(parts, _FIELDS, strict=True):
        try:
            got, star = _field(text, low, high, what, field)
        except ValueError as exc:
            raise ValidationFailed(f"{field}: bad {what} field {text!r}.") from exc
        values.append(got)
        stars.append(star)
    weekdays = frozenset(v % 7 for v in values[5])
    cron = Cron(expression=expression, seconds=tuple(sorted(values[0])),
                minutes=tuple(sorted(values[1])), hours=tuple(sorted(values[2])),
                days=frozenset(values[3]), months=frozenset(values[4]), weekdays=weekdays,
                any_day=stars[3], any_weekday=stars[5])
    if not cron.any_day and cron.any_weekday and not any(
            d <= calendar.monthrange(2024, m)[1] for m in cron.months for d in cron.days):
        raise ValidationFailed(f"{field}: {expression!r} can never fire (no month has that day).")
    return cron


def zone(name: str, field: str = "timezone") -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, IsADirectoryError) as exc:
        raise ValidationFailed(f"{field}: unknown time zone {name!r} (use an IANA name such "
                               "as 'America/New_York' or 'UTC').") from exc


def parse_time(value: str | None, field: str = "time") -> tuple[int, int]:
    if value is None:
        return 0, 0
    m = _TIME_RE.match(value)
    if m is None:
        raise ValidationFailed(f"{field}: {value!r} is not a 24-hour HH:MM time.")
    return int(m.group(1)), int(m.group(2))


def preset_expression(frequency: str, *, cron: str | None = None, time: str | None = None,
                      day_of_week: int | None = None, day_of_month: int | None = None) -> str:
    """The cron expression of a preset (``custom``: ``cron`` itself)."""
    if frequency not in PRESETS:
        raise ValidationFailed(f"frequency: {frequency!r} is not one of {', '.join(PRESETS)}.")
    if frequency == "custom":
        if not cron:
            raise ValidationFailed("cron: frequency 'custom' needs a cron expression.")
        return cron
    hour, minute = parse_time(time)
    if frequency == "every_15_minutes":
        return "*/15 * * * *"
    if frequency == "every_30_minutes":
        return "*/30 * * * *"
    if frequency == "hourly":
        return f"{minute} * * * *"
    if frequency in ("every_6_hours", "every_12_hours"):
        every = 6 if frequency == "every_6_hours" else 12
        hours = ",".join(str(h) for h in range(hour % every, 24, every))
        return f"{minute} {hours} * * *"
    if frequency == "daily":
        return f"{minute} {hour} * * *"
    if frequency == "weekly":
        return f"{minute} {hour} * * {1 if day_of_week is None else day_of_week}"
    return f"{minute} {hour} {1 if day_of_month is None else day_of_month} * *"


def next_after(cron: Cron, tz: ZoneInfo, after: datetime) -> datetime | None:
    """The first firing strictly after ``after`` (aware), in UTC; None when
    there is none within nine years."""
    local = after.astimezone(tz).replace(tzinfo=None)
    earliest = local - timedelta(hours=3)  # a DST shift moves wall time by at most that
    day = earliest.date()
    for _ in range(_HORIZON_DAYS):
        if cron.matches_day(day):
            first_day = day == earliest.date()
            for h in cron.hours:
                if first_day and h < earliest.hour:
                    continue
                for m in cron.minutes:
                    for s in cron.seconds:
                        wall = datetime(day.year, day.month, day.day, h, m, s)
                        if wall < earliest:
                            continue
                        at = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
                        if at > after:
                            return at
        day += timedelta(days=1)
    return None


@dataclass(frozen=True, slots=True)
class Timing:
    """When a schedule fires, checked: its frequency, expression ("" for a
    one-shot) and first due time."""

    frequency: str
    cron: str
    next_run_at: datetime


def timing(*, frequency: str | None, cron: str | None, timezone: str, time: str | None,
           day_of_week: int | None, day_of_month: int | None, run_at: datetime | None,
           now: datetime) -> Timing:
    """A schedule's timing from the contract's fields; a 4xx naming the field
    that is wrong."""
    tz = zone(timezone)
    if run_at is not None:
        if frequency is not None:
            raise ValidationFailed("run_at: a one-shot run_at and a frequency exclude each "
                                   "other; send one of them.")
        if run_at.tzinfo is None:
            run_at = run_at.replace(tzinfo=UTC)
        if run_at <= now:
            raise ValidationFailed(f"run_at: {run_at.isoformat()} is in the past.")
        return Timing(frequency="once", cron="", next_run_at=run_at.astimezone(UTC))
    if frequency is None:
        raise ValidationFailed("frequency: give a frequency (or a one-shot run_at).")
    parse_time(time)
    expression = preset_expression(frequency, cron=cron, time=time, day_of_week=day_of_week,
                                   day_of_month=day_of_month)
    first = next_after(parse(expression), tz, now)
    if first is None:
        raise ValidationFailed(f"cron: {expression!r} can never fire.")
    return Timing(frequency=frequency, cron=expression, next_run_at=first)
