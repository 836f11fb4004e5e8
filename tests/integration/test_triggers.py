"""Triggers over real HTTP on SQLite and PostgreSQL: signed webhooks (good,
replayed, forged, stale, oversized, rate-limited, unknown), chains (fire the
target once, pass the output; cycles and over-long chains refused)."""

from __future__ import annotations

import json
import time

import pytest

from deckhand.engine.schedule_webhooks import sign
from tests.conftest import LiveServer
from tests.support.contract import assert_error, assert_valid
from tests.support.runs import machine, wait_for
from tests.support.schedules import create, history, wait_firings

pytestmark = pytest.mark.asyncio


async def test_webhook_trigger(server: LiveServer) -> None:
    key = await server.key()
    async with server.client(key) as c, server.client() as anon:
        mid = await machine(c)
        s = await create(c, mid, frequency="daily")
        r = await c.post(f"/v1/schedules/{s['id']}/triggers",
                         json={"kind": "webhook", "rate_limit_per_minute": 4})
        assert r.status_code == 200, r.text
        t = r.json()
        assert_valid("TriggerResponse", t)
        secret, url = t["webhook_secret"], t["webhook_url"]
        assert secret and url.endswith(f"/v1/triggers/webhook/{url.rsplit('/', 1)[1]}")
        path = url[url.index("/v1/"):]
        listed = (await c.get(f"/v1/schedules/{s['id']}/triggers")).json()
        assert_valid("ListTriggersResponse", listed)
        assert "webhook_secret" not in listed["data"][0]
        assert secret not in json.dumps(listed)

        def post(body: bytes, signature: str | None, header: str = "Coasty-Signature"):  # type: ignore[no-untyped-def]
            headers = {"Content-Type": "application/json"}
            if signature is not None:
                headers[header] = signature
            return anon.post(path, content=body, headers=headers)

        body = json.dumps({"order": 42}).encode()
        good = await post(body, sign(secret, int(time.time()), body))
        assert good.status_code == 200, good.text
        fired = good.json()
        assert_valid("WebhookFireResponse", fired)
        assert fired["received"] and not fired["deduplicated"] and fired["run_id"]
        [firing] = await wait_firings(c, s["id"], 1)
        assert firing["id"] == fired["run_id"] and firing["trigger"] == "webhook"
        run = await wait_for(c, firing["agent_run_id"])
        assert '"order": 42' in run["instructions"]

        # the same delivery again (a replay within 60 s): deduplicated, no second run
        again = await post(body, sign(secret, int(time.time()), body), "X-Coasty-Signature")
        assert again.status_code == 200 and again.json()["deduplicated"]
        assert again.json()["run_id"] == fired["run_id"]
        assert len(await history(c, s["id"])) == 1

        # forged, stale, missing, both headers, unknown id: the same 401
        other = json.dumps({"order": 43}).encode()
        for sig in (sign("whsec_wrong", int(time.time()), other),
                    sign(secret, int(time.time()) - 301, other),
                    sign(secret, int(time.time()), body),  # signs another body
                    "t=abc,v1=00", None):
            bad = await post(other, sig)
            err = assert_error(bad, 401, "INVALID_SIGNATURE")
            assert "webhook" in err["message"] and s["id"] not in bad.text
        both = await anon.post(path, content=other, headers={
            "Coasty-Signature": sign(secret, int(time.time()), other),
            "X-Coasty-Signature": sign(secret, int(time.time()), other)})
        assert_error(both, 401, "INVALID_SIGNATURE")
        unknown = await anon.post("/v1/triggers/webhook/whk_0123456789abcdef", content=other,
                                  headers={"Coasty-Signature": sign(secret, int(time.time()),
                                                                    other)})
        assert_error(unknown, 401, "INVALID_SIGNATURE")

        big = b'{"x": "' + b"y" * (1024 * 1024) + b'"}'
        assert_error(await post(big, sign(secret, int(time.time()), big)), 413,
                     "PAYLOAD_TOO_LARGE")

        # a paused schedule: the delivery is recorded as skipped, nothing runs
        assert (await c.post(f"/v1/schedules/{s['id']}/pause")).status_code == 200
        b = json.dumps({"n": 0}).encode()
        paused = await post(b, sign(secret, int(time.time()), b))
        assert paused.status_code == 200 and paused.json()["run_id"]
        assert (await history(c, s["id"]))[0]["status"] == "skipped"
        assert (await c.post(f"/v1/schedules/{s['id']}/resume")).status_code == 200

        # rate limit 4 a minute: two more distinct deliveries pass, the next is 429
        for n in (1, 2):
            b = json.dumps({"n": n}).encode()
            assert (await post(b, sign(secret, int(time.time()), b))).status_code == 200
        b = json.dumps({"n": 3}).encode()
        limited = await post(b, sign(secret, int(time.time()), b))
        assert_error(limited, 429, "RATE_LIMITED")
        assert 1 <= int(limited.headers["retry-after"]) <= 60
        assert len(await history(c, s["id"])) == 4

        gone = (await c.delete(f"/v1/schedules/{s['id']}/triggers/{t['id']}")).json()
        assert_valid("DeleteTriggerResponse", gone)
        b = json.dumps({"n": 4}).encode()
        assert_error(await post(b, sign(secret, int(time.time()), b)), 401, "INVALID_SIGNATURE")


async def test_chain_fires_its_target_once_and_cycles_are_refused(server: LiveServer) -> None:
    key = await server.key()
    async with server.client(key) as c:
        mid = await machine(c)
        a = await create(c, mid, frequency="daily", name="a")
        b = await create(c, mid, frequency="daily", name="b")
        d = await create(c, mid, frequency="daily", name="d")
        r = await c.post(f"/v1/schedules/{b['id']}/triggers", json={
            "kind": "chain", "source_schedule_id": a["id"], "event": "on_complete"})
        assert r.status_code == 200, r.text
        assert_valid("TriggerResponse", r.json())
        assert r.json()["webhook_secret"] is None and r.json()["source_schedule_id"] == a["id"]
        r = await c.post(f"/v1/schedules/{d['id']}/triggers", json={
            "kind": "chain", "source_schedule_id": b["id"], "event": "on_failure"})
        assert r.status_code == 200, r.text
        # d → a would close a → b → d → a
        err = assert_error(await c.post(f"/v1/schedules/{a['id']}/triggers", json={
            "kind": "chain", "source_schedule_id": d["id"]}), 422, "VALIDATION_ERROR")
        assert "cycle" in err["message"]
        assert_error(await c.post(f"/v1/schedules/{a['id']}/triggers", json={
            "kind": "chain", "source_schedule_id": a["id"]}), 422, "VALIDATION_ERROR")
        assert_error(await c.post(f"/v1/schedules/{a['id']}/triggers", json={
            "kind": "chain"}), 422, "VALIDATION_ERROR")
        assert_error(await c.post(f"/v1/schedules/{a['id']}/triggers", json={
            "kind": "chain", "source_schedule_id": "sch_test_0123456789abcdef"}), 404,
            "NOT_FOUND")

        fired = (await c.post(f"/v1/schedules/{a['id']}/run", json={})).json()
        assert (await wait_for(c, fired["agent_run_id"]))["status"] == "succeeded"
        [chained] = await wait_firings(c, b["id"], 1)
        assert chained["trigger"] == "triggered"
        run = await wait_for(c, chained["agent_run_id"])
        assert run["status"] == "succeeded"
        assert fired["agent_run_id"] in run["instructions"]  # pass_output: the source's run
        # b succeeded, so d's on_failure chain does not fire; a second look finds one firing
        assert await history(c, d["id"]) == []
        assert len(await history(c, b["id"])) == 1

        # at most five links: d ← b ← a plus three more is five; a sixth is refused
        chain = [d] + [await create(c, mid, frequency="daily", name=f"s{n}") for n in range(4)]
        for n in range(3):
            r = await c.post(f"/v1/schedules/{chain[n + 1]['id']}/triggers", json={
                "kind": "chain", "source_schedule_id": chain[n]["id"]})
            assert r.status_code == 200, r.text
        err = assert_error(await c.post(f"/v1/schedules/{chain[4]['id']}/triggers", json={
            "kind": "chain", "source_schedule_id": chain[3]["id"]}), 422, "VALIDATION_ERROR")
        assert "5 links" in err["message"]
        listed = (await c.get(f"/v1/schedules/{b['id']}/triggers")).json()
        assert_valid("ListTriggersResponse", listed)
        assert [t["source_schedule_id"] for t in listed["data"]] == [a["id"]]
        # deleting the source removes the chain triggers it feeds
        assert (await c.delete(f"/v1/schedules/{a['id']}")).status_code == 200
        assert (await c.get(f"/v1/schedules/{b['id']}/triggers")).json()["data"] == []



async def test_a_replayed_trigger_creation_shows_its_secret_and_none_is_stored_in_clear(
        sqlite_server: LiveServer) -> None:
    from sqlalchemy import text

    key = await sqlite_server.key()
    async with sqlite_server.client(key) as c:
        mid = await machine(c)
        s = await create(c, mid, frequency="daily")
        idem = {"Idempotency-Key": "trigger-once"}
        first = await c.post(f"/v1/schedules/{s['id']}/triggers", json={"kind": "webhook"},
                             headers=idem)
        again = await c.post(f"/v1/schedules/{s['id']}/triggers", json={"kind": "webhook"},
                             headers=idem)
        assert first.status_code == again.status_code == 200, (first.text, again.text)
        secret = first.json()["webhook_secret"]
        assert again.headers["x-coasty-idempotent-replay"] == "true"
        assert again.json()["webhook_secret"] == secret and again.json()["id"] == first.json()["id"]
        looked_up = (await c.get("/v1/idempotency/trigger-once")).json()
        assert looked_up["result"]["webhook_secret"] == secret
    async with sqlite_server.services.db.read() as conn:
        bodies = [r[0] for r in await conn.execute(
            text("SELECT response_body FROM idempotency_records"))]
    assert bodies and all(secret not in (b or "") for b in bodies)
