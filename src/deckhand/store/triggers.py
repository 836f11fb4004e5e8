"""Triggers of schedules (table ``schedule_triggers``) and the webhook
receipts behind the 60 s dedup and the per-minute rate limit
(``webhook_receipts``)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncConnection

from deckhand.errors import NotFound
from deckhand.store.records import Trigger, from_row, maybe
from deckhand.store.tables import schedule_triggers as triggers
from deckhand.store.tables import webhook_receipts as receipts

SECRET_PURPOSE = "schedule-webhook"
# Which run endings fire a chain trigger's event.
EVENT_ENDINGS = {
    "on_complete": frozenset({"succeeded"}),
    "on_failure": frozenset({"failed", "timed_out"}),
    "on_any": frozenset({"succeeded", "failed", "timed_out", "cancelled"}),
}


async def insert(conn: AsyncConnection, values: dict[str, object]) -> Trigger:
    await conn.execute(triggers.insert().values(**values))
    found = await get(conn, str(values["id"]))
    assert found is not None
    return found


async def get(conn: AsyncConnection, trigger_id: str) -> Trigger | None:
    return maybe(Trigger, (await conn.execute(
        select(triggers).where(triggers.c.id == trigger_id))).first())


async def of_schedule(conn: AsyncConnection, schedule_id: str) -> list[Trigger]:
    q = (select(triggers).where(triggers.c.schedule_id == schedule_id)
         .order_by(triggers.c.created_at, triggers.c.id))
    return [from_row(Trigger, r) for r in await conn.execute(q)]


async def get_of_schedule(conn: AsyncConnection, schedule_id: str, trigger_id: str) -> Trigger:
    q = select(triggers).where(triggers.c.id == trigger_id,
                               triggers.c.schedule_id == schedule_id)
    row = (await conn.execute(q)).first()
    if row is None:
        raise NotFound(f"Trigger {trigger_id} not found.")
    return from_row(Trigger, row)


async def remove(conn: AsyncConnection, trigger_id: str) -> None:
    await conn.execute(delete(receipts).where(receipts.c.trigger_id == trigger_id))
    await conn.execute(delete(triggers).where(triggers.c.id == trigger_id))


async def by_webhook(conn: AsyncConnection, webhook_id: str) -> Trigger | None:
    q = select(triggers).where(triggers.c.webhook_id == webhook_id,
                               triggers.c.kind == "webhook")
    return maybe(Trigger, (await conn.execute(q)).first())


async def chains_from(conn: AsyncConnection, source_schedule_id: str,
                      run_status: str) -> list[Trigger]:
    """The enabled chain triggers a run of ``source_schedule_id`` ending in
    ``run_status`` fires."""
    q = select(triggers).where(triggers.c.kind == "chain", triggers.c.enabled.is_(True),
                               triggers.c.source_schedule_id == source_schedule_id)
    return [t for t in (from_row(Trigger, r) for r in await conn.execute(q))
            if run_status in EVENT_ENDINGS.get(t.event or "", ())]


async def chain_edges(conn: AsyncConnection, account_id: str, mode: str) -> list[tuple[str, str]]:
    """(source, target) of every chain trigger of an account and mode."""
    q = select(triggers.c.source_schedule_id, triggers.c.schedule_id).where(
        triggers.c.kind == "chain", triggers.c.account_id == account_id,
        triggers.c.mode == mode)
    return [(str(a), str(b)) for a, b in await conn.execute(q)]


# -- webhook receipts ----------------------------------------------------------------


async def recent_receipts(conn: AsyncConnection, trigger_id: str,
                          since: datetime) -> list[tuple[str, datetime, str | None]]:
    """(body hash, received at, run id) of the receipts since ``since``, oldest first."""
    q = (select(receipts.c.body_hash, receipts.c.received_at, receipts.c.run_id)
         .where(receipts.c.trigger_id == trigger_id, receipts.c.received_at >= since)
         .order_by(receipts.c.received_at))
    return [(str(h), at, r) for h, at, r in await conn.execute(q)]


async def add_receipt(conn: AsyncConnection, trigger_id: str, body_hash: str,
                      run_id: str | None, at: datetime, *, prune_before: datetime) -> None:
    await conn.execute(delete(receipts).where(receipts.c.trigger_id == trigger_id,
                                              receipts.c.received_at < prune_before))
    await conn.execute(receipts.insert().values(trigger_id=trigger_id, body_hash=body_hash,
                                                run_id=run_id, received_at=at))


async def lock(conn: AsyncConnection, trigger_id: str) -> None:
    """Hold the trigger's row until the transaction ends (PostgreSQL; SQLite's
    write transaction already holds the whole database)."""
    if conn.dialect.name == "postgresql":
        await conn.execute(select(triggers.c.id).where(triggers.c.id == trigger_id)
                           .with_for_update())
