"""A recorded run survives ``kill -9`` of the server: every step recorded
when the server died has its screens, and once the orphan sweep has run (no
server up) and the restarted server has finished the run, every step has its
screens and no bytes are left that no step points at. On both databases."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from deckhand.artifacts import FsArtifactStore
from deckhand.artifacts.sweep import ArtifactSweeper
from deckhand.client import DeckhandClient
from deckhand.store import artifacts as artifacts_store
from deckhand.store import steps as steps_store
from deckhand.store.db import Database
from tests.support.crash import kill_sessions_naming, wait_status, wait_steps
from tests.support.deployment import Deployment, free_port

pytestmark = [
    pytest.mark.asyncio, pytest.mark.timeout(120),
    pytest.mark.skipif(any(shutil.which(b) is None for b in ("Xvfb", "openbox", "xterm"))
                       or not os.path.exists("/usr/bin/chromium"),
                       reason="desktop packages not installed (scripts/install-system-deps)"),
]

STEPS = 6


@pytest.fixture
async def deployment(tmp_path: Path, backend: str | None) -> AsyncIterator[Deployment]:
    d = Deployment(tmp_path / "d", backend, secret_prefix="rec-", lease_seconds=30)
    d.tmp.mkdir()
    try:
        yield d
    finally:
        await d.teardown()
        kill_sessions_naming(d.data_dir)


def _script() -> str:
    steps: list[dict[str, object]] = [
        {"actions": [{"kind": "move", "x": 100 + 40 * i, "y": 100 + 30 * i},
                     {"kind": "wait", "seconds": 0.25}], "text": f"step {i}"}
        for i in range(1, STEPS + 1)]
    steps[-1]["outcome"] = {"success": True, "answer": "ok"}
    return json.dumps({"script": steps})


async def _recorded(d: Deployment, run_id: str
                    ) -> tuple[list[int], dict[int, set[str]], set[str]]:
    """The run's step numbers, each step's screen kinds whose bytes are
    stored, and the keys the rows point at."""
    db = Database(d.url)
    try:
        async with db.read() as conn:
            steps = [s.number for s in await steps_store.for_run(conn, run_id)]
            rows = await artifacts_store.for_run(conn, run_id)
    finally:
        await db.dispose()
    store = FsArtifactStore(d.data_dir / "artifacts")
    kept: dict[int, set[str]] = {}
    for a in rows:
        if await store.get(a.sha256) is not None:
            kept.setdefault(a.step, set()).add(a.kind)
    return steps, kept, {a.sha256 for a in rows}


async def test_every_step_keeps_its_screens_through_a_kill_9(deployment: Deployment) -> None:
    d = deployment
    key = d.create_key()
    port = free_port()
    server = await d.serve(port)
    async with DeckhandClient(f"http://127.0.0.1:{port}", key, timeout=30) as client:
        machine = await client.create_machine("rec", desktop_enabled=True)
        d.machines.append(machine["id"])
        run = await client.create_run(machine_id=machine["id"], task=_script(),
                                      model="scripted")
        await wait_steps(client, run["id"], d, 2, timeout=30)
        server.kill9()

        steps, kept, _ = await _recorded(d, run["id"])
        assert len(steps) >= 2
        assert all(kept.get(n) == {"screen", "after"} for n in steps), (steps, kept)

        # what `deckhand artifacts sweep --grace-seconds 0` does, safe with no server up
        db = Database(d.url)
        try:
            await ArtifactSweeper(db, FsArtifactStore(d.data_dir / "artifacts"),
                                  retention_days=30, grace_seconds=0, every_seconds=1).sweep()
        finally:
            await db.dispose()

        await d.serve(port)
        final = await wait_status(client, run["id"], d, timeout=60)
        assert final["status"] == "succeeded", final

        steps, kept, referenced = await _recorded(d, run["id"])
        assert steps == list(range(1, STEPS + 1))
        assert all(kept.get(n) == {"screen", "after"} for n in steps), kept
        stored = {b.key for b in await FsArtifactStore(d.data_dir / "artifacts").scan()}
        assert stored == referenced  # no bytes without a step, no step without its bytes
        page = await client.run_steps(run["id"])
        assert [s["number"] for s in page["data"]] == steps
        assert all(s["screenshot_url"] for s in page["data"])
        await client.delete_machine(machine["id"])
