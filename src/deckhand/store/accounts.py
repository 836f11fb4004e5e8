"""Accounts: who owns keys, machines and runs, and their credit wallet."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from functools import partial

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from deckhand import ids
from deckhand.core.clock import utcnow
from deckhand.errors import NotFound, ValidationFailed
from deckhand.store.records import from_row
from deckhand.store.tables import accounts


@dataclass(frozen=True, slots=True)
class Account:
    id: str
    name: str
    credits: int | None  # None = unlimited
    tier: str
    created_at: datetime


_row = partial(from_row, Account)


async def create(conn: AsyncConnection, name: str, credits: int | None = None) -> Account:
    if await find_by_name(conn, name) is not None:
        raise ValidationFailed(f"an account named {name!r} already exists")
    account = Account(id=ids.account_id(), name=name, credits=credits, tier="enterprise",
                      created_at=utcnow())
    await conn.execute(accounts.insert().values(**dataclasses.asdict(account)))
    return account


async def find_by_name(conn: AsyncConnection, name: str) -> Account | None:
    r = (await conn.execute(select(accounts).where(accounts.c.name == name))).first()
    return _row(r) if r else None


async def get(conn: AsyncConnection, account_id: str) -> Account:
    r = (await conn.execute(select(accounts).where(accounts.c.id == account_id))).first()
    if r is None:
        raise NotFound(f"account {account_id} not found")
    return _row(r)


async def resolve(conn: AsyncConnection, ref: str) -> Account:
    """An account by id or by name."""
    r = (
        await conn.execute(select(accounts).where((accounts.c.id == ref) | (accounts.c.name == ref)))
    ).first()
    if r is None:
        raise NotFound(f"no account with id or name {ref!r}")
    return _row(r)


async def list_all(conn: AsyncConnection) -> list[Account]:
    rows = (await conn.execute(select(accounts).order_by(accounts.c.created_at))).all()
    return [_row(r) for r in rows]


async def add_credits(conn: AsyncConnection, account_id: str, amount: int) -> Account:
    """Top up a finite wallet (an unlimited one stays unlimited)."""
    await conn.execute(
        update(accounts)
        .where(accounts.c.id == account_id, accounts.c.credits.is_not(None))
        .values(credits=accounts.c.credits + amount)
    )
    return await get(conn, account_id)


async def set_credits(conn: AsyncConnection, account_id: str, credits: int | None) -> Account:
    await conn.execute(update(accounts).where(accounts.c.id == account_id).values(credits=credits))
    return await get(conn, account_id)
