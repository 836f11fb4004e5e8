"""Helpers for tests that drive the engine's modules directly on a real,
migrated database (no HTTP): accounts, machine rows, a submitted run, its
events and steps as the store holds them."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

from deckhand import ids
from deckhand.core.clock import utcnow
from deckhand.engine.lifecycle import Lifecycle
from deckhand.engine.notify import Notifier
from deckhand.engine.submit import RunSpec, RunSubmitter, Submitted
from deckhand.store import accounts as accounts_store
from deckhand.store import events as events_store
from deckhand.store import machines as machines_store
from deckhand.store import runs as runs_store
from deckhand.store import steps as steps_store
from deckhand.store.db import Database
from deckhand.store.records import Run

SECRET = b"engine-test-secret-0123456789abcdef"


@asynccontextmanager
async def migrated(url: str) -> AsyncIterator[Database]:
    """A database at ``url`` with every migration applied, disposed after."""
    db = Database(url)
    await db.migrate()
    try:
        yield db
    finally:
        await db.dispose()


def lifecycle(db: Database) -> Lifecycle:
    return Lifecycle(Notifier(db))


async def account(db: Database, credits: int | None = None) -> str:
    async with db.write() as conn:
        acct = await accounts_store.create(conn, f"acct-{secrets.token_hex(4)}", credits)
    return acct.id


async def machine(db: Database, account_id: str, *, mode: str = "live",
                  status: str = "running") -> str:
    """A machine row as the machine service leaves it (no agent behind it:
    the engine tests reach a FakeMachine instead)."""
    machine_id = ids.machine_id(test=mode == "test")
    async with db.write() as conn:
        await machines_store.insert(conn, {
            "id": machine_id, "account_id": account_id, "mode": mode, "display_name": "m",
            "status": status, "metadata": {}, "provider": "local", "created_at": utcnow(),
            "kind": "terminal", "last_active_at": utcnow(),
        })
    return machine_id


async def submit(db: Database, account_id: str, spec: RunSpec, *, mode: str = "live",
                 ceiling: int = 100, request_id: str | None = None) -> Submitted:
    submitter = RunSubmitter(lifecycle(db), SECRET, ceiling)
    async with db.write() as conn:
        return await submitter.submit(conn, account_id=account_id, mode=mode, spec=spec,
                                      request_id=request_id)


async def claim(db: Database, worker_id: str) -> str | None:
    """Take the next claimable run for ``worker_id``, as the claim loop does."""
    async with db.write() as conn:
        return await runs_store.QUEUE.claim(conn, worker_id, utcnow() + timedelta(seconds=60))


async def run(db: Database, run_id: str) -> Run:
    async with db.read() as conn:
        row = await runs_store.get(conn, run_id)
    assert row is not None
    return row


async def events(db: Database, run_id: str) -> list[dict[str, Any]]:
    async with db.read() as conn:
        return [e.as_dict() for e in await events_store.after(conn, run_id, 0)]


async def steps(db: Database, run_id: str) -> list[Any]:
    async with db.read() as conn:
        return await steps_store.for_run(conn, run_id)
