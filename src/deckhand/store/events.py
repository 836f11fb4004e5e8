"""The per-run event log: append-only, numbered 1, 2, 3… without gaps."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from deckhand.core.clock import utcnow
from deckhand.store import runs as runs_store
from deckhand.store.tables import run_events

_INSERT = run_events.insert()  # built once: every step runs it

@dataclass(frozen=True)
class Event:
    seq: int
    type: str
    data: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "type": self.type, "data": self.data}


async def append(
    conn: AsyncConnection, run_id: str, items: list[tuple[str, dict[str, Any]]]
) -> list[Event]:
    """Append events in the caller's transaction (the one making the change)."""
    if not items:
        return []
    first = await runs_store.next_seqs(conn, run_id, len(items))
    return await write(conn, run_id, first, items)


async def write(
    conn: AsyncConnection, run_id: str, first: int, items: list[tuple[str, dict[str, Any]]]
) -> list[Event]:
    """Insert events numbered from ``first`` (reserved by the caller, see
    :func:`deckhand.store.runs.advance`)."""
    if not items:
        return []
    now = utcnow()
    out = [Event(first + i, t, d) for i, (t, d) in enumerate(items)]
    await conn.execute(
        _INSERT,
        [{"run_id": run_id, "seq": e.seq, "type": e.type, "data": e.data, "created_at": now}
         for e in out],
    )
    return out


async def after(conn: AsyncConnection, run_id: str, seq: int, limit: int = 500) -> list[Event]:
    rows = await conn.execute(
        select(run_events.c.seq, run_events.c.type, run_events.c.data)
        .where(run_events.c.run_id == run_id, run_events.c.seq > seq)
        .order_by(run_events.c.seq)
        .limit(limit)
    )
    return [Event(r.seq, r.type, r.data) for r in rows]
