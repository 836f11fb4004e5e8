"""Bring your own key on runs: the X-LLM-* headers and the llm block, the
stored keys, the run's llm echo, the key snapshot destroyed at the end, no
fallback — and the key nowhere in clear: not in logs, events, webhooks,
responses or the database."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from sqlalchemy import select, text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from deckhand import crypto
from deckhand.store import llm_keys as llm_keys_store
from deckhand.store.tables import run_llm_keys
from tests.support.byok import BYOK_KEY, byok_settings, dump
from tests.support.contract import assert_error, assert_valid
from tests.support.fake_providers import (
    anthropic_message,
    fake_provider,
    function_call,
    llm_server,
    output_message,
    responses,
    tool_use,
)
from tests.support.fake_providers import text as say
from tests.support.polling import wait_until
from tests.support.runs import events, machine, start, wait_for
from tests.support.servers import started

pytestmark = pytest.mark.asyncio


class Receiver:
    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    async def handle(self, request: Request) -> JSONResponse:
        self.bodies.append(await request.body())
        return JSONResponse({"ok": True})


async def _receiver() -> tuple[Receiver, uvicorn.Server, asyncio.Task[Any], str]:
    receiver = Receiver()
    app = Starlette(routes=[Route("/hook", receiver.handle, methods=["POST"])])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    task = asyncio.create_task(server.serve())
    port = await started(server, task, "the webhook receiver")
    return receiver, server, task, f"http://127.0.0.1:{port}/hook"


async def test_header_key_runs_the_harness_and_is_never_in_clear(
        tmp_path: Path, database_url: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    receiver, rserver, rtask, hook = await _receiver()
    try:
        async with fake_provider(api_key=BYOK_KEY) as fake, llm_server(
                tmp_path, database_url, webhook_allow_hosts="127.0.0.1",
                **byok_settings(fake)) as server:
            key = await server.key()
            headers = {"X-LLM-Provider": "anthropic", "X-LLM-Api-Key": BYOK_KEY}
            async with server.client(key) as c:
                mid = await machine(c)
                fake.reply(
                    anthropic_message(tool_use("bash", {"command": "echo byok-ok"})),
                    anthropic_message(tool_use("request_human", {"question": "Go on?"})),
                    anthropic_message(say("Finished: byok-ok")),
                )
                r = await c.post("/v1/runs", headers={**headers, "Idempotency-Key": "byok-1"},
                                 json={"machine_id": mid, "task": "echo it",
                                       "webhook_url": hook})
                assert r.status_code == 200, r.text
                created = r.json()
                assert_valid("RunResponse", created)
                echo = {"provider": "anthropic", "model": "claude-sonnet-4-6",
                        "key_fingerprint": crypto.fingerprint(BYOK_KEY),
                        "key_source": "header", "key_scrubbed": False}
                assert created["llm"] == echo and created["brain"] == "anthropic"

                paused = await wait_for(c, created["id"], {"awaiting_human"})
                assert paused["llm"]["key_scrubbed"] is False
                async with server.services.db.read() as conn:
                    sealed = (await conn.execute(select(run_llm_keys.c.key_sealed))).scalar()
                assert sealed and BYOK_KEY not in sealed
                assert llm_keys_store.open_key(server.services.secret, sealed) == BYOK_KEY

                await c.post(f"/v1/runs/{created['id']}/resume", json={"note": "yes"})
                final = await wait_for(c, created["id"])
                assert final["status"] == "succeeded", final["error"]
                assert final["result"]["answer"] == "Finished: byok-ok"
                assert final["llm"] == {**echo, "key_scrubbed": True}
                async with server.services.db.read() as conn:
                    assert (await conn.execute(select(run_llm_keys))).all() == []

                # everything a client can read
                seen = [r.text, json.dumps(await events(c, created["id"])),
                        (await c.get(f"/v1/runs/{created['id']}")).text,
                        (await c.get("/v1/runs")).text,
                        (await c.get("/v1/idempotency/byok-1")).text]
                await wait_until(lambda: list(receiver.bodies), done=lambda b: len(b) >= 2,
                                 timeout=15, what="two webhooks (awaiting_human, succeeded)")
            # every model request carried the caller's key (the fake checks it)
            assert len(fake.agent_bodies()) == 3 and len(fake.requests) == 4
            database = await dump(server.services.db)
            raw_db = b""
            if database_url.startswith("sqlite"):
                db_file = Path(database_url.split("///", 1)[1])
                for f in db_file.parent.glob(db_file.name + "*"):
                    raw_db += f.read_bytes()
    finally:
        rserver.should_exit = True
        await rtask
    hooks = b"".join(receiver.bodies).decode()
    assert '"run.succeeded"' in hooks and "key_fingerprint" in hooks
    for where, content in [("responses and events", "\n".join(seen)), ("webhooks", hooks),
                           ("database", database), ("logs", caplog.text)]:
        assert BYOK_KEY not in content, f"the provider key leaked into the {where}"
    assert BYOK_KEY.encode() not in raw_db
    assert "sk-ant-api03-CALLERS" not in caplog.text


async def test_stored_key_and_model_override(tmp_path: Path, sqlite_url: str) -> None:
    stored = "sk-proj-stored-for-the-account-0001"
    async with fake_provider(api_key=stored) as fake, llm_server(
            tmp_path, sqlite_url, **byok_settings(fake)) as server:
        key = await server.key()
        async with server.client(key) as c:
            mid = await machine(c)
            assert (await c.put("/v1/llm/keys/openai", json={"api_key": stored})).status_code \
                == 200
            fake.reply(responses(function_call("run_command", {"command": "true"})),
                       responses(output_message("ok")))
            run = await start(c, machine_id=mid, task="t", cua_version="v3",
                              llm={"provider": "openai", "model": "computer-use-preview"})
            assert run["llm"]["key_source"] == "stored"
            assert run["llm"]["key_fingerprint"] == crypto.fingerprint(stored)
            final = await wait_for(c, run["id"])
            assert final["status"] == "succeeded", final["error"]
            assert final["llm"]["key_scrubbed"] is True
            # X-LLM-Model overrides the body's model; the stored key is still used
            fake.reply(responses(output_message("ok")))
            r = await c.post("/v1/runs", headers={"X-LLM-Provider": "openai",
                                                  "X-LLM-Model": "gpt-5.4"},
                             json={"machine_id": mid, "task": "t", "cua_version": "v3",
                                   "llm": {"provider": "openai", "model": "other"}})
            assert r.status_code == 200, r.text
            assert r.json()["llm"]["model"] == "gpt-5.4"
            await wait_for(c, r.json()["id"])
    assert fake.agent_bodies()[-1]["model"] == "gpt-5.4"


async def test_no_key_no_fallback(tmp_path: Path, sqlite_url: str) -> None:
    async with fake_provider() as fake, llm_server(
            tmp_path, sqlite_url, **byok_settings(fake)) as server:
        live = await server.key()
        test = await server.key(test=True)
        async with server.client(live) as c:
            mid = await machine(c)
            base = {"machine_id": mid, "task": "t"}
            assert_error(await c.post("/v1/runs", json={**base, "llm": {"provider": "anthropic"}}),
                         422, "LLM_KEY_NOT_CONFIGURED")
            assert_error(await c.post("/v1/runs", headers={"X-LLM-Api-Key": BYOK_KEY},
                                      json=base), 422, "LLM_PROVIDER_UNSUPPORTED")
            assert_error(await c.post("/v1/runs", json={**base, "llm": {"provider": "gemini"}}),
                         422, "LLM_PROVIDER_UNSUPPORTED")
            assert_error(await c.post("/v1/runs", json={**base, "llm": {"provider": "openai",
                                                                         "api_key": BYOK_KEY}}),
                         422, "VALIDATION_ERROR")
            assert_error(await c.post("/v1/runs", json={**base, "model": "anthropic"}),
                         422, "LLM_KEY_NOT_CONFIGURED")
            await c.put("/v1/llm/keys/anthropic", json={"api_key": BYOK_KEY})
            assert (await c.get("/v1/runs")).json()["data"] == []

            # a wrong key: the run fails with the provider's code, nothing else runs it
            r = await c.post("/v1/runs", headers={"X-LLM-Provider": "anthropic",
                                                  "X-LLM-Api-Key": "sk-ant-wrong-0000000000"},
                             json=base)
            final = await wait_for(c, r.json()["id"])
            assert final["status"] == "failed" and final["error"]["code"] == "LLM_AUTH_FAILED"
            assert final["steps_completed"] == 0 and final["llm"]["key_scrubbed"] is True
            stream = await events(c, final["id"])
            assert stream[0]["data"]["brain"] == "anthropic"
            assert "offline" not in json.dumps(stream)
        async with server.client(test) as c:
            mid = await machine(c)
            # stored keys belong to live mode
            assert_error(await c.post("/v1/runs", json={"machine_id": mid, "task": "t",
                                                        "llm": {"provider": "anthropic"}}),
                         422, "LLM_KEY_NOT_CONFIGURED")


async def test_no_leftover_snapshots_after_cancel(tmp_path: Path, sqlite_url: str) -> None:
    async with fake_provider(api_key=BYOK_KEY) as fake, llm_server(
            tmp_path, sqlite_url, workers=0, **byok_settings(fake)) as server:
        key = await server.key()
        async with server.client(key) as c:
            mid = await machine(c)
            r = await c.post("/v1/runs", headers={"X-LLM-Provider": "anthropic",
                                                  "X-LLM-Api-Key": BYOK_KEY},
                             json={"machine_id": mid, "task": "t"})
            run = r.json()
            async with server.services.db.read() as conn:
                assert len((await conn.execute(select(run_llm_keys))).all()) == 1
            cancelled = (await c.post(f"/v1/runs/{run['id']}/cancel")).json()
            assert cancelled["status"] == "cancelled"
            assert cancelled["llm"]["key_scrubbed"] is True
            async with server.services.db.read() as conn:
                assert (await conn.execute(text("SELECT count(*) FROM run_llm_keys"))).scalar() \
                    == 0
