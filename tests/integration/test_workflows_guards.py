"""Workflow run guards (budget, iterations, deadline), cancellation, human
approvals, the per-account limit of task runs, and workflow_run.* webhooks."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from deckhand.events.webhooks import verify
from deckhand.store import webhooks as outbox
from tests.conftest import LiveServer, make_settings, serve
from tests.support.contract import assert_error, assert_valid
from tests.support.polling import wait_until
from tests.support.runs import machine
from tests.support.servers import started
from tests.support.workflows import (  # destroy_machines: an autouse fixture
    child_runs,
    destroy_machines,  # noqa: F401
    finished,
    get_wf_run,
    sh,
    start_adhoc,
    task,
    wait,
    wait_run_status,
    wait_wf,
    wf_events,
)

pytestmark = pytest.mark.asyncio


def slow_task(step_id: str, steps: int, seconds: float = 0.3, **fields: Any) -> dict[str, Any]:
    return task(step_id, *[sh(f"sleep {seconds}") for _ in range(steps)], **fields)


async def test_budget_stops_the_run_and_cancels_running_tasks(server: LiveServer) -> None:
    key = await server.key()  # a live key: every agent step costs 5 cents
    async with server.client(key) as c:
        m0, m1 = await machine(c, "m0"), await machine(c, "m1")
        definition = {"steps": [{"id": "fan", "type": "parallel", "branches": [
            [slow_task("a", 20)], [slow_task("b", 20, machine_id=m1)]]}]}
        run = await start_adhoc(c, definition, machine_id=m0, budget_cents=22)
        assert run["budget_cents"] == 22
        final = await wait_wf(c, run["id"])
        assert final["status"] == "failed"
        assert final["error"]["code"] == "BUDGET_EXCEEDED", final["error"]
        kids = await child_runs(c, run["id"])
        assert len(kids) == 2
        for kid in kids:
            ended = await wait_run_status(c, kid["id"])
            assert ended["status"] == "cancelled", ended
            assert ended["steps_completed"] < 20
        spent = sum([(await c.get(f"/v1/runs/{k['id']}")).json()["cost_cents"] for k in kids])
        assert 22 <= final["spent_cents"] <= spent < 22 + 20  # stopped within a step or two
        ends = finished(await wf_events(c, run["id"]))
        assert ends["fan|0/a"]["status"] == ends["fan|1/b"]["status"] == "cancelled"

        # at the budget, no new task starts
        two = {"steps": [task("first", sh("true", answer="ok")),
                         task("second", sh("true", answer="ok"))]}
        run = await start_adhoc(c, two, machine_id=m0, budget_cents=5)
        final = await wait_wf(c, run["id"])
        assert final["error"]["code"] == "BUDGET_EXCEEDED" and final["spent_cents"] == 5
        assert [k["metadata"]["workflow_step_id"] for k in await child_runs(c, run["id"])] == [
            "first"]
        # within the budget it succeeds; 0 means unlimited
        for budget in (10, 0):
            run = await start_adhoc(c, two, machine_id=m0, budget_cents=budget)
            final = await wait_wf(c, run["id"])
            assert final["status"] == "succeeded" and final["spent_cents"] == 10
            assert final["budget_cents"] == (budget or None)


async def test_iteration_guard_and_deadline(server: LiveServer) -> None:
    key = await server.key(test=True)
    async with server.client(key) as c:
        mid = await machine(c)
        loops = {"steps": [{"id": "outer", "type": "loop", "count": 2, "body": [
            {"id": "inner", "type": "loop", "count": 3, "body": [wait("w")]}]}]}
        run = await start_adhoc(c, loops, max_iterations=5)
        final = await wait_wf(c, run["id"])
        assert final["status"] == "failed", final
        assert final["error"]["code"] == "MAX_ITERATIONS_EXCEEDED"
        assert final["iterations_used"] == 5 and final["max_iterations"] == 5
        run = await start_adhoc(c, loops, max_iterations=8)
        final = await wait_wf(c, run["id"])
        assert final["status"] == "succeeded" and final["iterations_used"] == 2 + 6

        # the deadline ends the run in a task (cancelling it), in a wait, awaiting approval
        cases = [
            {"steps": [slow_task("long", 1, seconds=20)]},
            {"steps": [wait("nap", 30)]},
            {"steps": [{"id": "ok", "type": "human_approval", "message": "?"}]},
        ]
        runs = [await start_adhoc(c, d, machine_id=mid, deadline_seconds=1) for d in cases]
        began = time.monotonic()
        for run in runs:
            final = await wait_wf(c, run["id"], timeout=15)
            assert final["status"] == "timed_out", final
            assert final["error"]["code"] == "DEADLINE_EXCEEDED"
        assert time.monotonic() - began < 6
        (kid,) = await child_runs(c, runs[0]["id"])
        assert (await wait_run_status(c, kid["id"]))["status"] == "cancelled"
        stream = await wf_events(c, runs[1]["id"])
        assert finished(stream)["nap"]["status"] == "cancelled"
        assert stream[-1]["data"]["status"] == "timed_out"


async def test_cancel_cancels_child_runs(server: LiveServer) -> None:
    key = await server.key(test=True)
    async with server.client(key) as c:
        m0, m1 = await machine(c, "m0"), await machine(c, "m1")
        definition = {"steps": [{"id": "fan", "type": "parallel", "branches": [
            [slow_task("a", 1, seconds=30)], [slow_task("b", 1, seconds=30, machine_id=m1)]]}]}
        run = await start_adhoc(c, definition, machine_id=m0)

        async def both_running() -> bool:
            kids = await child_runs(c, run["id"])
            return len(kids) == 2 and all(k["status"] == "running" for k in kids)

        await wait_until(both_running, timeout=15, what="both task runs to be running")
        r = await c.post(f"/v1/workflows/runs/{run['id']}/cancel")
        assert r.status_code == 200
        assert_valid("WorkflowRunResponse", r.json())
        assert r.json()["status"] == "cancelled"
        assert r.json()["error"]["code"] == "CANCELLED"
        for kid in await child_runs(c, run["id"]):
            assert (await wait_run_status(c, kid["id"]))["status"] == "cancelled"
        assert_error(await c.post(f"/v1/workflows/runs/{run['id']}/cancel"), 409,
                     "INVALID_STATE")

        # a run that waits for a human is cancelled at once
        run = await start_adhoc(c, {"steps": [{"id": "ok", "type": "human_approval",
                                               "message": "?"}]})
        await wait_wf(c, run["id"], {"awaiting_human"})
        cancelled = (await c.post(f"/v1/workflows/runs/{run['id']}/cancel")).json()
        assert cancelled["status"] == "cancelled" and cancelled["awaiting_step_id"] is None
        stream = await wf_events(c, run["id"])
        assert finished(stream)["ok"]["status"] == "cancelled"
        assert_error(await c.post(f"/v1/workflows/runs/{run['id']}/resume", json={}), 409,
                     "INVALID_STATE")


async def test_human_approval_answers_and_timeouts(server: LiveServer) -> None:
    key = await server.key(test=True)
    async with server.client(key) as c:
        mid = await machine(c)

        def gate(**fields: Any) -> dict[str, Any]:
            return {"steps": [
                {"id": "ask", "type": "human_approval", "message": "Deploy {{inputs.env}}?",
                 **fields},
                task("deploy", sh("echo deployed", answer="deployed"))]}

        rejected = await start_adhoc(c, gate(), machine_id=mid, inputs={"env": "prod"})
        approved = await start_adhoc(c, gate(), machine_id=mid, inputs={"env": "dev"})
        for run in (rejected, approved):
            waiting = await wait_wf(c, run["id"], {"awaiting_human"})
            assert waiting["awaiting_step_id"] == "ask"
        assert (await get_wf_run(c, rejected["id"]))["awaiting_human_reason"] == "Deploy prod?"
        assert await child_runs(c, rejected["id"]) == []  # nothing ran past the gate

        r = await c.post(f"/v1/workflows/runs/{rejected['id']}/resume",
                         json={"approved": False, "note": "not today"})
        assert r.status_code == 200
        body = r.json()
        assert_valid("WorkflowRunResponse", body)
        assert body["status"] == "failed" and body["error"]["code"] == "APPROVAL_REJECTED"
        assert "not today" in body["error"]["message"] and body["error"]["step_id"] == "ask"
        assert await child_runs(c, rejected["id"]) == []

        r = await c.post(f"/v1/workflows/runs/{approved['id']}/resume")  # approved: default true
        assert r.status_code == 200 and r.json()["status"] == "queued"
        final = await wait_wf(c, approved["id"])
        assert final["status"] == "succeeded"
        assert len(await child_runs(c, approved["id"])) == 1
        stream = await wf_events(c, approved["id"])
        assert [e["data"]["approved"] for e in stream if e["type"] == "resumed"] == [True]
        assert_error(await c.post(f"/v1/workflows/runs/{approved['id']}/resume",
                                  json={"approved": "maybe"}), 422, "VALIDATION_ERROR")

        timeouts = {on: await start_adhoc(c, gate(timeout_seconds=1, on_timeout=on),
                                          machine_id=mid, inputs={"env": on})
                    for on in ("fail", "cancel")}
        for on, status in (("fail", "failed"), ("cancel", "cancelled")):
            final = await wait_wf(c, timeouts[on]["id"], timeout=10)
            assert final["status"] == status, final
            assert final["error"]["code"] == "AWAITING_HUMAN_TIMEOUT"
            assert await child_runs(c, timeouts[on]["id"]) == []
            ends = finished(await wf_events(c, timeouts[on]["id"]))
            assert ends["ask"]["status"] == "timed_out"


async def test_account_limit_of_concurrent_task_runs(tmp_path: Path, sqlite_url: str) -> None:
    settings = make_settings(tmp_path, sqlite_url, workflow_max_concurrent_tasks=2, workers=6)
    async with serve(settings) as s:
        key = await s.key(test=True)
        async with s.client(key) as c:
            machines = {f"m{i}": await machine(c, f"m{i}") for i in range(4)}
            definition = {"steps": [{"id": "fan", "type": "parallel", "branches": [
                [task(f"b{i}", sh("sleep 0.6", answer="ok"), machine_id=f"{{{{inputs.m{i}}}}}")]
                for i in range(4)]}]}
            run = await start_adhoc(c, definition, inputs=machines)
            final = await wait_wf(c, run["id"])
            assert final["status"] == "succeeded"
            kids = await child_runs(c, run["id"])
            assert len(kids) == 4
            # never more than 2 task runs alive at once (from creation to end)
            points = sorted([(k["created_at"], 1) for k in kids]
                            + [(k["finished_at"], -1) for k in kids], key=lambda p: (p[0], p[1]))
            alive, peak = 0, 0
            for _, delta in points:
                alive += delta
                peak = max(peak, alive)
            assert peak == 2, points


class Receiver:
    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []

    async def handle(self, request: Request) -> JSONResponse:
        self.received.append((dict(request.headers), await request.body()))
        return JSONResponse({"ok": True})


async def test_workflow_run_webhooks_are_signed(tmp_path: Path, database_url: str) -> None:
    receiver = Receiver()
    app = Starlette(routes=[Route("/hook", receiver.handle, methods=["POST"])])
    hook = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    hook_task = asyncio.create_task(hook.serve())
    url = f"http://127.0.0.1:{await started(hook, hook_task, 'the webhook receiver')}/hook"
    settings = make_settings(tmp_path, database_url, webhook_allow_hosts="127.0.0.1")
    try:
        async with serve(settings) as s:
            key = await s.key(test=True)
            async with s.client(key) as c:
                definition = {"steps": [{"id": "ok", "type": "human_approval", "message": "?"},
                                        wait("w")], "output": {"done": True}}
                run = await start_adhoc(c, definition, webhook_url=url)
                secret = run["webhook_secret"]
                assert secret and secret.startswith("whsec_")
                assert (await get_wf_run(c, run["id"]))["webhook_secret"] is None
                await wait_wf(c, run["id"], {"awaiting_human"})
                await c.post(f"/v1/workflows/runs/{run['id']}/resume", json={})
                await wait_wf(c, run["id"])
                await wait_until(lambda: [b for _, b in receiver.received],
                                 done=lambda bodies: len(bodies) >= 2, timeout=15,
                                 what="two workflow_run webhooks")
            bodies = [json.loads(body) for _, body in receiver.received]
            assert [b["type"] for b in bodies] == ["workflow_run.awaiting_human",
                                                   "workflow_run.succeeded"]
            for (headers, raw), body in zip(receiver.received, bodies, strict=True):
                assert verify(secret, raw, headers["coasty-signature"])
                assert body["id"] == headers["coasty-webhook-id"]
                assert_valid("WorkflowRunResponse", body["workflow_run"])
                assert body["workflow_run"]["id"] == run["id"]
            assert bodies[0]["workflow_run"]["awaiting_step_id"] == "ok"
            assert bodies[1]["workflow_run"]["output"] == {"done": True}

            async def recorded() -> list[Any]:
                async with s.services.db.read() as conn:
                    return await outbox.list_for_run(conn, run["id"])

            # the dispatcher records the answer after it
            deliveries = await wait_until(
                recorded, timeout=10, what="both deliveries recorded as delivered",
                done=lambda ds: [d.status for d in ds] == ["delivered", "delivered"])
            assert [d.attempts for d in deliveries] == [1, 1]
    finally:
        hook.should_exit = True
        await hook_task
