"""Submitting a run (engine/submit.py) on a real SQLite database: which
machines and wallets it refuses, the row and first event it writes, the
webhook secret it hands out once, and that it does not deduplicate (the
Idempotency-Key is the API's job; submit records the request id)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from deckhand import crypto, ids
from deckhand.engine.submit import OFFLINE_NOTICE, WEBHOOK_PURPOSE, RunSpec, RunSubmitter
from deckhand.errors import ErrorCode, InsufficientCredits, InvalidState, NotFound
from deckhand.pricing import step_credits
from deckhand.store import runs as runs_store
from deckhand.store.db import Database
from tests.support import engine as eng
from tests.support.runs import cmd, script


@pytest.fixture
async def db(sqlite_url: str) -> AsyncIterator[Database]:
    async with eng.migrated(sqlite_url) as database:
        yield database


async def test_a_run_is_queued_with_its_first_event(db: Database) -> None:
    account = await eng.account(db, 500)
    machine = await eng.machine(db, account)
    task = script(cmd("echo hi"))

    submitted = await eng.submit(db, account, RunSpec(
        machine_id=machine, task=task, model="scripted", instructions="be brief",
        metadata={"ticket": "T-1"}), request_id="req_1")

    run = submitted.run
    assert (run.status, run.brain, run.machine_id, run.account_id) == (
        "queued", "scripted", machine, account)
    assert (run.task, run.instructions, run.metadata, run.request_id) == (
        task, "be brief", {"ticket": "T-1"}, "req_1")
    assert (run.max_steps, run.deadline_at, run.claimed_by) == (50, None, None)
    assert submitted.balance == 500
    assert submitted.webhook_secret is None and run.webhook_secret_sealed is None
    assert await eng.events(db, run.id) == [
        {"seq": 1, "type": "status", "data": {"status": "queued", "brain": "scripted"}}]
    assert await eng.claim(db, "w") == run.id  # the queue now holds it


async def test_without_a_model_the_offline_brain_is_chosen_and_said_so(db: Database) -> None:
    account = await eng.account(db)
    machine = await eng.machine(db, account)

    submitted = await eng.submit(db, account, RunSpec(machine_id=machine, task="run ls"))

    assert submitted.run.brain == "offline"
    assert submitted.balance is None  # an unlimited wallet
    first = (await eng.events(db, submitted.run.id))[0]["data"]
    assert first == {"status": "queued", "brain": "offline", "message": OFFLINE_NOTICE}


async def test_max_steps_is_held_to_the_ceiling_and_the_deadline_is_fixed(db: Database) -> None:
    account = await eng.account(db)
    machine = await eng.machine(db, account)

    submitted = await eng.submit(db, account, RunSpec(
        machine_id=machine, task="t", model="scripted", max_steps=500, deadline_seconds=90),
        ceiling=20)

    run = submitted.run
    assert run.max_steps == 20
    assert run.deadline_seconds == 90
    assert run.deadline_at is not None
    assert run.deadline_at - run.created_at == timedelta(seconds=90)


async def test_a_webhook_secret_is_shown_once_and_kept_sealed(db: Database) -> None:
    account = await eng.account(db)
    machine = await eng.machine(db, account)

    submitted = await eng.submit(db, account, RunSpec(
        machine_id=machine, task="t", model="scripted", webhook_url="https://hooks.test/x"))

    secret = submitted.webhook_secret
    assert secret
    sealed = submitted.run.webhook_secret_sealed
    assert sealed is not None and secret not in str(sealed)
    assert crypto.open_sealed(eng.SECRET, WEBHOOK_PURPOSE, sealed) == secret
    assert submitted.run.webhook_url == "https://hooks.test/x"


@pytest.mark.parametrize("machine_id", ["not-a-machine-id", "__missing__"])
async def test_an_unknown_machine_is_not_found(db: Database, machine_id: str) -> None:
    account = await eng.account(db)
    if machine_id == "__missing__":
        machine_id = ids.machine_id(test=False)  # well formed, never created
    with pytest.raises(NotFound, match=f"Machine {machine_id} not found"):
        await eng.submit(db, account, RunSpec(machine_id=machine_id, task="t"))
    assert await eng.claim(db, "w") is None  # nothing was queued


async def test_another_accounts_or_modes_machine_is_not_found(db: Database) -> None:
    owner = await eng.account(db)
    other = await eng.account(db)
    machine = await eng.machine(db, owner)

    with pytest.raises(NotFound):
        await eng.submit(db, other, RunSpec(machine_id=machine, task="t"))
    with pytest.raises(NotFound):  # a live machine is not a test key's
        await eng.submit(db, owner, RunSpec(machine_id=machine, task="t"), mode="test")


@pytest.mark.parametrize("status", ["terminated", "deleting"])
async def test_a_machine_that_is_gone_is_not_found(db: Database, status: str) -> None:
    account = await eng.account(db)
    machine = await eng.machine(db, account, status=status)
    with pytest.raises(NotFound):
        await eng.submit(db, account, RunSpec(machine_id=machine, task="t"))


@pytest.mark.parametrize("status", ["stopped", "error"])
async def test_a_machine_that_is_not_up_is_unavailable(db: Database, status: str) -> None:
    account = await eng.account(db)
    machine = await eng.machine(db, account, status=status)

    with pytest.raises(InvalidState) as caught:
        await eng.submit(db, account, RunSpec(machine_id=machine, task="t"))

    assert caught.value.code is ErrorCode.MACHINE_UNAVAILABLE
    assert caught.value.message == f"Machine {machine} is {status}; start it first."


async def test_a_machine_still_being_created_takes_runs(db: Database) -> None:
    account = await eng.account(db)
    machine = await eng.machine(db, account, status="creating")
    submitted = await eng.submit(db, account, RunSpec(machine_id=machine, task="t"))
    assert submitted.run.status == "queued"


async def test_a_wallet_short_of_one_step_is_refused_in_live_mode(db: Database) -> None:
    cost = step_credits("live", "v5")
    account = await eng.account(db, cost - 1)
    machine = await eng.machine(db, account)

    with pytest.raises(InsufficientCredits, match=f"Need {cost}, have {cost - 1}."):
        await eng.submit(db, account, RunSpec(machine_id=machine, task="t"))
    assert await eng.claim(db, "w") is None


async def test_test_mode_runs_need_no_credits(db: Database) -> None:
    account = await eng.account(db, 0)
    machine = await eng.machine(db, account, mode="test")

    submitted = await eng.submit(db, account, RunSpec(machine_id=machine, task="t"),
                                 mode="test")

    assert (submitted.run.mode, submitted.balance) == ("test", 0)


async def test_the_same_spec_twice_makes_two_runs(db: Database) -> None:
    account = await eng.account(db)
    machine = await eng.machine(db, account)
    spec = RunSpec(machine_id=machine, task="t", model="scripted")

    first = await eng.submit(db, account, spec, request_id="req_same")
    second = await eng.submit(db, account, spec, request_id="req_same")

    assert first.run.id != second.run.id
    async with db.read() as conn:
        listed = [await runs_store.get(conn, first.run.id),
                  await runs_store.get(conn, second.run.id)]
    assert [r.request_id for r in listed if r is not None] == ["req_same", "req_same"]


async def test_a_refused_submit_writes_nothing_in_the_callers_transaction(
        db: Database) -> None:
    """The checks come before any write, so a caller (a workflow step) that
    catches the refusal and goes on commits no part of the refused run."""
    account = await eng.account(db, 0)
    live = await eng.machine(db, account)
    test = await eng.machine(db, account, mode="test")
    submitter = RunSubmitter(eng.lifecycle(db), eng.SECRET, 100)

    async with db.write() as conn:
        with pytest.raises(InsufficientCredits):
            await submitter.submit(conn, account_id=account, mode="live",
                                   spec=RunSpec(machine_id=live, task="t"))
        ok = await submitter.submit(conn, account_id=account, mode="test",
                                    spec=RunSpec(machine_id=test, task="t"))

    assert await eng.claim(db, "w") == ok.run.id
    assert await eng.claim(db, "w2") is None
