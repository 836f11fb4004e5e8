"""Exactly-once firing with real processes: ``deckhand serve`` (no scheduler
of its own) and two ``deckhand worker`` processes on PostgreSQL; one worker
is killed with ``kill -9`` while firings are due. Every due firing creates
exactly one run."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from deckhand.client import DeckhandClient
from deckhand.store.db import Database
from deckhand.store.tables import runs, schedule_runs
from tests.conftest import _create_pg_database
from tests.support.crash import kill_sessions_naming
from tests.support.deployment import Deployment, free_port, poll
from tests.support.schedules import at

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(120)]
SCHEDULES = 24


@pytest.fixture
async def deployment(tmp_path: Path, pg_server: str) -> AsyncIterator[Deployment]:
    d = Deployment(tmp_path / "d", await _create_pg_database(pg_server), secret_prefix="sched-",
                   lease_seconds=10)
    d.tmp.mkdir()
    try:
        yield d
    finally:
        await d.teardown()
        kill_sessions_naming(d.data_dir)


async def counts(d: Deployment) -> tuple[int, int, int]:
    """(firings, firings with a run, runs) as the database holds them."""
    db = Database(d.url)
    try:
        async with db.read() as conn:
            firings = (await conn.execute(select(func.count()).select_from(schedule_runs)))
            with_run = (await conn.execute(select(func.count(schedule_runs.c.run_id.distinct()))))
            all_runs = (await conn.execute(select(func.count()).select_from(runs)))
            return firings.scalar_one(), with_run.scalar_one(), all_runs.scalar_one()
    finally:
        await db.dispose()


async def test_two_workers_one_killed_every_due_firing_makes_one_run(
        deployment: Deployment) -> None:
    d = deployment
    key = d.create_key()
    port = free_port()
    await d.serve(port, env={"DECKHAND_SCHEDULER": "false"})
    workers = [d.spawn("worker", "worker", "--slots", "2") for _ in range(2)]
    async with DeckhandClient(f"http://127.0.0.1:{port}", key, timeout=30) as client:
        mid = (await client.create_machine("sched"))["id"]
        d.machines.append(mid)
        # one-shots due in two waves, the first while a worker is killed
        first = time.time() + 4
        for n in range(SCHEDULES):
            await client.call("POST", "/v1/schedules", json={
                "name": f"s{n}", "machine_id": mid, "task_prompt": "Run `echo fired`",
                "run_at": at(first - time.time() + (0 if n % 2 else 2))})
        await asyncio.sleep(max(0.0, first - time.time()))
        workers[0].kill9()
        assert workers[1].alive(), d.logs()

        async def all_fired() -> tuple[int, int, int] | None:
            got = await counts(d)
            return got if got[0] >= SCHEDULES else None

        await poll(all_fired, timeout=30, what=f"{SCHEDULES} firings", logs=d.logs)
        await asyncio.sleep(1.0)  # a late double firing would show now
        assert await counts(d) == (SCHEDULES, SCHEDULES, SCHEDULES), d.logs()
        listed = await client.call("GET", "/v1/schedules", params={"limit": 200})
        assert len(listed["data"]) == SCHEDULES
        assert all(s["run_count"] == 1 and not s["enabled"] for s in listed["data"])
        await client.delete_machine(mid)
