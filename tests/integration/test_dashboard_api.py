"""The dashboard's server side over HTTP: sign-in and the session cookie as an
API credential (CSRF-checked on mutations, one key's account and mode only),
the pages' redirects, the runs feed (``GET /v1/runs/stream``) and usage by
day (``GET /v1/usage/daily``, both databases)."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import httpx

from deckhand.core.clock import utcnow
from deckhand.dashboard import session as sess
from tests.conftest import LiveServer
from tests.support.runs import cmd, machine, script, start, wait_for

DASH = {"X-Deckhand-Dashboard": "1"}


async def sign_in(c: httpx.AsyncClient, key: str) -> None:
    """Give the client a dashboard session (it holds no key)."""
    r = await c.post("/dashboard/session", json={"key": key}, headers=DASH)
    assert r.status_code == 200, r.text


async def test_sign_in_sets_a_session_cookie_holding_no_key(sqlite_server: LiveServer) -> None:
    s = sqlite_server
    key = await s.key()
    async with httpx.AsyncClient(base_url=s.url) as c:
        r = await c.post("/dashboard/session", json={"key": key})  # not from the dashboard
        assert r.status_code == 403 and r.json()["error"]["code"] == "CSRF_TOKEN_INVALID"
        r = await c.post("/dashboard/session", json={"key": "sk-dh-live-" + "0" * 64},
                         headers=DASH)
        assert r.status_code == 401 and r.json()["error"]["code"] == "INVALID_API_KEY"
        assert "set-cookie" not in r.headers
        r = await c.post("/dashboard/session", json={"key": key}, headers=DASH)
        assert r.status_code == 200, r.text
        cookie = r.headers["set-cookie"]
        assert cookie.startswith(f"{sess.COOKIE}=")
        for attr in ("HttpOnly", "Path=/", "SameSite=strict", f"Max-Age={sess.SESSION_SECONDS}"):
            assert attr.lower() in cookie.lower(), (attr, cookie)
        assert key not in cookie and key[11:27] not in cookie
        assert r.json()["key_id"] in cookie


async def test_the_cookie_is_a_credential_with_csrf_on_mutations(
        sqlite_server: LiveServer) -> None:
    s = sqlite_server
    key = await s.key()
    other = await s.key(account="globex")
    async with s.client(other) as them:
        theirs = await machine(them)
    async with httpx.AsyncClient(base_url=s.url, timeout=30) as c, s.client(key) as k:
        await sign_in(c, key)
        mine = await machine(k)
        assert [m["id"] for m in (await c.get("/v1/machines")).json()["data"]] == [mine]
        # one key's account and mode: another account's machine is not there
        assert (await c.get(f"/v1/machines/{theirs}")).status_code == 404
        # the page carries the CSRF token of this session
        page = await c.get("/runs")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
        # the page knows which optional APIs this server has (the steps' screens, schedules)
        paths = (await c.get("/openapi.json")).json()["paths"]
        has_steps = any(re.fullmatch(r"/v1/runs/\{[^}]+\}/steps", p) for p in paths)
        assert f'data-steps-api="{int(has_steps)}"' in page.text
        assert f'data-schedules-api="{int("get" in paths.get("/v1/schedules", {}))}"' in page.text
        token = re.search(r'name="csrf-token" content="([0-9a-f]+)"', page.text).group(1)  # type: ignore[union-attr]
        assert token == sess.csrf_token(s.services.secret, c.cookies[sess.COOKIE])
        # mutations: refused without the token or with another, allowed with it
        for headers in ({}, {sess.CSRF_HEADER: "f" * 64}):
            r = await c.delete(f"/v1/machines/{mine}", headers=headers)
            assert r.status_code == 403, r.text
            assert r.json()["error"]["code"] == "CSRF_TOKEN_INVALID"
        r = await c.post("/v1/keys", json={"name": "made-in-the-dashboard"},
                         headers={sess.CSRF_HEADER: token})
        assert r.status_code == 200, r.text
        # a key in the request wins over the cookie (the Bearer path is unchanged)
        r = await c.get(f"/v1/machines/{theirs}", headers={"Authorization": f"Bearer {other}"})
        assert r.status_code == 200
        r = await c.post("/v1/keys", json={"name": "k"}, headers={"X-API-Key": "sk-dh-live-x"})
        assert r.status_code == 401  # a bad key is not rescued by the cookie
        # sign-out: CSRF-checked too, then the cookie is gone
        assert (await c.post("/dashboard/sign-out", headers=DASH)).status_code == 403
        r = await c.post("/dashboard/sign-out", headers={**DASH, sess.CSRF_HEADER: token})
        assert r.status_code == 200 and "max-age=0" in r.headers["set-cookie"].lower()
        assert (await c.get("/v1/runs")).status_code == 401
        r = await c.get("/runs", follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/sign-in?next=/runs"


async def test_the_runs_feed_streams_the_window_then_changes(sqlite_server: LiveServer) -> None:
    s = sqlite_server
    key = await s.key()
    async with s.client(key) as c:
        mid = await machine(c)
        first = await start(c, machine_id=mid, task=script(cmd("echo one")), model="scripted")
        await wait_for(c, first["id"])
        frames: list[tuple[str, dict[str, Any]]] = []
        ready = asyncio.Event()

        async def read() -> None:
            async with c.stream("GET", "/v1/runs/stream") as r:
                assert r.status_code == 200
                assert r.headers["content-type"].startswith("text/event-stream")
                kind = ""
                async for line in r.aiter_lines():
                    if line.startswith("event: "):
                        kind = line[7:]
                    elif line.startswith("data: "):
                        frames.append((kind, json.loads(line[6:])))
                        if kind == "ready":
                            ready.set()
                        if kind == "run" and frames[-1][1]["status"] == "succeeded" and \
                                frames[-1][1]["id"] != first["id"]:
                            return

        reader = asyncio.create_task(read())
        async with asyncio.timeout(20):
            await ready.wait()
            assert [(k, d.get("id")) for k, d in frames] == [("run", first["id"]),
                                                             ("ready", None)]
            second = await start(c, machine_id=mid, task=script(cmd("sleep 0.3")),
                                 model="scripted")
            await reader
        seen = [d["status"] for k, d in frames if k == "run" and d["id"] == second["id"]]
        assert seen[-1] == "succeeded" and len(seen) >= 2, seen  # it came, then it changed
        assert seen[-1] == (await c.get(f"/v1/runs/{second['id']}")).json()["status"]


async def test_usage_by_day(server: LiveServer) -> None:
    s = server
    key = await s.key(credits=1000)
    async with s.client(key) as c:
        mid = await machine(c)
        run = await start(c, machine_id=mid, model="scripted",
                          task=script(cmd("echo a"), {"actions": [], "usage": {
                              "input_tokens": 7, "output_tokens": 3}}))
        done = await wait_for(c, run["id"])
        assert done["status"] == "succeeded", done
        r = await c.get("/v1/usage/daily", params={"days": 7})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["days"] == 7
        today = utcnow().strftime("%Y-%m-%d")
        assert [d["date"] for d in body["data"]] == [today]
        day = body["data"][0]
        assert day["steps"] == done["steps_completed"] == 3
        assert day["credits"] >= done["credits_charged"] > 0
        assert (day["input_tokens"], day["output_tokens"]) == (7, 3)
        assert (await c.get("/v1/usage/daily", params={"days": 0})).status_code == 422
    async with s.client(await s.key(account="empty")) as c:
        assert (await c.get("/v1/usage/daily")).json()["data"] == []
