"""Crash recovery with real processes and a real ``kill -9``.

The server (or a worker) is killed while a run is mid-step; the machine agent,
in its own session, lives on. Another process — the restarted server, or the
other worker — takes the run over once the lease (2 s here) expires and
finishes it: every step recorded exactly once, the event log 1..N without a
gap or a repeat (durability rules 1, 2 and 6).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from deckhand.client import DeckhandClient
from deckhand.store import runs as runs_store
from deckhand.store import steps as steps_store
from deckhand.store.db import Database
from tests.conftest import _create_pg_database
from tests.support.deployment import Deployment, free_port, poll
from tests.support.runs import TERMINAL

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(90)]

LEASE_SECONDS = 2


# ----------------------------------------------------------------- deployments


@pytest.fixture
async def deployments(tmp_path: Path) -> AsyncIterator[Callable[[str | None], Deployment]]:
    made: list[Deployment] = []

    def make(database_url: str | None) -> Deployment:
        d = Deployment(tmp_path / f"d{len(made)}", database_url, secret_prefix="crash-",
                       lease_seconds=LEASE_SECONDS)
        d.tmp.mkdir()
        made.append(d)
        return d

    try:
        yield make
    finally:
        for d in made:
            await d.teardown()
            # End any session still running for this data dir (agents and
            # their browsers run in sessions of their own, made to outlive a
            # server).
            kill_sessions_naming(d.data_dir)


@pytest.fixture(params=["sqlite", "postgres"])
async def backend(request: pytest.FixtureRequest) -> str | None:
    """None for SQLite in the data dir, else a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return None
    return await _create_pg_database(request.getfixturevalue("pg_server"))


# ----------------------------------------------------------------- helpers


def kill_sessions_naming(root: Path) -> None:
    """SIGKILL each process session whose leader's command line names ``root``."""
    needle = str(root).encode()
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        pid = int(name)
        try:
            leader = os.getsid(pid) == pid
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if leader and needle in cmdline:
            with contextlib.suppress(OSError):
                os.killpg(pid, signal.SIGKILL)


def pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read().decode(errors="replace")
    except OSError:
        return False
    return raw[raw.rfind(")") + 2] not in "ZX"


def step_script(n: int, seconds: float) -> str:
    """``n`` steps, each one terminal command; the last also ends the run."""
    script: list[dict[str, Any]] = [
        {"actions": [{"kind": "terminal", "command": f"sleep {seconds}; echo step-{i}"}]}
        for i in range(1, n + 1)
    ]
    script[-1]["outcome"] = {"success": True, "answer": "ok"}
    return json.dumps({"script": script})


def agent_pid(d: Deployment, machine_id: str) -> int:
    info = json.loads((d.data_dir / "machines" / machine_id / "agent.json").read_text())
    return int(info["pid"])


async def run_row(d: Deployment, run_id: str) -> Any:
    db = Database(d.url)
    try:
        async with db.read() as conn:
            return await runs_store.get(conn, run_id)
    finally:
        await db.dispose()


async def assert_recorded_once(d: Deployment, client: DeckhandClient, run_id: str,
                               steps: int) -> list[dict[str, Any]]:
    """API, database and event log agree: ``steps`` steps, each recorded once."""
    run = await client.get_run(run_id)
    assert run["status"] == "succeeded", run
    assert run["steps_completed"] == steps
    assert run["result"]["answer"] == "ok"
    assert run["result"]["last_output"] == f"step-{steps}\n"

    db = Database(d.url)
    try:
        async with db.read() as conn:
            rows = await steps_store.for_run(conn, run_id)
    finally:
        await db.dispose()
    assert [r.number for r in rows] == list(range(1, steps + 1))
    for r in rows:
        assert [x["output"] for x in r.results] == [f"step-{r.number}\n"], r.results

    async with asyncio.timeout(15):
        stream = [e async for e in client.events(run_id)]
    seqs = [e["seq"] for e in stream]
    assert seqs == list(range(1, len(stream) + 1)), seqs
    assert stream[-1]["type"] == "done" and stream[-1]["data"]["status"] == "succeeded"
    assert sum(e["type"] == "done" for e in stream) == 1
    completed = [e["data"]["number"] for e in stream
                 if e["type"] == "step" and e["data"]["status"] == "completed"]
    assert completed == list(range(1, steps + 1))
    billed = [e["data"]["step"] for e in stream if e["type"] == "billing"]
    assert billed == list(range(1, steps + 1))
    return stream


async def wait_status(client: DeckhandClient, run_id: str, d: Deployment,
                      timeout: float) -> dict[str, Any]:
    async def ended() -> dict[str, Any] | None:
        run = await client.get_run(run_id)
        return run if run["status"] in TERMINAL else None

    return await poll(ended, timeout=timeout, what=f"run {run_id} to end", logs=d.logs)


async def wait_steps(client: DeckhandClient, run_id: str, d: Deployment, n: int,
                     timeout: float) -> dict[str, Any]:
    async def reached() -> dict[str, Any] | None:
        run = await client.get_run(run_id)
        assert run["status"] not in TERMINAL, run
        return run if run["steps_completed"] >= n else None

    return await poll(reached, timeout=timeout, what=f"run {run_id} to reach step {n}",
                      logs=d.logs, every=0.02)


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
        owner_pid = int(row.claimed_by.split(":")[1])
        (owner,) = [w for w in workers if w.pid == owner_pid]
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
