"""Stateful inference sessions (/v1/sessions): their settings, a bounded
trajectory of past predictions, counters, and a 2-hour idle lifetime that
each predict or reset renews. An expired session is gone: reads treat it as
missing and delete it (with its sealed BYOK key)."""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

from sqlalchemy import and_, delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from deckhand.core.clock import utcnow
from deckhand.errors import ErrorCode, NotFound
from deckhand.store.records import JSONObject, Session, from_row
from deckhand.store.tables import inference_sessions as t

IDLE_TTL = timedelta(hours=2)

def new_id() -> str:
    return f"ses_{secrets.token_hex(12)}"


async def insert(conn: AsyncConnection, values: dict[str, Any]) -> Session:
    now = utcnow()
    row = {"id": new_id(), "trajectory": [], "created_at": now, "expires_at": now + IDLE_TTL,
           **values}
    await conn.execute(t.insert().values(**row))
    return await get_owned(conn, row["id"], values["account_id"], values["mode"])


async def get_owned(conn: AsyncConnection, session_id: str, account_id: str,
                    mode: str) -> Session:
    row = (await conn.execute(select(t).where(
        t.c.id == session_id, t.c.account_id == account_id, t.c.mode == mode))).first()
    if row is None or row.expires_at <= utcnow():
        raise NotFound(f"Session {session_id} not found (unknown, deleted or expired).",
                       code=ErrorCode.SESSION_NOT_FOUND)
    return from_row(Session, row)


async def list_active(conn: AsyncConnection, account_id: str, mode: str) -> list[Session]:
    now = utcnow()
    await conn.execute(delete(t).where(t.c.account_id == account_id, t.c.mode == mode,
                                       t.c.expires_at <= now))
    rows = await conn.execute(select(t).where(
        and_(t.c.account_id == account_id, t.c.mode == mode)).order_by(t.c.created_at.desc()))
    return [from_row(Session, r) for r in rows]


async def record_step(conn: AsyncConnection, session: Session, entry: JSONObject, *,
                      credits: int, input_tokens: int, output_tokens: int) -> Session:
    """Append a prediction to the trajectory (keeping the last
    ``max_trajectory_length``), count it and renew the lifetime."""
    trajectory = [*list(session.trajectory or []), entry][-session.max_trajectory_length:]
    await conn.execute(update(t).where(t.c.id == session.id).values(
        trajectory=trajectory, step_count=t.c.step_count + 1,
        total_credits=t.c.total_credits + credits,
        input_tokens=t.c.input_tokens + input_tokens,
        output_tokens=t.c.output_tokens + output_tokens,
        expires_at=utcnow() + IDLE_TTL,
    ))
    return await get_owned(conn, session.id, session.account_id, session.mode)


async def reset(conn: AsyncConnection, session: Session) -> None:
    await conn.execute(update(t).where(t.c.id == session.id).values(
        trajectory=[], step_count=0, expires_at=utcnow() + IDLE_TTL))


async def remove(conn: AsyncConnection, session: Session) -> None:
    await conn.execute(delete(t).where(t.c.id == session.id))
