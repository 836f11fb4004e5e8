"""Workflow runs survive a ``kill -9`` of the server: in a 3-branch parallel
(tasks in flight on three machines), in a wait, and while awaiting approval.
After a restart the workflow run finishes, each task step's child run was
created exactly once, and its event log is 1..N without a gap or a repeat."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from deckhand.client import sse_data
from deckhand.core.clock import utcnow
from deckhand.store.db import Database
from deckhand.store.tables import runs, workflow_steps
from tests.conftest import _create_pg_database
from tests.support.deployment import Deployment, free_port, poll
from tests.support.runs import TERMINAL

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(120)]


@pytest.fixture
async def deployment(request: pytest.FixtureRequest,
                     tmp_path: Path) -> AsyncIterator[Deployment]:
    backend = getattr(request, "param", "sqlite")
    url = None if backend == "sqlite" else await _create_pg_database(
        request.getfixturevalue("pg_server"))
    d = Deployment(tmp_path, url, secret_prefix="wf-crash-", lease_seconds=2)  # see test_kill_during_a_wait
    try:
        yield d
    finally:
        await d.teardown()


def task(step_id: str, steps: int, seconds: float, **fields: Any) -> dict[str, Any]:
    script: list[dict[str, Any]] = [
        {"actions": [{"kind": "terminal", "command": f"sleep {seconds}; echo {step_id}-{i}"}]}
        for i in range(1, steps + 1)]
    script[-1]["outcome"] = {"success": True, "answer": step_id}
    return {"id": step_id, "type": "task", "task": json.dumps({"script": script}), **fields}


class Api:
    def __init__(self, port: int, key: str) -> None:
        self.http = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}",
                                      headers={"X-API-Key": key}, timeout=30)

    async def call(self, method: str, path: str, **kw: Any) -> Any:
        for _ in range(100):  # the server may be restarting
            try:
                r = await self.http.request(method, path, **kw)
            except httpx.TransportError:
                await asyncio.sleep(0.1)
                continue
            assert r.status_code == 200, r.text
            return r.json()
        raise AssertionError(f"{method} {path}: no server")

    async def machine(self, d: Deployment, name: str) -> str:
        mid = (await self.call("POST", "/v1/machines", json={"display_name": name}))[
            "machine"]["id"]
        d.machines.append(mid)
        return str(mid)

    async def children(self, wf_run_id: str) -> list[dict[str, Any]]:
        listed = await self.call("GET", "/v1/runs", params={"limit": 200})
        return [r for r in listed["data"] if r.get("workflow_run_id") == wf_run_id]

    async def finish(self, run_id: str, d: Deployment, timeout: float) -> dict[str, Any]:
        async def ended() -> dict[str, Any] | None:
            run = await self.call("GET", f"/v1/workflows/runs/{run_id}")
            return run if run["status"] in TERMINAL else None

        return await poll(ended, timeout=timeout, what=f"workflow run {run_id} to end",
                          logs=d.logs)

    async def events(self, run_id: str) -> list[dict[str, Any]]:
        out = []
        async with asyncio.timeout(15):
            async with self.http.stream("GET", f"/v1/workflows/runs/{run_id}/events") as r:
                async for data in sse_data(r.aiter_lines()):
                    out.append(json.loads(data))
        return out


async def assert_each_task_once(d: Deployment, api: Api, run_id: str,
                                task_steps: list[str]) -> list[dict[str, Any]]:
    """One child run per task step (API and database agree), every one
    succeeded; the event log is whole."""
    db = Database(d.url)
    try:
        async with db.read() as conn:
            rows = (await conn.execute(select(runs.c.id, runs.c.metadata)
                                       .where(runs.c.workflow_run_id == run_id))).all()
            steps = (await conn.execute(select(workflow_steps).where(
                workflow_steps.c.workflow_run_id == run_id,
                workflow_steps.c.type == "task"))).all()
    finally:
        await db.dispose()
    assert sorted(r.metadata["workflow_step_id"] for r in rows) == sorted(task_steps)
    assert {s.child_run_id for s in steps} == {r.id for r in rows}
    kids = await api.children(run_id)
    assert sorted(k["id"] for k in kids) == sorted(r.id for r in rows)
    assert all(k["status"] == "succeeded" for k in kids), kids

    stream = await api.events(run_id)
    assert [e["seq"] for e in stream] == list(range(1, len(stream) + 1))
    assert stream[-1]["type"] == "done" and stream[-1]["data"]["status"] == "succeeded"
    assert sum(e["type"] == "done" for e in stream) == 1
    started = [e["data"]["key"] for e in stream if e["type"] == "step_started"]
    assert len(started) == len(set(started)), started
    task_starts = [e["data"] for e in stream
                   if e["type"] == "step_started" and e["data"]["type"] == "task"]
    assert sorted(s["child_run_id"] for s in task_starts) == sorted(r.id for r in rows)
    return stream


@pytest.mark.parametrize("deployment", ["sqlite", "postgres"], indirect=True)
async def test_kill_during_a_three_branch_parallel(deployment: Deployment) -> None:
    d = deployment
    key = d.create_key()
    port = free_port()
    server = await d.serve(port)
    api = Api(port, key)
    machines = {f"m{i}": await api.machine(d, f"m{i}") for i in range(3)}
    definition = {"steps": [
        {"id": "fan", "type": "parallel", "branches": [
            [task(f"b{i}", 4, 0.7, machine_id=f"{{{{inputs.m{i}}}}}")] for i in range(3)]},
        task("after", 1, 0.1, machine_id="{{inputs.m0}}"),
    ], "output": {"b0": "{{steps.b0.result.answer}}", "after": "{{steps.after.status}}"}}
    run = await api.call("POST", "/v1/workflows/runs", json={
        "definition": definition, "inputs": machines, "llm": {"model": "scripted"}})

    async def all_mid_task() -> bool:
        kids = await api.children(run["id"])
        return len(kids) == 3 and all(k["steps_completed"] >= 1 for k in kids)

    await poll(all_mid_task, timeout=30, what="the three branches to be mid-task", logs=d.logs)
    server.kill9()
    await d.serve(port)
    final = await api.finish(run["id"], d, timeout=60)
    assert final["status"] == "succeeded", final
    assert final["output"] == {"b0": "b0", "after": "succeeded"}
    await assert_each_task_once(d, api, run["id"], ["b0", "b1", "b2", "after"])
    for kid in await api.children(run["id"]):
        if kid["metadata"]["workflow_step_id"] != "after":
            assert kid["steps_completed"] == 4  # each step recorded once
    await api.http.aclose()


@pytest.mark.parametrize("deployment", ["sqlite", "postgres"], indirect=True)
async def test_kill_during_a_wait(deployment: Deployment) -> None:
    d = deployment
    key = d.create_key()
    port = free_port()
    server = await d.serve(port)
    api = Api(port, key)
    mid = await api.machine(d, "m")
    definition = {"steps": [task("before", 1, 0.1), {"id": "nap", "type": "wait", "seconds": 6},
                            task("after", 1, 0.1)]}
    run = await api.call("POST", "/v1/workflows/runs", json={
        "definition": definition, "machine_id": mid, "llm": {"model": "scripted"}})

    async def napping() -> bool:
        db = Database(d.url)
        try:
            async with db.read() as conn:
                row = (await conn.execute(select(workflow_steps).where(
                    workflow_steps.c.workflow_run_id == run["id"],
                    workflow_steps.c.key == "nap"))).first()
        finally:
            await db.dispose()
        return row is not None

    await poll(napping, timeout=30, what="the wait to start", logs=d.logs)
    await asyncio.sleep(1)
    server.kill9()
    await d.serve(port)
    restarted = utcnow()
    final = await api.finish(run["id"], d, timeout=60)
    assert final["status"] == "succeeded", final
    await assert_each_task_once(d, api, run["id"], ["before", "after"])

    db = Database(d.url)
    try:
        async with db.read() as conn:
            nap = (await conn.execute(select(workflow_steps).where(
                workflow_steps.c.workflow_run_id == run["id"],
                workflow_steps.c.key == "nap"))).one()
    finally:
        await db.dispose()
    # the wait kept its wake-up time across the restart (it did not begin again):
    # it ended at its wake-up time, or as soon as the run was taken up after it
    assert nap.wake_at == nap.started_at + timedelta(seconds=6)
    assert nap.finished_at >= nap.wake_at
    taken_up_by = max(nap.wake_at, restarted + timedelta(seconds=2))  # 2 s: the lease
    assert (nap.finished_at - taken_up_by).total_seconds() < 3, (nap, restarted)
    await api.http.aclose()


async def test_kill_while_awaiting_approval(deployment: Deployment) -> None:
    d = deployment
    key = d.create_key()
    port = free_port()
    server = await d.serve(port)
    api = Api(port, key)
    mid = await api.machine(d, "m")
    definition = {"steps": [task("before", 1, 0.1),
                            {"id": "gate", "type": "human_approval", "message": "go?"},
                            task("after", 1, 0.1)]}
    run = await api.call("POST", "/v1/workflows/runs", json={
        "definition": definition, "machine_id": mid, "llm": {"model": "scripted"}})

    async def waiting() -> bool:
        got = await api.call("GET", f"/v1/workflows/runs/{run['id']}")
        return bool(got["status"] == "awaiting_human")

    await poll(waiting, timeout=30, what="the approval", logs=d.logs)
    server.kill9()
    await d.serve(port)
    got = await api.call("GET", f"/v1/workflows/runs/{run['id']}")
    assert got["status"] == "awaiting_human" and got["awaiting_step_id"] == "gate"
    await api.call("POST", f"/v1/workflows/runs/{run['id']}/resume", json={"approved": True})
    final = await api.finish(run["id"], d, timeout=30)
    assert final["status"] == "succeeded", final
    await assert_each_task_once(d, api, run["id"], ["before", "after"])
    await api.http.aclose()
