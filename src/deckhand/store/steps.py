"""Agent steps: what the brain decided and what came of it, one row a step."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from deckhand.store.records import RunStep, from_row
from deckhand.store.tables import run_steps

_INSERT = run_steps.insert()  # built once: every step runs it

async def insert(
    conn: AsyncConnection,
    *,
    run_id: str,
    number: int,
    decision: dict[str, Any],
    results: list[dict[str, Any]],
    input_tokens: int,
    output_tokens: int,
    credits: int,
    started_at: datetime,
    finished_at: datetime,
    cache_creation_input_tokens: int = 0,
    cache_read_input_tokens: int = 0,
) -> None:
    await conn.execute(_INSERT, {
        "run_id": run_id, "number": number, "decision": decision, "results": results,
        "input_tokens": input_tokens, "output_tokens": output_tokens, "credits": credits,
        "started_at": started_at, "finished_at": finished_at,
        "cache_creation_input_tokens": cache_creation_input_tokens,
        "cache_read_input_tokens": cache_read_input_tokens,
    })


async def for_run(conn: AsyncConnection, run_id: str) -> list[RunStep]:
    rows = await conn.execute(
        select(run_steps).where(run_steps.c.run_id == run_id).order_by(run_steps.c.number)
    )
    return [from_row(RunStep, r) for r in rows]


async def set_human_note(conn: AsyncConnection, run_id: str, number: int, note: str) -> None:
    await conn.execute(
        update(run_steps)
        .where(run_steps.c.run_id == run_id, run_steps.c.number == number)
        .values(human_note=note)
    )


async def last_number(conn: AsyncConnection, run_id: str) -> int:
    from sqlalchemy import func

    n = (await conn.execute(
        select(func.max(run_steps.c.number)).where(run_steps.c.run_id == run_id)
    )).scalar()
    return int(n or 0)


async def page(conn: AsyncConnection, run_id: str, *, after: int,
               limit: int) -> tuple[list[RunStep], bool]:
    """The run's steps numbered above ``after``, at most ``limit``; and whether more follow."""
    rows = await conn.execute(
        select(run_steps).where(run_steps.c.run_id == run_id, run_steps.c.number > after)
        .order_by(run_steps.c.number).limit(limit + 1)
    )
    found = [from_row(RunStep, r) for r in rows]
    return found[:limit], len(found) > limit
