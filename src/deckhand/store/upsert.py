"""INSERT … ON CONFLICT for both backends."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection


def insert_for(conn: AsyncConnection, table: Table):  # type: ignore[no-untyped-def]
    """The dialect's INSERT construct (it has ``on_conflict_do_*``)."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


async def increment(
    conn: AsyncConnection, table: Table, keys: dict[str, Any], amounts: dict[str, int]
) -> None:
    """Add ``amounts`` to the row at ``keys``, creating it when missing."""
    stmt = insert_for(conn, table).values(**keys, **amounts)
    stmt = stmt.on_conflict_do_update(
        index_elements=list(keys),
        set_={name: table.c[name] + stmt.excluded[name] for name in amounts},
    )
    await conn.execute(stmt)
