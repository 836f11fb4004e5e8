"""API keys: created once, stored as an HMAC, looked up by that HMAC."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from deckhand import ids
from deckhand.auth import KEY_PREFIX_LEN, Principal, hash_key, key_mode
from deckhand.core.clock import utcnow
from deckhand.errors import NotFound
from deckhand.store.tables import accounts, api_keys

LAST_USED_RESOLUTION = timedelta(seconds=60)


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: str
    account_id: str
    name: str
    mode: str
    key_prefix: str
    scopes: tuple[str, ...]
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


def _row(m: Mapping[str, Any]) -> ApiKey:
    return ApiKey(
        id=m["id"], account_id=m["account_id"], name=m["name"], mode=m["mode"],
        key_prefix=m["key_prefix"], scopes=tuple(m["scopes"]), created_at=m["created_at"],
        last_used_at=m["last_used_at"], revoked_at=m["revoked_at"],
    )


async def create(
    conn: AsyncConnection,
    *,
    secret: bytes,
    account_id: str,
    name: str,
    test: bool,
    scopes: tuple[str, ...],
) -> tuple[ApiKey, str]:
    """Make a key; return its record and the raw key (shown once, never stored)."""
    raw = ids.api_key_secret(test)
    row = {
        "id": ids.key_id(),
        "account_id": account_id,
        "name": name,
        "mode": "test" if test else "live",
        "key_hash": hash_key(secret, raw),
        "key_prefix": raw[:KEY_PREFIX_LEN],
        "scopes": list(scopes),
        "created_at": utcnow(),
        "last_used_at": None,
        "revoked_at": None,
    }
    await conn.execute(api_keys.insert().values(**row))
    return _row(row), raw


async def authenticate(conn: AsyncConnection, *, secret: bytes, raw_key: str) -> Principal | None:
    """The principal for a raw key, or None when it is unknown or revoked."""
    mode = key_mode(raw_key)
    if mode is None:
        return None
    r = (
        await conn.execute(
            select(api_keys, accounts.c.tier)
            .join(accounts, accounts.c.id == api_keys.c.account_id)
            .where(api_keys.c.key_hash == hash_key(secret, raw_key))
        )
    ).first()
    if r is None or r.revoked_at is not None or r.mode != mode:
        return None
    return Principal(
        account_id=r.account_id, mode=r.mode, key_id=r.id, scopes=frozenset(r.scopes), tier=r.tier,
    )


async def touch(conn: AsyncConnection, key_id: str) -> None:
    """Record use, at most once a minute per key (keeps reads cheap)."""
    now = utcnow()
    await conn.execute(
        update(api_keys)
        .where(
            api_keys.c.id == key_id,
            (api_keys.c.last_used_at.is_(None))
            | (api_keys.c.last_used_at < now - LAST_USED_RESOLUTION),
        )
        .values(last_used_at=now)
    )


async def list_for(conn: AsyncConnection, account_id: str, mode: str) -> list[ApiKey]:
    rows = (
        await conn.execute(
            select(api_keys)
            .where(
                api_keys.c.account_id == account_id,
                api_keys.c.mode == mode,
                api_keys.c.revoked_at.is_(None),
            )
            .order_by(api_keys.c.created_at.desc(), api_keys.c.id)
        )
    ).all()
    return [_row(dict(r._mapping)) for r in rows]


async def revoke(conn: AsyncConnection, account_id: str, mode: str, key_id: str) -> None:
    result = await conn.execute(
        update(api_keys)
        .where(
            api_keys.c.id == key_id,
            api_keys.c.account_id == account_id,
            api_keys.c.mode == mode,
            api_keys.c.revoked_at.is_(None),
        )
        .values(revoked_at=utcnow())
    )
    if result.rowcount == 0:
        raise NotFound(f"API key {key_id} not found")


async def principal_by_id(conn: AsyncConnection, key_id: str) -> Principal | None:
    """The principal of a key by its id (a dashboard session names one), or
    None when it is unknown or revoked."""
    r = (
        await conn.execute(
            select(api_keys, accounts.c.tier)
            .join(accounts, accounts.c.id == api_keys.c.account_id)
            .where(api_keys.c.id == key_id)
        )
    ).first()
    if r is None or r.revoked_at is not None:
        return None
    return Principal(
        account_id=r.account_id, mode=r.mode, key_id=r.id, scopes=frozenset(r.scopes), tier=r.tier,
    )
