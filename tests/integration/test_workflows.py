"""Workflows over real HTTP, on SQLite and PostgreSQL, with real terminal
machines and the scripted brain: the API (saved and ad-hoc, versions,
archive, validation), every step type, events, child runs."""

from __future__ import annotations

import time

import pytest

from tests.conftest import LiveServer
from tests.support.contract import assert_error, assert_valid
from tests.support.runs import machine
from tests.support.workflows import (  # destroy_machines: an autouse fixture
    TERMINAL,
    assert_log,
    child_runs,
    destroy_machines,  # noqa: F401
    finished,
    get_wf_run,
    sh,
    start_adhoc,
    started,
    task,
    wait,
    wait_run_status,
    wait_wf,
    wf_events,
)

pytestmark = pytest.mark.asyncio


# -- workflows: create, list, get, update, archive ----------------------------------------------


SIMPLE = {"version": "2026-06-01", "steps": [wait("pause", 0)],
          "output": {"site": "{{inputs.site}}"}}


async def test_workflow_lifecycle_versions_and_archive(server: LiveServer) -> None:
    key = await server.key()
    async with server.client(key) as c:
        body = {"name": "Report", "slug": "report", "definition": SIMPLE,
                "inputs_schema": {"type": "object", "required": ["site"],
                                  "properties": {"site": {"type": "string"}}},
                "description": "sends the report", "metadata": {"team": "ops"}}
        r = await c.post("/v1/workflows", json=body, headers={"Idempotency-Key": "wf-1"})
        assert r.status_code == 200, r.text
        wf = r.json()
        assert_valid("WorkflowResponse", wf)
        assert wf["object"] == "workflow" and wf["version"] == 1 and wf["status"] == "active"
        assert wf["slug"] == "report" and wf["definition"] == SIMPLE
        assert wf["dsl_version"] == "2026-06-01" and wf["request_id"] == r.headers[
            "x-coasty-request-id"]
        replay = await c.post("/v1/workflows", json=body, headers={"Idempotency-Key": "wf-1"})
        assert replay.json()["id"] == wf["id"]
        assert replay.headers["x-coasty-idempotent-replay"] == "true"

        assert_error(await c.post("/v1/workflows", json=body), 409, "CONFLICT")  # same slug
        bad_slug = await c.post("/v1/workflows", json={**body, "slug": "Bad Slug"})
        assert_error(bad_slug, 422, "VALIDATION_ERROR")
        extra = await c.post("/v1/workflows", json={**body, "slug": "x", "owner": "me"})
        assert_error(extra, 422, "VALIDATION_ERROR")

        got = (await c.get(f"/v1/workflows/{wf['id']}")).json()
        assert_valid("WorkflowResponse", got)
        assert got["id"] == wf["id"] and got["version"] == 1
        listed = (await c.get("/v1/workflows")).json()
        assert_valid("ListWorkflowsResponse", listed)
        assert [w["id"] for w in listed["data"]] == [wf["id"]] and not listed["has_more"]

        run1 = (await c.post(f"/v1/workflows/{wf['id']}/runs",
                             json={"inputs": {"site": "a.example"}})).json()
        assert_valid("WorkflowRunResponse", run1)
        assert run1["workflow_id"] == wf["id"] and run1["workflow_version"] == 1

        v2_def = {**SIMPLE, "output": {"site": "{{inputs.site}}", "v": 2}}
        r = await c.put(f"/v1/workflows/{wf['id']}", json={"definition": v2_def,
                                                           "name": "Report v2"})
        assert r.status_code == 200, r.text
        v2 = r.json()
        assert_valid("WorkflowResponse", v2)
        assert v2["version"] == 2 and v2["name"] == "Report v2" and v2["definition"] == v2_def
        assert v2["slug"] == "report" and v2["description"] == "sends the report"
        run2 = (await c.post(f"/v1/workflows/{wf['id']}/runs",
                             json={"inputs": {"site": "b.example"}})).json()
        assert run2["workflow_version"] == 2

        done1, done2 = await wait_wf(c, run1["id"]), await wait_wf(c, run2["id"])
        assert done1["status"] == done2["status"] == "succeeded"
        assert done1["output"] == {"site": "a.example"}  # ran version 1
        assert done2["output"] == {"site": "b.example", "v": 2}
        assert done1["workflow_version"] == 1

        # validation on save and on start
        r = await c.put(f"/v1/workflows/{wf['id']}", json={"definition": {"steps": [
            {"id": "r", "type": "retry", "max_attempts": 50, "body": [wait("x")]}]}})
        err = assert_error(r, 422, "VALIDATION_ERROR")
        assert "step 'r'" in err["message"] and "retry_max_attempts" in err["message"]
        assert err["examples"]["rule"] == "retry_max_attempts"
        r = await c.post(f"/v1/workflows/{wf['id']}/runs", json={"inputs": {"site": 3}})
        err = assert_error(r, 422, "VALIDATION_ERROR")
        assert err["examples"]["rule"] == "inputs_schema" and "inputs['site']" in err["message"]
        r = await c.post(f"/v1/workflows/{wf['id']}/runs", json={"inputs": {"site": "x"},
                                                                 "definition": SIMPLE})
        assert_error(r, 422, "VALIDATION_ERROR")
        assert (await c.get(f"/v1/workflows/{wf['id']}")).json()["version"] == 2

        # archive: history stays, no new runs
        r = await c.delete(f"/v1/workflows/{wf['id']}")
        assert r.status_code == 200
        assert_valid("WorkflowDeleteResponse", r.json())
        assert r.json() == {"id": wf["id"], "object": "workflow", "deleted": True,
                            "request_id": r.headers["x-coasty-request-id"]}
        archived = (await c.get(f"/v1/workflows/{wf['id']}")).json()
        assert archived["status"] == "archived" and archived["version"] == 2
        assert (await c.get("/v1/workflows")).json()["data"] == []
        assert [w["id"] for w in (await c.get("/v1/workflows",
                                              params={"status": "all"})).json()["data"]] == [
            wf["id"]]
        r = await c.post(f"/v1/workflows/{wf['id']}/runs", json={"inputs": {"site": "x"}})
        assert_error(r, 409, "INVALID_STATE")
        runs = (await c.get("/v1/workflows/runs", params={"workflow_id": wf["id"]})).json()
        assert_valid("ListWorkflowRunsResponse", runs)
        assert [x["id"] for x in runs["data"]] == [run2["id"], run1["id"]]
        # PUT status: active restores it (and is a new version)
        restored = (await c.put(f"/v1/workflows/{wf['id']}", json={"status": "active"})).json()
        assert restored["status"] == "active" and restored["version"] == 3

        assert_error(await c.get("/v1/workflows/not-a-uuid"), 404, "NOT_FOUND")
        assert_error(await c.get("/v1/workflows/runs/00000000-0000-4000-8000-000000000000"),
                     404, "NOT_FOUND")
        assert_error(await c.get("/v1/workflows/runs", params={"workflow_id": "x"}), 422,
                     "VALIDATION_ERROR")

    # another account (and the same account's test mode) sees none of it
    other = await server.key(account="other")
    test_key = await server.key(test=True)
    for k in (other, test_key):
        async with server.client(k) as c:
            assert_error(await c.get(f"/v1/workflows/{wf['id']}"), 404, "NOT_FOUND")
            assert_error(await c.get(f"/v1/workflows/runs/{run1['id']}"), 404, "NOT_FOUND")
            assert (await c.get("/v1/workflows/runs")).json()["data"] == []


async def test_scopes(server: LiveServer) -> None:
    read_only = await server.key(scopes=("workflows:read",))
    async with server.client(read_only) as c:
        assert_error(await c.post("/v1/workflows", json={"name": "a", "slug": "a",
                                                         "definition": SIMPLE}),
                     403, "INSUFFICIENT_SCOPE")
        assert_error(await c.post("/v1/workflows/runs", json={"definition": SIMPLE}),
                     403, "INSUFFICIENT_SCOPE")
        assert (await c.get("/v1/workflows")).status_code == 200
    async with server.client() as c:
        assert_error(await c.get("/v1/workflows"), 401, "INVALID_API_KEY")


# -- running ------------------------------------------------------------------------------------


EVERYTHING = {
    "version": "2026-06-01",
    "steps": [
        task("fetch", sh("echo {{inputs.word}}", answer="fetched {{inputs.word}}"),
             save_as="fetched"),
        {"id": "fetched_ok", "type": "assert",
         "condition": {"all": [
             {"op": "eq", "left": "{{steps.fetch.status}}", "right": "succeeded"},
             {"op": "matches", "left": "{{vars.fetched.last_output}}", "right": "^hello"},
             {"op": "exists", "left": "{{steps.fetch.run_id}}"}]},
         "message": "fetch went wrong"},
        {"id": "choose", "type": "if",
         "condition": {"op": "gt", "left": "{{inputs.n}}", "right": 1},
         "then": [wait("big", 0.05)],
         "else": [{"id": "small", "type": "fail", "message": "n too small"}]},
        {"id": "repeat", "type": "loop", "count": 2,
         "body": [task("each", sh("echo item-{{loop.index}}", answer="item {{loop.index}}"))]},
        {"id": "poll", "type": "loop",
         "while": {"op": "lt", "left": "{{loop.index}}", "right": 3},
         "body": [wait("tick")]},
        {"id": "fan", "type": "parallel", "branches": [
            [task("left", sh("echo L", answer="L"))],
            [task("right", sh("echo R", answer="R")), wait("right_wait", 0.05)],
        ]},
        {"id": "again", "type": "retry", "max_attempts": 3, "delay_ms": 50, "backoff": 2,
         "body": [
             task("count", sh("n=$(( $(cat tries 2>/dev/null || echo 0) + 1 )); "
                              "echo $n > tries; echo $n", answer="counted")),
             {"id": "third", "type": "assert",
              "condition": {"op": "matches", "left": "{{steps.count.result.last_output}}",
                            "right": "^3"}}]},
        {"id": "ok", "type": "human_approval", "message": "Ship {{inputs.word}}?",
         "timeout_seconds": 600},
        {"id": "end", "type": "succeed",
         "output": {"fetched": "{{vars.fetched.answer}}", "each": "{{steps.each.result.answer}}",
                    "left": "{{steps.left.result.answer}}", "skipped": "{{steps.small.status}}",
                    "note": "{{steps.ok.result.note}}", "tries": "{{steps.again.result}}"}},
        {"id": "never", "type": "fail", "message": "not reached"},
    ],
}


async def test_every_step_type_end_to_end(server: LiveServer) -> None:
    key = await server.key()
    async with server.client(key) as c:
        mid = await machine(c)
        run = await start_adhoc(c, EVERYTHING, machine_id=mid, inputs={"word": "hello", "n": 2},
                                metadata={"purpose": "test"})
        assert run["status"] == "queued" and run["workflow_id"] is None
        assert run["machine_id"] == mid and run["inputs"] == {"word": "hello", "n": 2}
        waiting = await wait_wf(c, run["id"], {"awaiting_human", *TERMINAL})
        assert waiting["status"] == "awaiting_human", waiting
        assert waiting["awaiting_step_id"] == "ok"
        assert waiting["awaiting_human_reason"] == "Ship hello?"
        resumed = (await c.post(f"/v1/workflows/runs/{run['id']}/resume",
                                json={"approved": True, "note": "go"})).json()
        assert_valid("WorkflowRunResponse", resumed)
        assert resumed["status"] == "queued" and resumed["awaiting_step_id"] is None
        final = await wait_wf(c, run["id"])
        assert final["status"] == "succeeded", final
        assert final["output"] == {"fetched": "fetched hello", "each": "item 1", "left": "L",
                                   "skipped": "skipped", "note": "go",
                                   "tries": {"attempts": 3}}
        assert final["iterations_used"] == 2 + 3
        assert final["error"] is None and final["metadata"] == {"purpose": "test"}
        assert final["started_at"] and final["finished_at"]

        # task steps are ordinary runs carrying the workflow run's id
        kids = await child_runs(c, run["id"])
        for kid in kids:
            assert_valid("RunResponse", kid)
            assert kid["status"] == "succeeded" and kid["machine_id"] == mid
            assert kid["metadata"]["workflow_run_id"] == run["id"]
        by_step = [k["metadata"]["workflow_step_id"] for k in kids]
        assert sorted(by_step) == sorted(["fetch", "each", "each", "left", "right", "count",
                                          "count", "count"])
        assert final["spent_cents"] == sum(k["cost_cents"] for k in kids) > 0

        stream = await wf_events(c, run["id"])
        assert_log(stream)
        ends = finished(stream)
        kid_ids = {k["id"] for k in kids}
        task_events = [s for s in started(stream) if s["type"] == "task"]
        assert {s["child_run_id"] for s in task_events} == kid_ids
        assert len(task_events) == len(kid_ids)  # each child run created once
        assert ends["fetch"]["child_run_id"] in kid_ids
        assert {ends[k]["status"] for k in ("fetch", "repeat", "poll", "fan", "again", "ok",
                                            "end")} == {"succeeded"}
        assert ends["again#1/third"]["status"] == "failed"
        assert ends["again#3/third"]["status"] == "succeeded"
        assert ends["repeat[1]/each"]["status"] == "succeeded"
        assert ends["fan|1/right_wait"]["status"] == "succeeded"
        assert "never" not in ends
        skipped = [e["data"] for e in stream if e["type"] == "step_skipped"]
        assert [s["step_id"] for s in skipped] == ["small"]
        types = [e["type"] for e in stream]
        for t in ("awaiting_human", "resumed", "loop_iteration", "retry_attempt"):
            assert t in types
        assert stream[-1]["data"]["status"] == "succeeded"

        # resume the stream from the middle, by header and by query: the rest, once
        mid_seq = len(stream) // 2
        rest = await wf_events(c, run["id"], last_event_id=mid_seq)
        assert rest == stream[mid_seq:]
        assert await wf_events(c, run["id"], after=mid_seq) == rest

        listed = (await c.get("/v1/workflows/runs", params={"limit": 5})).json()
        assert_valid("ListWorkflowRunsResponse", listed)
        assert listed["data"][0]["id"] == run["id"]
        assert (await c.get("/v1/workflows/runs", params={"status": "failed"})).json()[
            "data"] == []

        assert_error(await c.post(f"/v1/workflows/runs/{run['id']}/resume", json={}), 409,
                     "INVALID_STATE")
        assert_error(await c.post(f"/v1/workflows/runs/{run['id']}/cancel"), 409,
                     "INVALID_STATE")


async def test_failures_and_their_messages(server: LiveServer) -> None:
    key = await server.key(test=True)
    async with server.client(key) as c:
        mid = await machine(c)
        cases = [
            ({"steps": [task("t", sh("true", fail="it broke"))]}, "t", "TASK_FAILED"),
            ({"steps": [{"id": "a", "type": "assert", "message": "n is {{inputs.n}}",
                         "condition": {"op": "eq", "left": "{{inputs.n}}", "right": 2}}]},
             "a", "ASSERTION_FAILED"),
            ({"steps": [{"id": "f", "type": "fail", "message": "stop {{inputs.n}}"}]}, "f",
             "WORKFLOW_FAILED"),
            ({"steps": [task("t", sh("true"), machine_id="{{inputs.nope}}")]}, "t",
             "TEMPLATE_ERROR"),
            ({"steps": [{"id": "a", "type": "assert",
                         "condition": {"op": "gt", "left": "{{inputs.n}}", "right": "x"}}]},
             "a", "CONDITION_ERROR"),
            ({"steps": [{"id": "r", "type": "retry", "max_attempts": 2,
                         "body": [task("t", sh("true", fail="nope"))]}]}, "r",
             "RETRY_EXHAUSTED"),
            ({"steps": [{"id": "l", "type": "loop", "max_iterations": 2,
                         "while": {"op": "eq", "left": 1, "right": 1}, "body": [wait("w")]}]},
             "l", "MAX_ITERATIONS_EXCEEDED"),
            ({"steps": [task("t", sh("true"), machine_id="mch_test_00000000")]}, "t",
             "NOT_FOUND"),
            ({"steps": [wait("w")], "output": {"x": "{{steps.w.result.nope}}"}}, None,
             "TEMPLATE_ERROR"),
        ]
        runs = [await start_adhoc(c, d, machine_id=mid, inputs={"n": 1}) for d, _, _ in cases]
        for run, (_, step, code) in zip(runs, cases, strict=True):
            final = await wait_wf(c, run["id"])
            assert final["status"] == "failed", final
            assert final["error"]["code"] == code, final["error"]
            assert final["error"]["step_id"] == step, final["error"]
        assert (await get_wf_run(c, runs[1]["id"]))["error"]["message"] == "n is 1"
        assert (await get_wf_run(c, runs[2]["id"]))["error"]["message"] == "stop 1"
        retry_err = (await get_wf_run(c, runs[5]["id"]))["error"]
        assert retry_err["last_error"]["code"] == "TASK_FAILED"
        assert len(await child_runs(c, runs[5]["id"])) == 2
        assert "{{inputs.nope}}" in (await get_wf_run(c, runs[3]["id"]))["error"]["message"]


async def test_start_validation(server: LiveServer) -> None:
    key = await server.key()
    async with server.client(key) as c:
        mid = await machine(c)
        needs_machine = {"steps": [task("t", sh("true"))]}
        r = await c.post("/v1/workflows/runs", json={"definition": needs_machine})
        err = assert_error(r, 422, "VALIDATION_ERROR")
        assert err["examples"] == {"step_id": "t", "rule": "machine_required",
                                   "problems": err["examples"]["problems"]}
        r = await c.post("/v1/workflows/runs", json={"definition": needs_machine,
                                                     "machine_id": "mch_test_00000000"})
        assert_error(r, 404, "NOT_FOUND")
        assert_error(await c.post("/v1/workflows/runs", json={}), 422, "VALIDATION_ERROR")
        bad = {"steps": [{"id": "p", "type": "parallel", "branches": [
            [{"id": "h", "type": "human_approval", "message": "no"}]]}]}
        err = assert_error(await c.post("/v1/workflows/runs", json={"definition": bad}), 422,
                           "VALIDATION_ERROR")
        assert err["examples"]["rule"] == "parallel_forbidden_step"
        assert "step 'h'" in err["message"]
        r = await c.post("/v1/workflows/runs", json={
            "definition": SIMPLE, "inputs_schema": {"type": "object", "required": ["site"]},
            "inputs": {}})
        assert assert_error(r, 422, "VALIDATION_ERROR")["examples"]["rule"] == "inputs_schema"
        r = await c.post("/v1/workflows/runs", json={"definition": SIMPLE,
                                                     "inputs_schema": {"type": 5}})
        assert assert_error(r, 422, "VALIDATION_ERROR")["examples"]["rule"] == "inputs_schema"
        r = await c.post("/v1/workflows/runs", json={"definition": SIMPLE,
                                                     "llm": {"provider": "gemini"}})
        assert_error(r, 422, "LLM_PROVIDER_UNSUPPORTED")  # BYOK: tests/.../test_llm_workflows
        r = await c.post("/v1/workflows/runs", json={"definition": SIMPLE, "budget_cents": -1})
        assert_error(r, 422, "VALIDATION_ERROR")
        r = await c.post("/v1/workflows/runs", json={"definition": SIMPLE, "max_iterations": 0})
        assert_error(r, 422, "VALIDATION_ERROR")
        # idempotent start: one run per key
        first = await c.post("/v1/workflows/runs", json={"definition": SIMPLE, "machine_id": mid,
                                                         "inputs": {"site": "s"}},
                             headers={"Idempotency-Key": "start-1"})
        again = await c.post("/v1/workflows/runs", json={"definition": SIMPLE, "machine_id": mid,
                                                         "inputs": {"site": "s"}},
                             headers={"Idempotency-Key": "start-1"})
        assert first.json()["id"] == again.json()["id"]
        assert len((await c.get("/v1/workflows/runs")).json()["data"]) == 1


async def test_parallel_branches_run_concurrently_and_fail_fast(server: LiveServer) -> None:
    key = await server.key(test=True)
    async with server.client(key) as c:
        # one machine per branch: a machine has one shell, which runs a command at a time
        machines = {f"m{i}": await machine(c, f"m{i}") for i in range(3)}
        mid = machines["m0"]
        three = {"steps": [{"id": "fan", "type": "parallel", "branches": [
            [task(f"b{i}", sh("sleep 2.5", answer=str(i)), machine_id=f"{{{{inputs.m{i}}}}}")]
            for i in range(3)]}]}
        run = await start_adhoc(c, three, inputs=machines)
        final = await wait_wf(c, run["id"])
        assert final["status"] == "succeeded"
        kids = await child_runs(c, run["id"])
        assert len(kids) == 3
        # the three task runs were all created, then all going, before any ended
        assert max(k["created_at"] for k in kids) < min(k["finished_at"] for k in kids)
        assert max(k["started_at"] for k in kids) < min(k["finished_at"] for k in kids)

        fast_fail = {"steps": [{"id": "fan", "type": "parallel", "branches": [
            [task("slow", sh("sleep 20", answer="late"))],
            [wait("first", 0.5), task("broken", sh("true", fail="broken"),
                                      machine_id="{{inputs.m1}}")],
        ]}]}
        began = time.monotonic()
        run = await start_adhoc(c, fast_fail, machine_id=mid, inputs=machines)
        final = await wait_wf(c, run["id"])
        assert time.monotonic() - began < 10
        assert final["status"] == "failed" and final["error"]["step_id"] == "broken"
        kids = {k["metadata"]["workflow_step_id"]: k for k in await child_runs(c, run["id"])}
        slow = await wait_run_status(c, kids["slow"]["id"])
        assert slow["status"] == "cancelled"
        ends = finished(await wf_events(c, run["id"]))
        assert ends["fan|0/slow"]["status"] == "cancelled"
        assert ends["fan"]["status"] == "failed"

        patient = {"steps": [{"id": "fan", "type": "parallel", "fail_fast": False,
                              "branches": [[task("slow", sh("sleep 1", answer="done"))],
                                           [task("broken", sh("true", fail="broken"),
                                                 machine_id="{{inputs.m1}}")]]}]}
        run = await start_adhoc(c, patient, machine_id=mid, inputs=machines)
        final = await wait_wf(c, run["id"])
        assert final["status"] == "failed" and final["error"]["step_id"] == "broken"
        kids = {k["metadata"]["workflow_step_id"]: k for k in await child_runs(c, run["id"])}
        assert kids["slow"]["status"] == "succeeded"
