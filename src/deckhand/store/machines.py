"""Machine records: what a machine is, who owns it, where its agent listens.
Queries return :class:`~deckhand.store.records.Machine` and
:class:`~deckhand.store.records.Snapshot` records."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Row, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from deckhand.core.clock import utcnow
from deckhand.errors import InsufficientCredits, NotFound
from deckhand.store import ledger
from deckhand.store.records import Machine, Snapshot, from_row, maybe
from deckhand.store.tables import accounts, ledger_entries, machine_snapshots, machines

GONE = frozenset({"terminated", "deleting"})


async def insert(conn: AsyncConnection, values: dict[str, Any]) -> None:
    await conn.execute(machines.insert().values(**values))


async def get(conn: AsyncConnection, machine_id: str) -> Machine | None:
    return maybe(Machine, (await conn.execute(
        select(machines).where(machines.c.id == machine_id))).first())


async def get_owned(conn: AsyncConnection, machine_id: str, account_id: str,
                    mode: str) -> Machine:
    row = (
        await conn.execute(
            select(machines).where(machines.c.id == machine_id,
                                   machines.c.account_id == account_id, machines.c.mode == mode)
        )
    ).first()
    if row is None:
        raise NotFound(f"Machine {machine_id} not found.")
    return from_row(Machine, row)


async def list_owned(conn: AsyncConnection, account_id: str, mode: str,
                     limit: int) -> tuple[list[Machine], bool]:
    rows = _machines(await conn.execute(
        select(machines)
        .where(machines.c.account_id == account_id, machines.c.mode == mode,
               machines.c.status.not_in(GONE))
        .order_by(machines.c.created_at.desc(), machines.c.id.desc())
        .limit(limit + 1)
    ))
    return rows[:limit], len(rows) > limit


def _machines(rows: Iterable[Row[Any]]) -> list[Machine]:
    return [from_row(Machine, r) for r in rows]


async def set_fields(conn: AsyncConnection, machine_id: str, **values: Any) -> None:
    await conn.execute(update(machines).where(machines.c.id == machine_id).values(**values))


ACTIVE = ("creating", "provisioning", "starting", "running", "stopping", "restarting")


async def count_active(conn: AsyncConnection, account_id: str, mode: str) -> int:
    """Machines of the account that hold (or are getting) processes."""
    return int((await conn.execute(
        select(func.count()).select_from(machines).where(
            machines.c.account_id == account_id, machines.c.mode == mode,
            machines.c.status.in_(ACTIVE))
    )).scalar() or 0)


async def lock_account(conn: AsyncConnection, account_id: str) -> None:
    """Serialise machine creation per account (PostgreSQL row lock; SQLite
    write transactions are serial already)."""
    if conn.dialect.name == "postgresql":
        await conn.execute(select(accounts.c.id).where(accounts.c.id == account_id)
                           .with_for_update())


async def local_to_restore(conn: AsyncConnection) -> list[Machine]:
    """Local machines that should have a running agent (after a restart)."""
    return _machines(await conn.execute(
        select(machines).where(machines.c.provider == "local",
                               machines.c.status.in_(ACTIVE))
    ))


async def due_for_sweep(conn: AsyncConnection) -> list[Machine]:
    """Every machine that is not gone (the sweeper looks at TTLs, idleness
    and metering)."""
    return _machines(await conn.execute(
        select(machines).where(machines.c.status.not_in(GONE | {"error"}))
    ))


async def billable(conn: AsyncConnection, account_id: str, mode: str) -> list[Machine]:
    return _machines(await conn.execute(
        select(machines).where(
            machines.c.account_id == account_id, machines.c.mode == mode,
            machines.c.status.in_(("running", "starting", "stopping", "restarting",
                                   "stopped", "suspended")))
        .order_by(machines.c.created_at)
    ))


async def debit_runtime(conn: AsyncConnection, row: Machine, *, credits: int, carry: int,
                        since: datetime, kind: str = "machine_runtime") -> tuple[int, bool]:
    """Charge ``credits`` of runtime (at most what the wallet holds), record
    the ledger entry (the machine's segment number makes it exactly-once) and
    move the machine's metering segment to ``since``. Returns (charged,
    wallet ran dry)."""
    charged, after = await ledger.take(conn, row.account_id, credits)
    segment = row.billing_segments + 1
    if charged:
        await conn.execute(ledger_entries.insert().values(
            account_id=row.account_id, mode=row.mode, run_id=row.id, step=segment, kind=kind,
            credits=charged, balance_after=after, created_at=utcnow(),
        ))
    await conn.execute(update(machines).where(machines.c.id == row.id).values(
        billing_since=since, billing_carry=carry, billing_segments=segment,
        credits_billed=machines.c.credits_billed + charged,
    ))
    return charged, after is not None and charged < credits


async def charge_fee(conn: AsyncConnection, *, account_id: str, mode: str, machine_id: str,
                     credits: int, kind: str, number: int) -> int:
    """A one-time charge (a snapshot): all of it, or InsufficientCredits."""
    left = await ledger.balance(conn, account_id)
    if left is not None and left < credits:
        raise InsufficientCredits(f"A snapshot costs {credits} credits; {left} left.")
    _, after = await ledger.take(conn, account_id, credits)
    if credits:
        await conn.execute(ledger_entries.insert().values(
            account_id=account_id, mode=mode, run_id=machine_id, step=number, kind=kind,
            credits=credits, balance_after=after, created_at=utcnow()))
    return credits


# --------------------------------------------------------------------------- snapshots


async def insert_snapshot(conn: AsyncConnection, values: dict[str, Any]) -> None:
    await conn.execute(machine_snapshots.insert().values(**values))


async def count_snapshots(conn: AsyncConnection, machine_id: str) -> int:
    return int((await conn.execute(select(func.count()).select_from(machine_snapshots)
                                   .where(machine_snapshots.c.machine_id == machine_id))
                ).scalar() or 0)


async def find_snapshot(conn: AsyncConnection, account_id: str, mode: str,
                        snapshot_id: str | None) -> Snapshot | None:
    """The named snapshot of the account, or its most recent one."""
    q = select(machine_snapshots).where(machine_snapshots.c.account_id == account_id,
                                        machine_snapshots.c.mode == mode)
    if snapshot_id:
        q = q.where(machine_snapshots.c.id == snapshot_id)
    q = q.order_by(machine_snapshots.c.created_at.desc()).limit(1)
    return maybe(Snapshot, (await conn.execute(q)).first())
