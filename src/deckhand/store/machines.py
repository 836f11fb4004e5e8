"""Machine records: what a machine is, who owns it, where its agent listens."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from deckhand.errors import NotFound
from deckhand.store.tables import machines

MachineRow = Row[Any]
GONE = frozenset({"terminated", "deleting"})


async def insert(conn: AsyncConnection, values: dict[str, Any]) -> None:
    await conn.execute(machines.insert().values(**values))


async def get(conn: AsyncConnection, machine_id: str) -> MachineRow | None:
    return (await conn.execute(select(machines).where(machines.c.id == machine_id))).first()


async def get_owned(conn: AsyncConnection, machine_id: str, account_id: str,
                    mode: str) -> MachineRow:
    row = (
        await conn.execute(
            select(machines).where(machines.c.id == machine_id,
                                   machines.c.account_id == account_id, machines.c.mode == mode)
        )
    ).first()
    if row is None:
        raise NotFound(f"Machine {machine_id} not found.")
    return row


async def list_owned(conn: AsyncConnection, account_id: str, mode: str,
                     limit: int) -> tuple[list[MachineRow], bool]:
    rows = list((await conn.execute(
        select(machines)
        .where(machines.c.account_id == account_id, machines.c.mode == mode,
               machines.c.status.not_in(GONE))
        .order_by(machines.c.created_at.desc(), machines.c.id.desc())
        .limit(limit + 1)
    )).all())
    return rows[:limit], len(rows) > limit


async def set_fields(conn: AsyncConnection, machine_id: str, **values: Any) -> None:
    await conn.execute(update(machines).where(machines.c.id == machine_id).values(**values))


async def live_local(conn: AsyncConnection) -> list[MachineRow]:
    """Local machines that should have a running agent."""
    return list((await conn.execute(
        select(machines).where(machines.c.provider == "local",
                               machines.c.status.in_(("creating", "running")))
    )).all())
