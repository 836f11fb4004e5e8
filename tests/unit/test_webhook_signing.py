"""Webhook signatures (the contract's `t=<ts>,v1=<hmac>` scheme), secrets and
the retry schedule."""

from __future__ import annotations

import hashlib
import hmac
import random
import re
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

from deckhand.config import Settings
from deckhand.events.webhooks import (
    MAX_BACKOFF_SECONDS,
    backoff_ceiling,
    backoff_delay,
    new_webhook_secret,
    parse_retry_after,
    sign,
    verify,
)

SECRET = "whsec_" + "ab" * 32
BODY = b'{"id":"evt_0123456789abcdef01234567","type":"run.completed","status":"succeeded"}'
T = 1_714_900_000


def test_header_format_and_value() -> None:
    header = sign(SECRET, BODY, T)
    m = re.fullmatch(r"t=(\d+),v1=([0-9a-f]{64})", header)
    assert m is not None
    assert int(m.group(1)) == T
    expected = hmac.new(SECRET.encode(), f"{T}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert m.group(2) == expected


def test_round_trip() -> None:
    assert verify(SECRET, BODY, sign(SECRET, BODY, T), now=T)
    assert verify(SECRET, BODY, sign(SECRET, BODY, T), now=T + 299)
    assert verify(SECRET, BODY, sign(SECRET, BODY, T), now=T - 299)


def test_tampered_body_or_wrong_secret_fails() -> None:
    header = sign(SECRET, BODY, T)
    assert not verify(SECRET, BODY + b" ", header, now=T)
    assert not verify(SECRET, BODY.replace(b"succeeded", b"failed"), header, now=T)
    assert not verify("whsec_" + "cd" * 32, BODY, header, now=T)


def test_tampered_timestamp_fails() -> None:
    digest = sign(SECRET, BODY, T).split(",v1=")[1]
    assert not verify(SECRET, BODY, f"t={T + 1},v1={digest}", now=T)


def test_expired_and_future_timestamps_fail() -> None:
    header = sign(SECRET, BODY, T)
    assert not verify(SECRET, BODY, header, now=T + 301)
    assert not verify(SECRET, BODY, header, now=T - 301)
    assert verify(SECRET, BODY, header, now=T + 3000, tolerance_seconds=3600)


def test_malformed_headers_fail() -> None:
    digest = sign(SECRET, BODY, T).split(",v1=")[1]
    for header in ["", "garbage", f"v1={digest}", f"t={T}", f"t=abc,v1={digest}",
                   f"t={T},v1=", f"t={T},v0={digest}", f"t={T},v1={digest[:-1]}"]:
        assert not verify(SECRET, BODY, header, now=T), header


def test_any_v1_entry_may_match() -> None:
    digest = sign(SECRET, BODY, T).split(",v1=")[1]
    assert verify(SECRET, BODY, f"t={T}, v1={'0' * 64}, v1={digest}", now=T)


def test_verify_defaults_to_the_clock() -> None:
    import time

    now = int(time.time())
    assert verify(SECRET, BODY, sign(SECRET, BODY, now))
    assert not verify(SECRET, BODY, sign(SECRET, BODY, now - 3600))


def test_new_webhook_secret() -> None:
    a, b = new_webhook_secret(), new_webhook_secret()
    assert re.fullmatch(r"whsec_[0-9a-f]{64}", a)
    assert a != b


# --- retry schedule ----------------------------------------------------------


def test_backoff_ceiling_grows_by_four_and_caps_at_three_hours() -> None:
    assert [backoff_ceiling(n, 10) for n in range(1, 6)] == [10, 40, 160, 640, 2560]
    assert backoff_ceiling(6, 10) == 10240
    assert backoff_ceiling(7, 10) == MAX_BACKOFF_SECONDS == 3 * 3600
    assert backoff_ceiling(10_000, 10) == MAX_BACKOFF_SECONDS


def test_backoff_delay_is_jittered_within_half_to_full() -> None:
    rng = random.Random(7)
    for n in range(1, 12):
        ceiling = backoff_ceiling(n, 10)
        for _ in range(200):
            d = backoff_delay(n, 10, rng)
            assert 0.5 * ceiling <= d <= ceiling


def test_default_schedule_makes_at_least_8_attempts_over_at_least_6_hours() -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    base, attempts = settings.webhook_retry_base_seconds, settings.webhook_max_attempts
    assert attempts >= 8
    # Worst case: every delay jittered down to its minimum (half the ceiling).
    shortest_span = sum(0.5 * backoff_ceiling(n, base) for n in range(1, attempts))
    assert shortest_span >= 6 * 3600, shortest_span / 3600
    # And with real jitter, many times over.
    rng = random.Random(1)
    for _ in range(500):
        span = sum(backoff_delay(n, base, rng) for n in range(1, attempts))
        assert span >= 6 * 3600


# --- Retry-After ---------------------------------------------------------------


NOW = datetime(2024, 5, 5, 12, 0, 0, tzinfo=UTC)


def test_retry_after_seconds() -> None:
    assert parse_retry_after("120", NOW) == NOW + timedelta(seconds=120)
    assert parse_retry_after(" 0 ", NOW) == NOW


def test_retry_after_http_date() -> None:
    when = NOW + timedelta(minutes=5)
    assert parse_retry_after(format_datetime(when, usegmt=True), NOW) == when


def test_retry_after_is_capped_and_garbage_ignored() -> None:
    assert parse_retry_after("999999999", NOW) == NOW + timedelta(hours=24)
    far = format_datetime(NOW + timedelta(days=30), usegmt=True)
    assert parse_retry_after(far, NOW) == NOW + timedelta(hours=24)
    for value in [None, "", "soon", "-5", "nan"]:
        assert parse_retry_after(value, NOW) is None
