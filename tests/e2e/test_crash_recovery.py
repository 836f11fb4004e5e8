"""Crash recovery with real processes and a real ``kill -9``.

The server (or a worker) is killed while a run is mid-step; the machine agent,
in its own session, lives on. Another process — the restarted server, or the
other worker — takes the run over once the lease (2 s here) expires and
finishes it: every step recorded exactly once, the event log 1..N without a
gap or a repeat (durability rules 1, 2 and 6).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from deckhand.client import DeckhandClient
from tests.conftest import _create_pg_database
from tests.support.crash import (
    agent_pid,
    assert_recorded_once,
    deployments_in,
    pid_alive,
    run_row,
    step_script,
    wait_status,
    wait_steps,
)
from tests.support.deployment import Deployment, free_port

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(90)]

LEASE_SECONDS = 2


# ----------------------------------------------------------------- deployments


@pytest.fixture
async def deployments(tmp_path: Path) -> AsyncIterator[Callable[[str | None], Deployment]]:
    async with deployments_in(tmp_path, "crash-", LEASE_SECONDS) as make:
        yield make


# ----------------------------------------------------------------- helpers


# ----------------------------------------------------------------- tests


async def test_server_killed_mid_run_resumes_after_restart(
    deployments: Callable[[str | None], Deployment], backend: str | None,
) -> None:
    d = deployments(backend)
    key = d.create_key()
    port = free_port()
    server = await d.serve(port)
    base = f"http://127.0.0.1:{port}"

    async with DeckhandClient(base, key, timeout=30) as client:
        machine = await client.create_machine("crash")
        mid = machine["id"]
        d.machines.append(mid)
        agent = agent_pid(d, mid)

        run = await client.create_run(machine_id=mid, task=step_script(5, 0.7),
                                      model="scripted")
        run_id = run["id"]
        await wait_steps(client, run_id, d, 2, timeout=20)

        server.kill9()
        assert pid_alive(agent), "the machine agent died with the server"

        await d.serve(port)
        final = await wait_status(client, run_id, d, timeout=25)
        assert final["status"] == "succeeded", final
        assert pid_alive(agent) and agent_pid(d, mid) == agent, "the agent was not reattached"

        stream = await assert_recorded_once(d, client, run_id, steps=5)
        row = await run_row(d, run_id)
        assert row.attempts == 2 and row.claimed_by is None
        # The step in flight at the kill was started again (at-least-once
        # actions) but recorded once (exactly-once records).
        started = [e["data"]["number"] for e in stream
                   if e["type"] == "step" and e["data"]["status"] == "started"]
        assert sorted(set(started)) == [1, 2, 3, 4, 5] and len(started) in (5, 6)

        await client.delete_machine(mid)
    assert not pid_alive(agent)


async def test_worker_killed_other_worker_finishes(
    deployments: Callable[[str | None], Deployment], pg_server: str,
) -> None:
    d = deployments(await _create_pg_database(pg_server))
    key = d.create_key()
    port = free_port()
    workers = [d.spawn(f"worker{i}", "worker", "--slots", "2") for i in range(2)]
    await d.serve(port, "--no-workers")
    base = f"http://127.0.0.1:{port}"

    async with DeckhandClient(base, key, timeout=30) as client:
        machine = await client.create_machine("crash")
        mid = machine["id"]
        d.machines.append(mid)
        agent = agent_pid(d, mid)
        for w in workers:
            assert w.alive(), d.logs()

        run = await client.create_run(machine_id=mid, task=step_script(8, 0.5),
                                      model="scripted")
        run_id = run["id"]
        await wait_steps(client, run_id, d, 2, timeout=20)

        row = await run_row(d, run_id)
        assert row.claimed_by, row
        # One worker holds the data dir's identity, the other a fresh one:
        # each logs the id it claims under.
        (owner,) = [w for w in workers
                    if f"worker {row.claimed_by} started" in w.log.read_text()]
        (other,) = [w for w in workers if w is not owner]
        owner.kill9()
        assert pid_alive(agent), "the machine agent died with the worker"

        final = await wait_status(client, run_id, d, timeout=30)
        assert final["status"] == "succeeded", final
        assert other.alive(), d.logs()

        await assert_recorded_once(d, client, run_id, steps=8)
        row = await run_row(d, run_id)
        assert row.attempts == 2 and row.claimed_by is None

        await client.delete_machine(mid)
    assert not pid_alive(agent)
