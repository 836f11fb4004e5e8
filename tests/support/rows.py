"""Rows straight into the store, for tests of the store and the engine below
the API (the queue, the lifecycle)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from deckhand import ids
from deckhand.store import runs as runs_store
from deckhand.store import workflows as wf_store


async def new_run(conn: AsyncConnection, account_id: str, created_at: datetime,
                  **values: object) -> str:
    """A queued run with the fewest columns the table needs (and ``values``)."""
    run_id = ids.new_uuid()
    await runs_store.insert(conn, {
        "id": run_id, "account_id": account_id, "mode": "live", "machine_id": "m_1",
        "status": "queued", "task": "t", "cua_version": "v1", "brain": "offline",
        "max_steps": 5, "on_awaiting_human": "wait", "created_at": created_at, **values})
    return run_id


async def new_workflow_run(conn: AsyncConnection, account_id: str, created_at: datetime,
                           **values: object) -> str:
    """A queued ad-hoc workflow run (and ``values``)."""
    run_id = ids.new_uuid()
    await wf_store.insert_run(conn, {
        "id": run_id, "account_id": account_id, "mode": "live", "status": "queued",
        "definition": {"steps": []}, "inputs": {}, "created_at": created_at,
        **values})
    return run_id
