"""Helpers of the crash tests: the processes a data dir left, and runs whose
steps take a known time."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from sqlalchemy import select

from deckhand.client import DeckhandClient
from deckhand.store import runs as runs_store
from deckhand.store import steps as steps_store
from deckhand.store.db import Database
from deckhand.store.tables import run_events
from tests.support.deployment import Deployment, poll
from tests.support.runs import TERMINAL


@contextlib.asynccontextmanager
async def deployments_in(tmp: Path, prefix: str, lease_seconds: int
                         ) -> AsyncIterator[Callable[..., Deployment]]:
    """A maker of deployments under ``tmp`` (``make(database_url, lease_seconds=…)``);
    at the end each is torn down and every session still running for its data
    dir ended (agents and their browsers run in sessions of their own, made
    to outlive a server)."""
    made: list[Deployment] = []

    def make(database_url: str | None, lease: int = lease_seconds) -> Deployment:
        d = Deployment(tmp / f"d{len(made)}", database_url, secret_prefix=prefix,
                       lease_seconds=lease)
        d.tmp.mkdir()
        made.append(d)
        return d

    try:
        yield make
    finally:
        for d in made:
            await d.teardown()
            kill_sessions_naming(d.data_dir)


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


async def wait_steps(client: DeckhandClient, run_id: str, d: Deployment, n: int,
                     timeout: float) -> dict[str, Any]:
    async def reached() -> dict[str, Any] | None:
        run = await client.get_run(run_id)
        assert run["status"] not in TERMINAL, run
        return run if run["steps_completed"] >= n else None

    return await poll(reached, timeout=timeout, what=f"run {run_id} to reach step {n}",
                      logs=d.logs, every=0.02)


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


async def events_since(d: Deployment, run_id: str, seq: int) -> list[Any]:
    """The run's events after ``seq`` as stored (seq, type, data, created_at):
    the server's own timestamps, to compare with the test's clock."""
    db = Database(d.url)
    try:
        async with db.read() as conn:
            return list((await conn.execute(
                select(run_events.c.seq, run_events.c.type, run_events.c.data,
                       run_events.c.created_at)
                .where(run_events.c.run_id == run_id, run_events.c.seq > seq)
                .order_by(run_events.c.seq))).all())
    finally:
        await db.dispose()


async def last_seq(d: Deployment, run_id: str) -> int:
    return int((await run_row(d, run_id)).last_seq)
