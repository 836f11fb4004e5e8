"""Runs end to end over real HTTP, on SQLite and PostgreSQL, with real
terminal machines."""

from __future__ import annotations

import asyncio
import os
import time

import pytest

from tests.conftest import LiveServer
from tests.support.contract import assert_error, assert_valid
from tests.support.polling import wait_until
from tests.support.runs import cmd, events, machine, script, start, wait_for

pytestmark = pytest.mark.asyncio

REFERENCE_LIKE = (
    "Run `python3 -c 'import sys; print(sys.version_info[0])'`, then run "
    "`echo ok > out.txt && cat out.txt` and verify the output matches `^ok`"
)


async def test_offline_task_succeeds_and_streams_exactly_once(server: LiveServer) -> None:
    key = await server.key()
    async with server.client(key) as c:
        mid = await machine(c)
        run = await start(c, machine_id=mid, task=REFERENCE_LIKE)
        assert_valid("RunResponse", run)
        assert run["status"] == "queued" and run["object"] == "agent.run"
        assert run["webhook_secret"] is None and run["machine_id"] == mid

        stream = await events(c, run["id"])
        seqs = [e["seq"] for e in stream]
        assert seqs == list(range(1, len(seqs) + 1))
        assert stream[-1]["type"] == "done" and stream[-1]["data"]["status"] == "succeeded"
        assert stream[0]["type"] == "status" and stream[0]["data"]["brain"] == "offline"
        types = {e["type"] for e in stream}
        assert {"status", "step", "tool_call", "tool_result", "text", "billing"} <= types

        # resume from the middle, by header and by query: the rest, once
        mid_seq = seqs[len(seqs) // 2]
        rest = await events(c, run["id"], last_event_id=mid_seq)
        assert [e["seq"] for e in rest] == seqs[mid_seq:]
        assert rest == stream[mid_seq:]
        rest_q = await events(c, run["id"], after=mid_seq)
        assert rest_q == rest

        final = (await c.get(f"/v1/runs/{run['id']}")).json()
        assert_valid("RunResponse", final)
        assert final["status"] == "succeeded"
        assert final["steps_completed"] == 3
        assert final["credits_charged"] == 15 and final["cost_cents"] == 15
        assert final["result"]["answer"]
        assert final["started_at"] and final["finished_at"] and final["error"] is None

        listed = (await c.get("/v1/runs", params={"limit": 5})).json()
        assert_valid("ListRunsResponse", listed)
        assert listed["data"][0]["id"] == run["id"]


async def test_list_filters_and_pages(server: LiveServer) -> None:
    key = await server.key()
    async with server.client(key) as c:
        mid = await machine(c)
        ids = []
        for _ in range(3):
            ids.append((await start(c, machine_id=mid, task=script(), model="scripted"))["id"])
        for i in ids:
            await wait_for(c, i)
        page1 = (await c.get("/v1/runs", params={"limit": 2})).json()
        assert [r["id"] for r in page1["data"]] == ids[::-1][:2] and page1["has_more"]
        page2 = (await c.get("/v1/runs", params={"limit": 2,
                                                 "starting_after": page1["data"][-1]["id"]})).json()
        assert [r["id"] for r in page2["data"]] == [ids[0]] and not page2["has_more"]
        done = (await c.get("/v1/runs", params={"status": "succeeded"})).json()
        assert len(done["data"]) == 3
        assert (await c.get("/v1/runs", params={"status": "failed"})).json()["data"] == []
        assert_error(await c.get("/v1/runs", params={"status": "bogus"}), 422, "VALIDATION_ERROR")
        assert_error(await c.get("/v1/runs", params={"limit": 0}), 422, "VALIDATION_ERROR")


async def test_bad_requests(server: LiveServer) -> None:
    key = await server.key()
    other = await server.key(account="someone-else")
    test_key = await server.key(test=True)
    async with server.client(key) as c:
        mid = await machine(c)
        err = assert_error(await c.post("/v1/runs", json={"task": "x"}), 422, "VALIDATION_ERROR")
        assert "machine_id" in err["message"]
        assert_error(await c.post("/v1/runs", json={"machine_id": mid, "task": "x",
                                                    "max_steps": 1001}), 422, "VALIDATION_ERROR")
        assert_error(await c.post("/v1/runs", json={"machine_id": mid, "task": "x",
                                                    "metadata": {str(i): i for i in range(51)}}),
                     422, "VALIDATION_ERROR")
        assert_error(await c.post("/v1/runs", json={"machine_id": mid, "task": "x",
                                                    "llm": {"api_key": "sk-nope"}}),
                     422, "VALIDATION_ERROR")
        assert_error(await c.post("/v1/runs", json={"machine_id": mid, "task": "x",
                                                    "webhook_url": "http://example.com/h"}),
                     422, "VALIDATION_ERROR")
        assert_error(await c.post("/v1/runs", json={"machine_id": "nope", "task": "x"}),
                     404, "NOT_FOUND")
        assert_error(await c.get("/v1/runs/not-a-uuid"), 404, "NOT_FOUND")
        assert_error(await c.get("/v1/runs/00000000-0000-4000-8000-000000000000"), 404,
                     "NOT_FOUND")
        run = await start(c, machine_id=mid, task=script(), model="scripted")
    # another account, or the other mode, sees neither the machine nor the run
    for k in (other, test_key):
        async with server.client(k) as c:
            assert_error(await c.post("/v1/runs", json={"machine_id": mid, "task": "x"}),
                         404, "NOT_FOUND")
            assert_error(await c.get(f"/v1/runs/{run['id']}"), 404, "NOT_FOUND")
            assert_error(await c.post(f"/v1/runs/{run['id']}/cancel"), 404, "NOT_FOUND")


async def test_cancel_interrupts_the_command(server: LiveServer) -> None:
    key = await server.key()
    marker = f"{time.time() % 1000:.6f}"  # a unique sleep argument to find the process by
    async with server.client(key) as c:
        mid = await machine(c)
        run = await start(c, machine_id=mid, model="scripted",
                          task=script(cmd(f"sleep 6{marker}")))
        pids = await wait_until(lambda: _pids_running(f"sleep 6{marker}"), timeout=15,
                                every=0.02, what="the command to start")
        t0 = time.monotonic()
        r = await c.post(f"/v1/runs/{run['id']}/cancel")
        assert r.status_code == 200
        final = await wait_for(c, run["id"], timeout=5)
        elapsed = time.monotonic() - t0
        assert final["status"] == "cancelled" and elapsed < 2, (final, elapsed)
        assert_valid("RunResponse", r.json())
        await wait_until(
            lambda: [p for p in pids if os.path.exists(f"/proc/{p}") and _state(p) != "Z"],
            done=lambda alive: not alive, timeout=2, every=0.02,
            what="the command's processes to exit after the cancel")
        assert_error(await c.post(f"/v1/runs/{run['id']}/cancel"), 409, "INVALID_STATE")
        stream = await events(c, run["id"])
        assert stream[-1]["type"] == "done" and stream[-1]["data"]["status"] == "cancelled"


def _pids_running(cmdline: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if f.read().replace(b"\0", b" ").strip() == cmdline.encode():
                        found.append(int(entry))
            except OSError:
                continue
    return found


def _state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"


async def test_cancel_a_queued_run_directly(server: LiveServer) -> None:
    key = await server.key()
    async with server.client(key) as c:
        mid = await machine(c)
        for w in server.services.workers:
            await w.stop()
        run = await start(c, machine_id=mid, model="scripted", task=script(cmd("true")))
        r = await c.post(f"/v1/runs/{run['id']}/cancel")
        assert r.status_code == 200 and r.json()["status"] == "cancelled"


async def test_deadline_gives_timed_out(server: LiveServer) -> None:
    key = await server.key()
    async with server.client(key) as c:
        mid = await machine(c)
        t0 = time.monotonic()
        run = await start(c, machine_id=mid, model="scripted", deadline_seconds=2,
                          task=script(cmd("sleep 30")))
        final = await wait_for(c, run["id"], timeout=10)
        assert final["status"] == "timed_out", final
        assert time.monotonic() - t0 < 4
        assert final["error"]["code"] == "DEADLINE_EXCEEDED"


async def test_max_steps(server: LiveServer) -> None:
    key = await server.key()
    async with server.client(key) as c:
        mid = await machine(c)
        run = await start(c, machine_id=mid, model="scripted", max_steps=3,
                          task=script(*[cmd(f"echo {i}") for i in range(10)]))
        final = await wait_for(c, run["id"])
        assert final["status"] == "failed"
        assert final["error"]["code"] == "MAX_STEPS_REACHED"
        assert final["steps_completed"] == 3


@pytest.mark.parametrize("policy", ["pause", "fail", "cancel"])
async def test_human_policies(server: LiveServer, policy: str) -> None:
    key = await server.key()
    async with server.client(key) as c:
        mid = await machine(c)
        task = 'Run `echo before`, then ask a human "Is the report right?", then run `echo after`'
        run = await start(c, machine_id=mid, task=task, on_awaiting_human=policy)
        if policy == "pause":
            waiting = await wait_for(c, run["id"], {"awaiting_human"})
            assert waiting["awaiting_human_reason"] == "Is the report right?"
            assert waiting["awaiting_human_since"]
            assert_valid("RunResponse", waiting)
            r = await c.post(f"/v1/runs/{run['id']}/resume", json={"note": "yes, go on"})
            assert r.status_code == 200, r.text
            final = await wait_for(c, run["id"])
            assert final["status"] == "succeeded", final
            stream = await events(c, run["id"])
            resumed = [e for e in stream if e["type"] == "resumed"]
            assert resumed and resumed[0]["data"]["note"] == "yes, go on"
            assert "awaiting_human" in {e["type"] for e in stream}
            assert_error(await c.post(f"/v1/runs/{run['id']}/resume"), 409, "INVALID_STATE")
        else:
            final = await wait_for(c, run["id"])
            expected = "failed" if policy == "fail" else "cancelled"
            assert final["status"] == expected, final
            assert final["error"]["code"] == "HUMAN_REQUIRED"
            assert final["awaiting_human_reason"] == "Is the report right?"


async def test_awaiting_human_timeout(server: LiveServer) -> None:
    key = await server.key()
    async with server.client(key) as c:
        mid = await machine(c)
        run = await start(c, machine_id=mid, task='ask a human "anyone there?"',
                          awaiting_human_timeout_seconds=1)
        await wait_for(c, run["id"], {"awaiting_human"})
        final = await wait_for(c, run["id"], timeout=10)
        assert final["status"] == "timed_out"
        assert final["error"]["code"] == "AWAITING_HUMAN_TIMEOUT"


async def test_credits(server: LiveServer) -> None:
    poor = await server.key(account="poor", credits=3)
    async with server.client(poor) as c:
        mid = await machine(c)
        err = assert_error(await c.post("/v1/runs", json={"machine_id": mid, "task": "x"}),
                           402, "INSUFFICIENT_CREDITS")
        assert err["type"] == "billing_error"
    some = await server.key(account="some", credits=12)
    async with server.client(some) as c:
        mid = await machine(c)
        r = await c.post("/v1/runs", json={"machine_id": mid, "model": "scripted",
                                           "task": script(*[cmd("true") for _ in range(5)])})
        assert r.headers["x-credits-charged"] == "0"
        assert r.headers["x-credits-remaining"] == "12"
        final = await wait_for(c, r.json()["id"])
        assert final["status"] == "failed" and final["error"]["code"] == "INSUFFICIENT_CREDITS"
        assert final["steps_completed"] == 2 and final["credits_charged"] == 10
        usage = (await c.get("/v1/usage")).json()
        assert usage["balance"] == 2
    test = await server.key(account="some", test=True)
    async with server.client(test) as c:
        mid = await machine(c)
        run = await start(c, machine_id=mid, model="scripted",
                          task=script(cmd("true"), cmd("true")), cua_version="v1")
        final = await wait_for(c, run["id"])
        assert final["status"] == "succeeded" and final["credits_charged"] == 0
    v1 = await server.key(account="v1-account")
    async with server.client(v1) as c:
        mid = await machine(c)
        run = await start(c, machine_id=mid, model="scripted", cua_version="v1",
                          task=script(cmd("true")))
        final = await wait_for(c, run["id"])
        assert final["credits_charged"] == 16  # two steps (act, then the script's end) at 8


async def test_idempotent_create_makes_one_run(server: LiveServer) -> None:
    key = await server.key()
    async with server.client(key) as c:
        mid = await machine(c)
        body = {"machine_id": mid, "task": script(), "model": "scripted"}
        headers = {"Idempotency-Key": "run-once-123"}

        async def post():  # type: ignore[no-untyped-def]
            for _ in range(20):
                r = await c.post("/v1/runs", json=body, headers=headers)
                if r.status_code != 409:
                    return r
                await asyncio.sleep(0.1)
            return r

        responses = await asyncio.gather(*[post() for _ in range(50)])
        assert all(r.status_code == 200 for r in responses), [r.text for r in responses][:3]
        ids = {r.json()["id"] for r in responses}
        assert len(ids) == 1
        replays = [r for r in responses if r.headers.get("x-coasty-idempotent-replay") == "true"]
        assert len(replays) == 49
        listed = (await c.get("/v1/runs")).json()["data"]
        assert [x["id"] for x in listed] == list(ids)

        assert_error(await c.post("/v1/runs", json={**body, "task": "other"}, headers=headers),
                     422, "IDEMPOTENCY_KEY_REUSED")
        looked = (await c.get("/v1/idempotency/run-once-123")).json()
        assert_valid("IdempotencyLookupResponse", looked)
        assert looked["status"] == "completed" and looked["result"]["id"] in ids
        assert looked["original_status"] == 200
        assert_error(await c.get("/v1/idempotency/unknown-key"), 404, "NOT_FOUND")
        assert_error(await c.post("/v1/runs", json=body, headers={"Idempotency-Key": "bad key!"}),
                     422, "VALIDATION_ERROR")
