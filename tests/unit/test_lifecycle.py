"""The ending that runs and workflow runs share (engine/lifecycle.py
queue_webhook): a state change clients are told of queues its webhook in the
same transaction and wakes the dispatchers; any other change queues none."""

from __future__ import annotations

import json

import pytest

from deckhand.core.clock import utcnow
from deckhand.engine.lifecycle import Lifecycle
from deckhand.engine.notify import Notifier
from deckhand.engine.workflow_lifecycle import WorkflowLifecycle
from deckhand.store import accounts as accounts_store
from deckhand.store import runs as runs_store
from deckhand.store import webhooks as outbox
from deckhand.store import workflows as wf_store
from deckhand.store.db import Database
from tests.support.rows import new_run, new_workflow_run

pytestmark = pytest.mark.asyncio

HOOK = {"webhook_url": "https://example.test/hook", "webhook_secret_sealed": "sealed"}


@pytest.fixture
def db(sqlite_db: Database) -> Database:
    return sqlite_db


@pytest.fixture
def wakes() -> list[str]:
    return []


def lifecycles(db: Database, wakes: list[str]) -> tuple[Lifecycle, WorkflowLifecycle]:
    notifier = Notifier(db)
    notifier.on("webhooks", wakes.append)
    runs = Lifecycle(notifier)
    return runs, WorkflowLifecycle(notifier, runs, b"k" * 32)


async def account(db: Database) -> str:
    async with db.write() as conn:
        return (await accounts_store.create(conn, "acme")).id


async def test_a_finished_run_queues_its_webhook(db: Database, wakes: list[str]) -> None:
    runs, _ = lifecycles(db, wakes)
    acct = await account(db)
    async with db.write() as conn:
        run_id = await new_run(conn, acct, utcnow(), **HOOK)
        run = await runs_store.get(conn, run_id)
        assert run is not None
        await runs.finish(conn, run, "succeeded", result={"ok": True})
    async with db.read() as conn:
        (delivery,) = await outbox.list_for_run(conn, run_id)
    assert delivery.event_type == "run.succeeded"
    assert delivery.url == HOOK["webhook_url"] and delivery.account_id == acct
    body = json.loads(delivery.payload)
    assert body["type"] == "run.succeeded" and body["run"]["id"] == run_id
    assert body["run"]["status"] == "succeeded"
    assert wakes == ["*"]


async def test_a_finished_workflow_run_queues_its_webhook(db: Database,
                                                          wakes: list[str]) -> None:
    _, workflows = lifecycles(db, wakes)
    acct = await account(db)
    async with db.write() as conn:
        run_id = await new_workflow_run(conn, acct, utcnow(), **HOOK)
        run = await wf_store.get_run(conn, run_id)
        assert run is not None
        await workflows.finish(conn, run, "failed", error={"code": "x", "message": "y"})
    async with db.read() as conn:
        (delivery,) = await outbox.list_for_run(conn, run_id)
    assert delivery.event_type == "workflow_run.failed"
    body = json.loads(delivery.payload)
    assert body["workflow_run"]["id"] == run_id and "run" not in body
    assert wakes == ["*"]


async def test_no_webhook_without_a_url_or_for_an_unannounced_change(
        db: Database, wakes: list[str]) -> None:
    runs, workflows = lifecycles(db, wakes)
    acct = await account(db)
    async with db.write() as conn:
        silent = await new_run(conn, acct, utcnow())
        run = await runs_store.get(conn, silent)
        assert run is not None
        await runs.finish(conn, run, "cancelled")
        hooked = await new_run(conn, acct, utcnow(), claimed_by="w1", **HOOK)
        run = await runs_store.get(conn, hooked)
        assert run is not None
        await runs.start(conn, run, "w1")  # running: not a webhook event
        silent_wf = await new_workflow_run(conn, acct, utcnow())
        wf = await wf_store.get_run(conn, silent_wf)
        assert wf is not None
        await workflows.finish(conn, wf, "succeeded")
    async with db.read() as conn:
        for run_id in (silent, hooked, silent_wf):
            assert await outbox.list_for_run(conn, run_id) == []
    assert wakes == []
