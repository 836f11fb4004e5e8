"""The credit ledger: every debit and top-up, and the wallet it moves."""

from __future__ import annotations

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from deckhand.core.clock import utcnow
from deckhand.store.tables import accounts, ledger_entries

# Built once: a step's transaction runs them every time.
_BALANCE = select(accounts.c.credits).where(accounts.c.id == bindparam("p_account"))
_DEBIT = (update(accounts).where(accounts.c.id == bindparam("p_account"))
          .values(credits=accounts.c.credits - bindparam("p_credits")))
_ENTRY = ledger_entries.insert()


async def balance(conn: AsyncConnection, account_id: str) -> int | None:
    """Credits left, or None for an unlimited wallet."""
    return (
        await conn.execute(_BALANCE, {"p_account": account_id})
    ).scalar()


async def take(conn: AsyncConnection, account_id: str, credits: int) -> tuple[int, int | None]:
    """Take ``credits`` from the wallet, at most what it holds. Returns
    (taken, balance after; None for an unlimited wallet)."""
    left = await balance(conn, account_id)
    if left is None:
        return credits, None
    taken = max(0, min(credits, left))
    if taken:
        await conn.execute(_DEBIT, {"p_account": account_id, "p_credits": taken})
    return taken, left - taken


async def debit_step(
    conn: AsyncConnection, *, account_id: str, mode: str, run_id: str, step: int, credits: int
) -> tuple[int, int | None]:
    """Charge one step (at most what the wallet holds). Returns (charged,
    balance after). The unique (run_id, step) entry makes it exactly-once."""
    charged, after = await take(conn, account_id, credits)
    await conn.execute(_ENTRY, {
        "account_id": account_id, "mode": mode, "run_id": run_id, "step": step,
        "kind": "run_step", "credits": charged, "balance_after": after, "created_at": utcnow(),
    })
    return charged, after


async def debit_call(
    conn: AsyncConnection, *, account_id: str, mode: str, kind: str, credits: int
) -> tuple[int, int | None]:
    """Charge one inference call (``kind``: its billing code), at most what the
    wallet holds. Returns (charged, balance after)."""
    charged, after = await take(conn, account_id, credits)
    await conn.execute(_ENTRY, {
        "account_id": account_id, "mode": mode, "run_id": None, "step": None, "kind": kind,
        "credits": charged, "balance_after": after, "created_at": utcnow(),
    })
    return charged, after
