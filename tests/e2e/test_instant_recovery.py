"""Instant recovery after a restart, with real processes and a real ``kill -9``.

The server keeps its worker identity in the data dir (engine/identity.py):
restarted on the same data dir, it resumes its own in-flight run at once
rather than after the run's lease (30 s here, so the difference is
unambiguous). A process of another identity (a ``worker`` started while the
server held the identity) still waits for the lease. Machine agents whose
machine the database no longer keeps are stopped when the server starts.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import delete, update

from deckhand.client import DeckhandClient
from deckhand.core.clock import utcnow
from deckhand.engine.identity import FILE as IDENTITY_FILE
from deckhand.store.db import Database
from deckhand.store.tables import machines
from tests.support.crash import (
    agent_pid,
    assert_recorded_once,
    deployments_in,
    events_since,
    last_seq,
    pid_alive,
    run_row,
    step_script,
    wait_status,
    wait_steps,
)
from tests.support.deployment import Deployment, free_port, poll

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(120)]

LONG_LEASE = 30
STEPS = 6


@pytest.fixture
async def deployments(tmp_path: Path) -> AsyncIterator[Callable[..., Deployment]]:
    async with deployments_in(tmp_path, "instant-", LONG_LEASE) as make:
        yield make


async def test_restarted_server_resumes_its_run_at_once(
    deployments: Callable[..., Deployment], backend: str | None,
) -> None:
    d = deployments(backend)
    key = d.create_key()
    port = free_port()
    server = await d.serve(port)
    stable = (d.data_dir / IDENTITY_FILE).read_text().strip()

    async with DeckhandClient(f"http://127.0.0.1:{port}", key, timeout=30) as client:
        machine = await client.create_machine("instant")
        mid = machine["id"]
        d.machines.append(mid)
        run = await client.create_run(machine_id=mid, task=step_script(STEPS, 0.5),
                                      model="scripted")
        run_id = run["id"]
        await wait_steps(client, run_id, d, 2, timeout=20)

        server.kill9()
        before = await run_row(d, run_id)
        assert before.claimed_by == stable, "the run was not claimed under the identity"
        old_lease = before.lease_expires_at
        assert old_lease > utcnow() + timedelta(seconds=LONG_LEASE / 2)
        seq = await last_seq(d, run_id)

        await d.serve(port)
        healthy_at = utcnow()
        final = await wait_status(client, run_id, d, timeout=40)
        assert final["status"] == "succeeded", final

        after = await events_since(d, run_id, seq)
        next_step = next(e for e in after if e.type == "step")
        assert next_step.created_at - healthy_at < timedelta(seconds=5), (
            next_step.created_at, healthy_at, d.logs())
        # well before the old lease would have let anyone take the run
        assert next_step.created_at < old_lease - timedelta(seconds=LONG_LEASE / 2)

        await assert_recorded_once(d, client, run_id, steps=STEPS)
        row = await run_row(d, run_id)
        assert row.attempts == 2 and row.claimed_by is None
        await client.delete_machine(mid)


async def test_another_identity_waits_for_the_lease(
    deployments: Callable[..., Deployment],
) -> None:
    """A ``worker`` started while the server holds the data dir's identity
    gets a fresh one; when the server dies it takes the run over only once
    the old lease has expired."""
    d = deployments(None, lease=6)
    key = d.create_key()
    port = free_port()
    server = await d.serve(port)
    stable = (d.data_dir / IDENTITY_FILE).read_text().strip()

    async with DeckhandClient(f"http://127.0.0.1:{port}", key, timeout=30) as client:
        machine = await client.create_machine("instant")
        mid = machine["id"]
        d.machines.append(mid)
        agent = agent_pid(d, mid)
        # long enough to outlast a worker slow to start on a loaded host (the
        # test ends once the worker has taken the run over, not with the run)
        run = await client.create_run(machine_id=mid, task=step_script(40, 0.5),
                                      model="scripted")
        run_id = run["id"]
        await wait_steps(client, run_id, d, 1, timeout=20)

        worker = d.spawn("worker", "worker", "--slots", "2")

        async def started() -> str | None:
            assert worker.alive(), d.logs()
            found = re.search(r"worker (\S+) started", worker.log.read_text())
            return found.group(1) if found else None

        other = await poll(started, timeout=30, what="the worker to start", logs=d.logs)
        assert other != stable and other.count(":") == 2  # a fresh host:pid:random

        await wait_steps(client, run_id, d, 2, timeout=20)
        server.kill9()
        assert pid_alive(agent)
        before = await run_row(d, run_id)
        assert before.claimed_by == stable
        old_lease = before.lease_expires_at
        seq = await last_seq(d, run_id)

        async def taken_over() -> list[object]:
            return await events_since(d, run_id, seq)

        after = await poll(taken_over, timeout=30, what="the worker to take the run",
                           logs=d.logs)
        assert (await run_row(d, run_id)).claimed_by in (other, None)
        assert after[0].created_at >= old_lease, (after[0], old_lease)
        assert worker.alive(), d.logs()


async def test_agents_of_machines_the_database_forgot_are_stopped(
    deployments: Callable[..., Deployment],
) -> None:
    d = deployments(None)
    key = d.create_key()
    port = free_port()
    server = await d.serve(port)

    async with DeckhandClient(f"http://127.0.0.1:{port}", key, timeout=30) as client:
        made = [(await client.create_machine(f"m{i}"))["id"] for i in range(4)]
        d.machines.extend(made)
        deleted, terminated, removed, kept = made
        pids = {mid: agent_pid(d, mid) for mid in made}
        server.kill9()
        assert all(pid_alive(p) for p in pids.values())

        db = Database(d.url)
        try:
            async with db.write() as conn:
                await conn.execute(delete(machines).where(machines.c.id == deleted))
                await conn.execute(update(machines).where(machines.c.id == terminated)
                                   .values(status="terminated"))
        finally:
            await db.dispose()
        # its row is kept, but its directory is gone (as when a data dir is removed)
        shutil.rmtree(d.data_dir / "machines" / removed)

        await d.serve(port)

        async def stopped() -> bool:
            return not any(pid_alive(pids[m]) for m in (deleted, terminated, removed))

        await poll(stopped, timeout=20, what="the orphaned agents to stop", logs=d.logs)
        for mid in (deleted, terminated):
            assert not (d.data_dir / "machines" / mid).exists(), mid
        assert pid_alive(pids[kept]) and agent_pid(d, kept) == pids[kept]
        await client.delete_machine(kept)
