"""The webhook outbox: deliveries written in the same transaction as the state
change they announce, claimed by dispatchers under a lease, and every attempt
recorded.

A delivery's ``payload`` column holds the exact JSON text that is sent and
signed; it is serialized once, here, and never rebuilt.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy import case, func, select, type_coerce, update
from sqlalchemy.ext.asyncio import AsyncConnection

from deckhand.core.clock import iso, utcnow
from deckhand.store.queue import LeasedQueue
from deckhand.store.records import from_row
from deckhand.store.tables import webhook_attempts, webhook_deliveries
from deckhand.store.types import UTCDateTime

PENDING = "pending"
DELIVERED = "delivered"
FAILED = "failed"

# Keys the envelope owns; a payload may not replace them.
_ENVELOPE_KEYS = frozenset({"id", "type", "created_at"})
_MAX_ERROR_CHARS = 1000


@dataclass(frozen=True, slots=True)
class Delivery:
    id: str
    account_id: str
    run_id: str | None
    url: str
    event_type: str
    payload: str  # the JSON text sent, byte for byte (UTF-8)
    secret_sealed: str
    status: str
    attempts: int
    next_attempt_at: datetime | None
    claimed_until: datetime | None
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None

    @property
    def body(self) -> bytes:
        return self.payload.encode()


@dataclass(frozen=True, slots=True)
class Attempt:
    delivery_id: str
    attempt: int
    attempted_at: datetime
    status_code: int | None
    error: str | None
    duration_ms: int


def delivery_id() -> str:
    return f"evt_{secrets.token_hex(12)}"


_delivery = partial(from_row, Delivery)
_attempt = partial(from_row, Attempt)


async def enqueue(
    conn: AsyncConnection,
    *,
    account_id: str,
    run_id: str | None,
    url: str,
    event_type: str,
    payload: dict[str, Any],
    secret_sealed: str,
) -> str:
    """Add a delivery to the outbox inside the caller's transaction; returns its id.

    The body sent is ``{"id", "type", "created_at", **payload}`` as compact JSON.
    """
    clash = _ENVELOPE_KEYS & payload.keys()
    if clash:
        raise ValueError(f"webhook payload may not set envelope keys: {sorted(clash)}")
    now = utcnow()
    new_id = delivery_id()
    body = json.dumps(
        {"id": new_id, "type": event_type, "created_at": iso(now), **payload},
        separators=(",", ":"), ensure_ascii=False,
    )
    await conn.execute(
        webhook_deliveries.insert().values(
            id=new_id, account_id=account_id, run_id=run_id, url=url, event_type=event_type,
            payload=body, secret_sealed=secret_sealed, status=PENDING, attempts=0,
            next_attempt_at=now, claimed_until=None, created_at=now,
        )
    )
    return new_id


# The outbox as a leased queue: a delivery is due while pending, once its
# next attempt time has come and no dispatcher's lease on it is live; a
# claim only sets the lease (the attempt is counted when it is recorded).
OUTBOX = LeasedQueue(
    webhook_deliveries, status="status", claimable_statuses=(PENDING,),
    lease_until="claimed_until", order_by=("next_attempt_at", "id"), due_at="next_attempt_at",
)


async def claim_due(
    conn: AsyncConnection, *, now: datetime, limit: int, lease_seconds: float
) -> list[Delivery]:
    """Lease up to ``limit`` due deliveries to the caller until now + lease,
    in the order they fell due. Concurrent dispatchers never claim the same
    delivery (see :mod:`deckhand.store.queue`)."""
    until = now + timedelta(seconds=lease_seconds)
    rows = await OUTBOX.claim_many(conn, now=now, lease_until=until, limit=limit)
    return [_delivery(r) for r in rows]


async def record_attempt(
    conn: AsyncConnection,
    delivery_id: str,
    *,
    attempt: int,
    status_code: int | None,
    error: str | None,
    duration_ms: int,
    delivered: bool,
    next_attempt_at: datetime | None,
    give_up: bool,
    attempted_at: datetime | None = None,
) -> bool:
    """Record attempt number ``attempt`` and move the delivery on.

    ``delivered`` → status delivered; else ``give_up`` → failed; else pending
    again at ``next_attempt_at``. The lease is released. Returns False (and
    records nothing) when the delivery is no longer pending at attempt - 1,
    i.e. another dispatcher recorded this attempt after our lease expired.
    """
    now = utcnow()
    if error is not None and len(error) > _MAX_ERROR_CHARS:
        error = error[: _MAX_ERROR_CHARS - 1] + "…"
    if delivered:
        status, next_at, delivered_at = DELIVERED, None, now
    elif give_up:
        status, next_at, delivered_at = FAILED, None, None
    else:
        if next_attempt_at is None:
            raise ValueError("a delivery that is retried needs next_attempt_at")
        status, next_at, delivered_at = PENDING, next_attempt_at, None
    c = webhook_deliveries.c
    result = await conn.execute(
        update(webhook_deliveries)
        .where(c.id == delivery_id, c.status == PENDING, c.attempts == attempt - 1)
        .values(
            attempts=attempt, last_status_code=status_code, last_error=error, status=status,
            delivered_at=delivered_at, next_attempt_at=next_at, claimed_until=None,
        )
    )
    if result.rowcount != 1:
        return False
    await conn.execute(
        webhook_attempts.insert().values(
            delivery_id=delivery_id, attempt=attempt, attempted_at=attempted_at or now,
            status_code=status_code, error=error, duration_ms=max(0, int(duration_ms)),
        )
    )
    return True


async def next_due_at(conn: AsyncConnection) -> datetime | None:
    """When the earliest pending delivery becomes claimable (None: nothing pending)."""
    c = webhook_deliveries.c
    ready = case(
        (c.claimed_until.is_not(None) & (c.claimed_until > c.next_attempt_at), c.claimed_until),
        else_=c.next_attempt_at,
    )
    value = (
        await conn.execute(
            select(type_coerce(func.min(ready), UTCDateTime)).where(c.status == PENDING)
        )
    ).scalar_one_or_none()
    return value


async def get(conn: AsyncConnection, delivery_id: str) -> Delivery | None:
    r = (
        await conn.execute(select(webhook_deliveries).where(webhook_deliveries.c.id == delivery_id))
    ).first()
    return _delivery(r) if r else None


async def list_for_run(conn: AsyncConnection, run_id: str) -> list[Delivery]:
    c = webhook_deliveries.c
    rows = (
        await conn.execute(
            select(webhook_deliveries).where(c.run_id == run_id).order_by(c.created_at, c.id)
        )
    ).all()
    return [_delivery(r) for r in rows]


async def attempts_for(conn: AsyncConnection, delivery_id: str) -> list[Attempt]:
    c = webhook_attempts.c
    rows = (
        await conn.execute(
            select(webhook_attempts).where(c.delivery_id == delivery_id).order_by(c.attempt)
        )
    ).all()
    return [_attempt(r) for r in rows]
