"""The runner keeps each step's screens (engine/runner.py with the artifact
store): bytes first, rows in the step's transaction; a store that fails costs
the step its screens, never the run; a transaction that fails leaves bytes
without a row (the orphan sweep's), never a row without bytes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from deckhand.artifacts import FsArtifactStore, digest
from deckhand.core.actions import Click
from deckhand.engine.runner import Runner
from deckhand.engine.submit import RunSpec
from deckhand.errors import ArtifactError
from deckhand.machines.fake import FakeMachine
from deckhand.store import artifacts as artifacts_store
from deckhand.store import ledger as ledger_store
from deckhand.store.db import Database
from tests.support import engine as eng
from tests.support.runs import script

WORKER = "worker-1"
CLICKS = script({"actions": [{"kind": "click", "x": 10, "y": 10}]},
                {"actions": [{"kind": "click", "x": 20, "y": 20}]}, answer="done")


@pytest.fixture
async def db(sqlite_url: str) -> AsyncIterator[Database]:
    async with eng.migrated(sqlite_url) as database:
        yield database


async def _queued(db: Database, task: str) -> str:
    account = await eng.account(db, 1000)
    machine = await eng.machine(db, account)
    submitted = await eng.submit(db, account, RunSpec(machine_id=machine, task=task,
                                                      model="scripted"))
    assert await eng.claim(db, WORKER) == submitted.run.id
    return submitted.run.id


def _runner(db: Database, machine: Any, store: Any) -> Runner:
    async def connect(machine_id: str) -> Any:
        return machine

    return Runner(db, eng.lifecycle(db), connect, WORKER, artifacts=store)


class BrokenStore(FsArtifactStore):
    async def put(self, key: str, data: bytes) -> None:
        raise ArtifactError("the disk is full")


async def test_each_step_points_at_its_screens(db: Database, tmp_path: Path) -> None:
    run_id = await _queued(db, CLICKS)
    store = FsArtifactStore(tmp_path)
    machine = FakeMachine()  # a click changes its screen
    before = machine.screen
    await _runner(db, machine, store).drive(run_id, lambda: False)

    assert (await eng.run(db, run_id)).status == "succeeded"
    async with db.read() as conn:
        rows = await artifacts_store.for_run(conn, run_id)
    assert [(a.step, a.kind) for a in rows] == [(1, "after"), (1, "screen"), (2, "after"),
                                                (2, "screen"), (3, "screen")]
    by = {(a.step, a.kind): a for a in rows}
    assert before is not None and by[1, "screen"].sha256 == digest(before.screenshot_jpeg)
    assert by[1, "after"].sha256 == by[2, "screen"].sha256 != by[1, "screen"].sha256
    assert all((a.width, a.height, a.content_type) == (1280, 800, "image/jpeg") for a in rows)
    for a in rows:
        assert digest(await store.get(a.sha256) or b"") == a.sha256
    assert {b.key for b in await store.scan()} == {a.sha256 for a in rows}
    assert [a for a in machine.actions if isinstance(a, Click)] == [
        Click(x=10, y=10), Click(x=20, y=20)]


async def test_a_failing_store_costs_the_screens_not_the_run(
        db: Database, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    run_id = await _queued(db, CLICKS)
    await _runner(db, FakeMachine(), BrokenStore(tmp_path)).drive(run_id, lambda: False)
    assert (await eng.run(db, run_id)).status == "succeeded"
    assert len(await eng.steps(db, run_id)) == 3
    async with db.read() as conn:
        assert await artifacts_store.for_run(conn, run_id) == []
    assert "screens not kept: the disk is full" in caplog.text


async def test_a_failed_step_transaction_leaves_no_row_only_bytes(
        db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run_id = await _queued(db, CLICKS)
    store = FsArtifactStore(tmp_path)

    async def fail(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the transaction dies here")

    monkeypatch.setattr(ledger_store, "debit_step", fail)
    with pytest.raises(RuntimeError):
        await _runner(db, FakeMachine(), store).drive(run_id, lambda: False)
    assert await eng.steps(db, run_id) == []
    async with db.read() as conn:
        assert await artifacts_store.for_run(conn, run_id) == []  # rolled back with the step
    assert len(await store.scan()) == 2  # written first: orphans for the sweep
