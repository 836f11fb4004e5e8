"""The runner (engine/runner.py) driving one run on a real SQLite database with
the scripted brain and the fake machine: how each run ends, what it records,
in which order, and what a cancel or a worker shutdown leaves behind."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from deckhand.core.actions import Action, ActionResult, RunCommand
from deckhand.engine.runner import Runner, step_cost
from deckhand.engine.submit import RunSpec
from deckhand.errors import MachineError
from deckhand.machines.fake import FakeMachine
from deckhand.pricing import step_credits
from deckhand.store import runs as runs_store
from deckhand.store.db import Database
from tests.support import engine as eng
from tests.support.runs import cmd, script

WORKER = "worker-1"


@pytest.fixture
async def db(sqlite_url: str) -> AsyncIterator[Database]:
    async with eng.migrated(sqlite_url) as database:
        yield database


class GatedMachine(FakeMachine):
    """A fake machine whose command ``block`` does not return until cancelled,
    so a test can act while a step is in flight."""

    def __init__(self) -> None:
        super().__init__(None, None)
        self.entered = asyncio.Event()

    async def act(self, action: Action) -> ActionResult:
        if isinstance(action, RunCommand) and action.command == "block":
            self.actions.append(action)
            self.entered.set()
            await asyncio.Event().wait()  # until the run's task is cancelled
        return await super().act(action)


async def _queued(db: Database, task: str, *, credits: int | None = 1000,
                  **spec: Any) -> tuple[str, str]:
    """(account id, run id) of a run submitted and claimed by WORKER."""
    account = await eng.account(db, credits)
    machine = await eng.machine(db, account)
    submitted = await eng.submit(db, account, RunSpec(machine_id=machine, task=task,
                                                      model="scripted", **spec))
    assert await eng.claim(db, WORKER) == submitted.run.id
    return account, submitted.run.id


def _runner(db: Database, machine: Any, worker: str = WORKER) -> Runner:
    async def connect(machine_id: str) -> Any:
        return machine

    return Runner(db, eng.lifecycle(db), connect, worker)


def _not_requested() -> bool:
    return False


async def test_a_scripted_run_succeeds_and_records_each_step_in_order(db: Database) -> None:
    _, run_id = await _queued(db, script(cmd("echo one"), cmd("echo two"), answer="all done"))
    machine = FakeMachine(None, None, outputs={"echo one": "one\n"})

    await _runner(db, machine).drive(run_id, _not_requested)

    run = await eng.run(db, run_id)
    assert run.status == "succeeded"
    assert run.result == {"answer": "all done", "steps": 3}
    assert run.error is None
    assert run.steps_completed == 3
    assert run.credits_charged == 3 * step_cost(run)
    assert [a.command for a in machine.actions if isinstance(a, RunCommand)] == [
        "echo one", "echo two"]
    rows = await eng.steps(db, run_id)
    assert [s.number for s in rows] == [1, 2, 3]
    assert rows[0].results[0]["output"] == "one\n"
    evs = await eng.events(db, run_id)
    assert [e["seq"] for e in evs] == list(range(1, len(evs) + 1))  # no gap, no repeat
    flow = [(e["type"], e["data"].get("status") or e["data"].get("number")
             or e["data"].get("step")) for e in evs if e["type"] != "verification"]
    assert flow == [
        ("status", "queued"), ("status", "running"),
        ("step", "started"), ("tool_call", 1), ("tool_result", 1), ("step", "completed"),
        ("billing", 1),
        ("step", "started"), ("tool_call", 2), ("tool_result", 2), ("step", "completed"),
        ("billing", 2),
        ("step", "started"), ("text", 3), ("step", "completed"), ("billing", 3),
        ("status", "succeeded"), ("done", "succeeded"),
    ]
    assert evs[4]["data"]["output"] == "one\n"
    assert [e["data"]["balance"] for e in evs if e["type"] == "billing"] == [
        1000 - step_cost(run), 1000 - 2 * step_cost(run), 1000 - 3 * step_cost(run)]


async def test_max_steps_ends_the_run_failed_before_another_step(db: Database) -> None:
    _, run_id = await _queued(db, script(*(cmd(f"echo {i}") for i in range(5))), max_steps=2)
    machine = FakeMachine(None, None)

    await _runner(db, machine).drive(run_id, _not_requested)

    run = await eng.run(db, run_id)
    assert run.status == "failed"
    assert run.error == {"code": "MAX_STEPS_REACHED",
                         "message": "The run used all 2 steps without finishing."}
    assert run.steps_completed == 2
    assert [a.command for a in machine.actions if isinstance(a, RunCommand)] == [
        "echo 0", "echo 1"]
    assert [s.number for s in await eng.steps(db, run_id)] == [1, 2]
    assert (await eng.events(db, run_id))[-1]["type"] == "done"


async def test_a_cancel_request_stops_the_step_in_flight(db: Database) -> None:
    _, run_id = await _queued(db, script(cmd("echo first"), cmd("block"), cmd("echo never")))
    machine = GatedMachine()
    drive = asyncio.create_task(_runner(db, machine).drive(run_id, lambda: True))
    await asyncio.wait_for(machine.entered.wait(), 10)

    drive.cancel()
    await asyncio.wait_for(drive, 10)  # a requested cancel ends the drive, not the task

    run = await eng.run(db, run_id)
    assert run.status == "cancelled"
    assert run.error == {"code": "CANCELLED", "message": "Cancelled by request."}
    assert run.steps_completed == 1  # the interrupted step is not recorded
    assert [a.command for a in machine.actions if isinstance(a, RunCommand)] == [
        "echo first", "block"]
    statuses = [e["data"]["status"] for e in await eng.events(db, run_id)
                if e["type"] == "status"]
    assert statuses == ["queued", "running", "cancelled"]


async def test_a_cancel_requested_before_the_drive_does_nothing_on_the_machine(
        db: Database) -> None:
    _, run_id = await _queued(db, script(cmd("echo hi")))
    async with db.write() as conn:
        await runs_store.update_run(conn, run_id, cancel_requested=True)
    machine = FakeMachine(None, None)

    await _runner(db, machine).drive(run_id, _not_requested)

    run = await eng.run(db, run_id)
    assert (run.status, run.error["code"] if run.error else None) == ("cancelled", "CANCELLED")
    assert machine.actions == []
    assert await eng.steps(db, run_id) == []


async def test_a_worker_shutdown_gives_the_run_back_unfinished(db: Database) -> None:
    _, run_id = await _queued(db, script(cmd("block")))
    machine = GatedMachine()
    drive = asyncio.create_task(_runner(db, machine).drive(run_id, _not_requested))
    await asyncio.wait_for(machine.entered.wait(), 10)

    drive.cancel()
    with pytest.raises(asyncio.CancelledError):
        await drive

    run = await eng.run(db, run_id)
    assert run.status == "running"
    assert run.claimed_by is None and run.lease_expires_at is None
    assert await eng.claim(db, "worker-2") == run_id  # another worker can take it


async def test_a_run_claimed_by_another_worker_is_left_alone(db: Database) -> None:
    _, run_id = await _queued(db, script(cmd("echo hi")))
    machine = FakeMachine(None, None)

    await _runner(db, machine, worker="someone-else").drive(run_id, _not_requested)

    run = await eng.run(db, run_id)
    assert (run.status, run.claimed_by) == ("queued", WORKER)
    assert machine.actions == []


async def test_the_scripts_failure_outcome_fails_the_run_with_its_code(db: Database) -> None:
    failing = {"outcome": {"success": False, "error_code": "VERIFICATION_FAILED",
                           "message": "the file is missing"}}
    _, run_id = await _queued(db, script(cmd("ls"), failing))

    await _runner(db, FakeMachine(None, None)).drive(run_id, _not_requested)

    run = await eng.run(db, run_id)
    assert run.status == "failed"
    assert run.error == {"code": "VERIFICATION_FAILED", "message": "the file is missing"}
    assert run.steps_completed == 2


@pytest.mark.parametrize(("policy", "status"), [
    ("pause", "awaiting_human"), ("fail", "failed"), ("cancel", "cancelled")])
async def test_asking_a_human_follows_the_runs_policy(db: Database, policy: str,
                                                      status: str) -> None:
    _, run_id = await _queued(db, script({"ask_human": "Approve the payment?"}, cmd("echo x")),
                              on_awaiting_human=policy)
    machine = FakeMachine(None, None)

    await _runner(db, machine).drive(run_id, _not_requested)

    run = await eng.run(db, run_id)
    assert run.status == status
    assert run.awaiting_human_reason == "Approve the payment?"
    assert machine.actions == []  # nothing after the question
    if status != "awaiting_human":
        assert run.error == {"code": "HUMAN_REQUIRED",
                             "message": "The agent needs a human: Approve the payment?"}


async def test_a_wallet_that_runs_dry_fails_the_run_between_steps(db: Database) -> None:
    cost = step_credits("live", "v5")
    _, run_id = await _queued(db, script(cmd("echo 1"), cmd("echo 2")), credits=cost)
    machine = FakeMachine(None, None)

    await _runner(db, machine).drive(run_id, _not_requested)

    run = await eng.run(db, run_id)
    assert run.status == "failed"
    assert run.error == {"code": "INSUFFICIENT_CREDITS",
                         "message": f"The wallet ran dry: a step costs {cost} credits, 0 left."}
    assert run.steps_completed == 1
    assert len(machine.actions) == 1


async def test_an_unreachable_machine_fails_the_run_with_a_machine_error(db: Database) -> None:
    _, run_id = await _queued(db, script(cmd("echo hi")))

    async def unreachable(machine_id: str) -> Any:
        raise MachineError(f"Machine {machine_id} does not answer.")

    await Runner(db, eng.lifecycle(db), unreachable, WORKER).drive(run_id, _not_requested)

    run = await eng.run(db, run_id)
    assert run.status == "failed"
    assert run.error is not None and run.error["code"] == "MACHINE_ERROR"
    assert run.error["message"] == f"Machine {run.machine_id} does not answer."


async def test_the_deadline_times_the_run_out_mid_step(db: Database) -> None:
    _, run_id = await _queued(db, script(cmd("block")), deadline_seconds=1)
    machine = GatedMachine()

    await asyncio.wait_for(_runner(db, machine).drive(run_id, _not_requested), 20)

    run = await eng.run(db, run_id)
    assert run.status == "timed_out"
    assert run.error == {"code": "DEADLINE_EXCEEDED",
                         "message": "The run exceeded its deadline of 1 s."}
    assert machine.entered.is_set()


async def test_a_rerun_after_a_crash_goes_on_from_the_recorded_steps(db: Database) -> None:
    """Durability rule 2: a second drive (another claim) rebuilds the context
    from the recorded steps and plays only what is left of the script."""
    _, run_id = await _queued(db, script(cmd("echo 1"), cmd("block"), cmd("echo 3")))
    first = GatedMachine()
    drive = asyncio.create_task(_runner(db, first).drive(run_id, _not_requested))
    await asyncio.wait_for(first.entered.wait(), 10)
    drive.cancel()  # the worker goes away mid-step 2
    with pytest.raises(asyncio.CancelledError):
        await drive
    assert await eng.claim(db, "worker-2") == run_id
    second = FakeMachine(None, None)

    await _runner(db, second, worker="worker-2").drive(run_id, _not_requested)

    run = await eng.run(db, run_id)
    assert run.status == "succeeded"
    assert [a.command for a in second.actions if isinstance(a, RunCommand)] == [
        "block", "echo 3"]  # step 2 again (it never completed), then step 3
    assert [s.number for s in await eng.steps(db, run_id)] == [1, 2, 3, 4]
