"""Webhook triggers: the signature (``Coasty-Signature: t=<unix>,v1=<hex
HMAC-SHA256(secret, "<t>.<raw body>")>``, a 5-minute replay window), the
60 s dedup of identical bodies, the per-minute rate limit, and the firing
(the body becomes the run's triggered context). See docs/schedules.md."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncConnection

from deckhand import ids
from deckhand.engine.schedule_fire import Firer
from deckhand.errors import DeckhandError, ErrorCode
from deckhand.store import schedules as schedules_store
from deckhand.store import triggers as triggers_store
from deckhand.store.records import JSONObject, Schedule, Trigger

REPLAY_WINDOW_SECONDS = 300
DEDUP_SECONDS = 60
RATE_WINDOW_SECONDS = 60
MAX_BODY_BYTES = 1024 * 1024


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The header value a sender puts on ``body`` (also what tests send)."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def signature_ok(secret: str, header: str | None, body: bytes, now: datetime) -> bool:
    """Whether ``header`` signs ``body`` with ``secret`` within the replay window."""
    if not header:
        return False
    timestamp: int | None = None
    given: list[str] = []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t" and value.isdigit():
            timestamp = int(value)
        elif name == "v1":
            given.append(value)
    if timestamp is None or not given:
        return False
    if abs(now.timestamp() - timestamp) > REPLAY_WINDOW_SECONDS:
        return False
    want = sign(secret, timestamp, body).rpartition("v1=")[2]
    return any(hmac.compare_digest(want, g) for g in given)


def body_context(body: bytes, content_type: str | None) -> JSONObject:
    """The triggered context a delivery's body gives its run."""
    if not body:
        return {}
    try:
        text = body.decode()
    except UnicodeDecodeError:
        return {"body_base64": base64.b64encode(body).decode()}
    try:
        value = json.loads(text)
    except ValueError:
        return {"body": text}
    return value if isinstance(value, dict) else {"body": value}


@dataclass(frozen=True)
class Received:
    run_id: str | None  # the firing's id (its ScheduleRunRecord)
    deduplicated: bool
    status: str


async def receive(conn: AsyncConnection, firer: Firer, trigger: Trigger, schedule: Schedule,
                  body: bytes, content_type: str | None, now: datetime) -> Received:
    """Fire ``schedule`` for a verified delivery, unless it repeats one of the
    last 60 s (deduplicated) or the trigger's rate limit is spent (429)."""
    await triggers_store.lock(conn, trigger.id)  # one delivery of a trigger at a time
    digest = hashlib.sha256(body).hexdigest()
    window = now - timedelta(seconds=max(DEDUP_SECONDS, RATE_WINDOW_SECONDS))
    recent = await triggers_store.recent_receipts(conn, trigger.id, window)
    dedup_since = now - timedelta(seconds=DEDUP_SECONDS)
    for h, at, firing_id in recent:
        if h == digest and at >= dedup_since:
            return Received(run_id=firing_id, deduplicated=True, status="deduplicated")
    in_window = [at for _, at, _ in recent if at >= now - timedelta(seconds=RATE_WINDOW_SECONDS)]
    if len(in_window) >= trigger.rate_limit_per_minute:
        wait = (in_window[0] + timedelta(seconds=RATE_WINDOW_SECONDS) - now).total_seconds()
        retry = max(1, math.ceil(wait))
        raise DeckhandError(f"This webhook accepts {trigger.rate_limit_per_minute} deliveries "
                            "a minute; wait Retry-After seconds.", code=ErrorCode.RATE_LIMITED,
                            retry_after=retry)
    if not schedule.enabled:  # a paused schedule: the delivery is recorded, nothing runs
        firing_id = ids.new_uuid()
        await schedules_store.insert_firing(conn, {
            "id": firing_id, "schedule_id": schedule.id, "account_id": schedule.account_id,
            "mode": schedule.mode, "run_id": None, "status": "skipped", "trigger": "webhook",
            "error": f"Schedule {schedule.id} is paused.", "context": None, "depth": 0,
            "executed_at": now})
        status = "skipped"
    else:
        fired = await firer.fire(conn, schedule, trigger="webhook", at=now,
                                 context=body_context(body, content_type))
        firing_id, status = fired.firing.id, fired.firing.status
    await triggers_store.add_receipt(conn, trigger.id, digest, firing_id, now,
                                     prune_before=window)
    return Received(run_id=firing_id, deduplicated=False, status=status)

