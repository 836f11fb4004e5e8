"""Bring-your-own-key provider keys: the account's stored keys and the key
snapshots of BYOK runs and workflow runs. Keys are stored only sealed (AES-GCM under the server
secret, purpose :data:`PURPOSE`); only their fingerprint is ever shown."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, delete, select
from sqlalchemy.ext.asyncio import AsyncConnection

from deckhand import crypto
from deckhand.core.clock import utcnow
from deckhand.store.records import JSONObject, Run, WorkflowRun
from deckhand.store.tables import llm_keys, run_llm_keys, workflow_run_llm_keys
from deckhand.store.upsert import insert_for

PURPOSE = "llm-key"


@dataclass(frozen=True, slots=True)
class StoredKey:
    provider: str
    key_fingerprint: str
    created_at: datetime
    updated_at: datetime
    key_sealed: str


def _row(m: Row[Any]) -> StoredKey:
    return StoredKey(provider=m.provider, key_fingerprint=m.key_fingerprint,
                     created_at=m.created_at, updated_at=m.updated_at, key_sealed=m.key_sealed)


def seal(secret: bytes, key: str) -> str:
    return crypto.seal(secret, PURPOSE, key)


def open_key(secret: bytes, sealed: str) -> str:
    return crypto.open_sealed(secret, PURPOSE, sealed)


async def put(conn: AsyncConnection, *, secret: bytes, account_id: str, provider: str,
              key: str) -> StoredKey:
    """Store (or replace) the account's key for ``provider``."""
    now = utcnow()
    values = {"key_sealed": seal(secret, key), "key_fingerprint": crypto.fingerprint(key),
              "updated_at": now}
    stmt = insert_for(conn, llm_keys).values(account_id=account_id, provider=provider,
                                             created_at=now, **values)
    await conn.execute(stmt.on_conflict_do_update(
        index_elements=["account_id", "provider"], set_=values))
    found = await get(conn, account_id, provider)
    assert found is not None
    return found


async def get(conn: AsyncConnection, account_id: str, provider: str) -> StoredKey | None:
    row = (await conn.execute(select(llm_keys).where(
        llm_keys.c.account_id == account_id, llm_keys.c.provider == provider))).first()
    return _row(row) if row is not None else None


async def list_for(conn: AsyncConnection, account_id: str) -> list[StoredKey]:
    rows = await conn.execute(select(llm_keys).where(llm_keys.c.account_id == account_id)
                              .order_by(llm_keys.c.provider))
    return [_row(r) for r in rows.all()]


async def remove(conn: AsyncConnection, account_id: str, provider: str) -> bool:
    result = await conn.execute(delete(llm_keys).where(
        llm_keys.c.account_id == account_id, llm_keys.c.provider == provider))
    return bool(result.rowcount)


# --------------------------------------------------------------------------- run snapshots


async def snapshot(conn: AsyncConnection, run_id: str, sealed: str) -> None:
    await conn.execute(run_llm_keys.insert().values(run_id=run_id, key_sealed=sealed,
                                                    created_at=utcnow()))


async def run_key(conn: AsyncConnection, run_id: str) -> str | None:
    """The run's sealed key snapshot (None once scrubbed)."""
    return (await conn.execute(select(run_llm_keys.c.key_sealed)
                               .where(run_llm_keys.c.run_id == run_id))).scalar()


async def scrub(conn: AsyncConnection, run: Run) -> JSONObject | None:
    """Destroy a BYOK run's key snapshot; returns the run's new ``llm`` echo
    (``key_scrubbed`` true) for the caller to write with the run's end, or None
    when the run has no snapshot to destroy."""
    if not run.llm or run.llm.get("key_scrubbed") is not False:
        return None
    await conn.execute(delete(run_llm_keys).where(run_llm_keys.c.run_id == run.id))
    return {**run.llm, "key_scrubbed": True}


# --------------------------------------------------------------------------- workflow runs


async def snapshot_workflow(conn: AsyncConnection, workflow_run_id: str, sealed: str) -> None:
    await conn.execute(workflow_run_llm_keys.insert().values(
        workflow_run_id=workflow_run_id, key_sealed=sealed, created_at=utcnow()))


async def workflow_run_key(conn: AsyncConnection, workflow_run_id: str) -> str | None:
    """The workflow run's sealed key snapshot (None once scrubbed)."""
    return (await conn.execute(
        select(workflow_run_llm_keys.c.key_sealed)
        .where(workflow_run_llm_keys.c.workflow_run_id == workflow_run_id))).scalar()


async def scrub_workflow(conn: AsyncConnection, run: WorkflowRun) -> JSONObject | None:
    """:func:`scrub` for a workflow run (its task runs scrub their own)."""
    if not run.llm or run.llm.get("key_scrubbed") is not False:
        return None
    await conn.execute(delete(workflow_run_llm_keys)
                       .where(workflow_run_llm_keys.c.workflow_run_id == run.id))
    return {**run.llm, "key_scrubbed": True}
