"""BYOK on schedules: only the non-secret preference is stored; each firing
uses the key stored at fire time; a deleted key fails the firing with
LLM_KEY_NOT_CONFIGURED (recorded, no fallback to the server's brain)."""

from __future__ import annotations

from pathlib import Path

import pytest

from deckhand import crypto
from tests.support.byok import BYOK_KEY, byok_settings, dump
from tests.support.contract import assert_error
from tests.support.fake_providers import fake_provider, llm_server
from tests.support.runs import machine
from tests.support.schedules import create, history

pytestmark = pytest.mark.asyncio
SECOND_KEY = "sk-ant-api03-ROTATED-KEY-55d1e0a9c4"


async def test_byok_uses_the_key_stored_at_fire_time(tmp_path: Path, database_url: str) -> None:
    async with fake_provider() as fake, llm_server(
            tmp_path, database_url, workers=0, **byok_settings(fake)) as server:
        key = await server.key()
        async with server.client(key) as c:
            mid = await machine(c)
            s = await create(c, mid, frequency="daily", llm={"provider": "anthropic",
                                                           "model": "claude-x"})
            assert s["llm"] == {"provider": "anthropic", "model": "claude-x"}
            header = await c.post("/v1/schedules", headers={
                "X-LLM-Provider": "anthropic", "X-LLM-Api-Key": BYOK_KEY}, json={
                "name": "h", "machine_id": mid, "task_prompt": "t", "frequency": "daily"})
            assert header.status_code == 200 and header.json()["llm"] == {"provider": "anthropic"}
            assert BYOK_KEY not in await dump(server.services.db)

            for stored in (BYOK_KEY, SECOND_KEY):
                assert (await c.put("/v1/llm/keys/anthropic",
                                    json={"api_key": stored})).status_code == 200
                fired = (await c.post(f"/v1/schedules/{s['id']}/run", json={})).json()
                run = (await c.get(f"/v1/runs/{fired['agent_run_id']}")).json()
                assert run["llm"]["key_source"] == "stored"
                assert run["llm"]["key_fingerprint"] == crypto.fingerprint(stored)
                assert run["llm"]["model"] == "claude-x" and run["brain"] == "anthropic"

            assert (await c.delete("/v1/llm/keys/anthropic")).status_code == 200
            assert_error(await c.post(f"/v1/schedules/{s['id']}/run", json={}), 422,
                         "LLM_KEY_NOT_CONFIGURED")
            latest = (await history(c, s["id"]))[0]
            assert latest["status"] == "failed" and latest["agent_run_id"] is None
            assert latest["error"].startswith("LLM_KEY_NOT_CONFIGURED")
            after = (await c.get(f"/v1/schedules/{s['id']}")).json()
            assert after["consecutive_failures"] == 1 and after["run_count"] == 2
