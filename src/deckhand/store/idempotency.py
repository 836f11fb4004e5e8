"""Idempotency records: one row per (account, mode, key), reserved before the
operation runs and completed with its response."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from deckhand.core.clock import utcnow
from deckhand.store.tables import idempotency_records as t
from deckhand.store.upsert import insert_for

# A reservation still "processing" this long after it was made belongs to a
# process that died; the next request with the key takes it over.
STALE_PROCESSING = timedelta(minutes=10)


@dataclass(frozen=True, slots=True)
class IdempotencyRecord:
    key: str
    operation: str
    request_hash: str
    status: str  # processing | completed
    response_status: int | None
    response_body: str | None
    response_headers: dict[str, str] | None
    request_id: str
    created_at: datetime


def _record(r: Any) -> IdempotencyRecord:
    return IdempotencyRecord(
        key=r.key, operation=r.operation, request_hash=r.request_hash, status=r.status,
        response_status=r.response_status, response_body=r.response_body,
        response_headers=r.response_headers, request_id=r.request_id, created_at=r.created_at,
    )


def _where(account_id: str, mode: str, key: str):  # type: ignore[no-untyped-def]
    return and_(t.c.account_id == account_id, t.c.mode == mode, t.c.key == key)


async def reserve(
    conn: AsyncConnection,
    *,
    account_id: str,
    mode: str,
    key: str,
    operation: str,
    request_hash: str,
    request_id: str,
    ttl: timedelta,
) -> IdempotencyRecord | None:
    """Reserve the key for this request. None means the caller owns it now;
    otherwise the existing record is returned."""
    now = utcnow()
    await conn.execute(delete(t).where(_where(account_id, mode, key), t.c.expires_at < now))
    stmt = insert_for(conn, t).values(
        account_id=account_id, mode=mode, key=key, operation=operation,
        request_hash=request_hash, status="processing", request_id=request_id,
        created_at=now, expires_at=now + ttl,
    ).on_conflict_do_nothing(index_elements=["account_id", "mode", "key"])
    if (await conn.execute(stmt)).rowcount == 1:
        return None
    existing = await get(conn, account_id=account_id, mode=mode, key=key)
    assert existing is not None
    if (
        existing.status == "processing"
        and existing.request_hash == request_hash
        and existing.created_at < now - STALE_PROCESSING
    ):
        taken = await conn.execute(
            update(t)
            .where(_where(account_id, mode, key), t.c.created_at == existing.created_at)
            .values(request_id=request_id, created_at=now, expires_at=now + ttl)
        )
        if taken.rowcount == 1:
            return None
    return existing


async def complete(
    conn: AsyncConnection,
    *,
    account_id: str,
    mode: str,
    key: str,
    status: int,
    body: str,
    headers: dict[str, str],
) -> None:
    await conn.execute(
        update(t)
        .where(_where(account_id, mode, key))
        .values(status="completed", response_status=status, response_body=body,
                response_headers=headers)
    )


async def release(conn: AsyncConnection, *, account_id: str, mode: str, key: str) -> None:
    """Forget a reservation whose operation failed on our side, so a retry runs it."""
    await conn.execute(delete(t).where(_where(account_id, mode, key), t.c.status == "processing"))


async def get(
    conn: AsyncConnection, *, account_id: str, mode: str, key: str
) -> IdempotencyRecord | None:
    r = (
        await conn.execute(
            select(t).where(_where(account_id, mode, key), t.c.expires_at >= utcnow())
        )
    ).first()
    return _record(r) if r else None
