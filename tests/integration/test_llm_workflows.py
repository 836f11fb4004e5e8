"""Bring your own key on workflow runs: the llm block and the X-LLM-* headers
as on runs, the workflow run's sealed key snapshot handed to each task run,
both destroyed when their run ends, provider failures failing the workflow
run with their LLM_* code — and the key nowhere in clear."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from deckhand import crypto
from deckhand.store.tables import run_llm_keys, workflow_run_llm_keys
from tests.support.byok import BYOK_KEY, byok_settings, dump
from tests.support.contract import assert_error, assert_valid
from tests.support.fake_providers import anthropic_message, fake_provider, llm_server, tool_use
from tests.support.fake_providers import text as say
from tests.support.runs import events, machine
from tests.support.workflows import (  # destroy_machines: an autouse fixture
    child_runs,
    destroy_machines,  # noqa: F401
    wait_wf,
    wf_events,
)

pytestmark = pytest.mark.asyncio
HEADERS = {"X-LLM-Provider": "anthropic", "X-LLM-Api-Key": BYOK_KEY}


def one_task(task: str = "echo it") -> dict[str, Any]:
    return {"steps": [{"id": "work", "type": "task", "task": task, "cua_version": "v3"}],
            "output": {"answer": "{{steps.work.result.answer}}"}}


async def snapshots(server: Any) -> tuple[int, int]:
    """(run key snapshots, workflow run key snapshots) left in the database."""
    async with server.services.db.read() as conn:
        runs = (await conn.execute(select(func.count()).select_from(run_llm_keys))).scalar()
        wfs = (await conn.execute(
            select(func.count()).select_from(workflow_run_llm_keys))).scalar()
    return runs, wfs


async def test_workflow_run_with_header_key(tmp_path: Path, database_url: str) -> None:
    async with fake_provider(api_key=BYOK_KEY) as fake, llm_server(
            tmp_path, database_url, **byok_settings(fake)) as server:
        key = await server.key()
        async with server.client(key) as c:
            mid = await machine(c)
            fake.reply(anthropic_message(tool_use("bash", {"command": "echo wf-byok"})),
                       anthropic_message(say("Finished: wf-byok")))
            r = await c.post("/v1/workflows/runs", headers=HEADERS,
                             json={"definition": one_task(), "machine_id": mid})
            assert r.status_code == 200, r.text
            created = r.json()
            assert_valid("WorkflowRunResponse", created)
            echo = {"provider": "anthropic", "model": "claude-sonnet-4-6",
                    "key_fingerprint": crypto.fingerprint(BYOK_KEY), "key_source": "header",
                    "key_scrubbed": False}
            assert created["llm"] == echo

            final = await wait_wf(c, created["id"])
            assert final["status"] == "succeeded", final["error"]
            assert final["output"] == {"answer": "Finished: wf-byok"}
            assert final["llm"] == {**echo, "key_scrubbed": True}
            [child] = await child_runs(c, created["id"])
            assert child["brain"] == "anthropic" and child["status"] == "succeeded"
            assert child["llm"] == {**echo, "key_scrubbed": True}
            assert (await snapshots(server)) == (0, 0)
            seen = [r.text, json.dumps(await wf_events(c, created["id"])),
                    json.dumps(await events(c, child["id"])),
                    (await c.get(f"/v1/workflows/runs/{created['id']}")).text]
        # both model calls went out with the caller's key (the fake refuses any other)
        assert len(fake.agent_bodies()) == 2
        assert "wf-byok" in json.dumps(fake.agent_bodies()[1])
        database = await dump(server.services.db)
    raw_db = b""
    if database_url.startswith("sqlite"):
        db_file = Path(database_url.split("///", 1)[1])
        raw_db = b"".join(f.read_bytes() for f in db_file.parent.glob(db_file.name + "*"))
        assert raw_db
    assert BYOK_KEY not in "\n".join(seen)
    assert BYOK_KEY not in database and BYOK_KEY.encode() not in raw_db


async def test_workflow_run_byok_failures_and_refusals(tmp_path: Path, sqlite_url: str) -> None:
    stored = "sk-ant-stored-for-workflows-0001"
    async with fake_provider(api_key=stored) as fake, llm_server(
            tmp_path, sqlite_url, **byok_settings(fake)) as server:
        key = await server.key()
        async with server.client(key) as c:
            mid = await machine(c)
            base = {"definition": one_task(), "machine_id": mid}
            # the same refusals as POST /v1/runs
            assert_error(await c.post("/v1/workflows/runs", headers={"X-LLM-Api-Key": stored},
                                      json=base), 422, "LLM_PROVIDER_UNSUPPORTED")
            assert_error(await c.post("/v1/workflows/runs",
                                      json={**base, "llm": {"provider": "gemini"}}),
                         422, "LLM_PROVIDER_UNSUPPORTED")
            assert_error(await c.post("/v1/workflows/runs",
                                      json={**base, "llm": {"provider": "anthropic"}}),
                         422, "LLM_KEY_NOT_CONFIGURED")
            assert (await c.get("/v1/workflows/runs")).json()["data"] == []

            # a wrong key: the task run fails with the provider's code, and so does the
            # workflow run; nothing falls back to the server's brain
            r = await c.post("/v1/workflows/runs", json=base, headers={
                "X-LLM-Provider": "anthropic", "X-LLM-Api-Key": "sk-ant-wrong-000000000000"})
            assert r.status_code == 200, r.text
            final = await wait_wf(c, r.json()["id"])
            assert final["status"] == "failed"
            assert final["error"]["code"] == "LLM_AUTH_FAILED"
            assert final["error"]["step_id"] == "work"
            assert final["llm"]["key_scrubbed"] is True
            [child] = await child_runs(c, final["id"])
            assert child["status"] == "failed" and child["error"]["code"] == "LLM_AUTH_FAILED"
            assert child["brain"] == "anthropic" and child["steps_completed"] == 0

            # a stored key on a saved workflow, the model from X-LLM-Model
            assert (await c.put("/v1/llm/keys/anthropic", json={"api_key": stored})) \
                .status_code == 200
            wf = (await c.post("/v1/workflows", json={"name": "w", "slug": "byok",
                                                      "definition": one_task()})).json()
            fake.reply(anthropic_message(say("Done with the stored key.")))
            r = await c.post(f"/v1/workflows/{wf['id']}/runs",
                             headers={"X-LLM-Model": "claude-opus-x"},
                             json={"machine_id": mid, "llm": {"provider": "anthropic"}})
            assert r.status_code == 200, r.text
            assert r.json()["llm"]["key_source"] == "stored"
            assert r.json()["llm"]["model"] == "claude-opus-x"
            final = await wait_wf(c, r.json()["id"])
            assert final["status"] == "succeeded", final["error"]
            [child] = await child_runs(c, final["id"])
            assert child["llm"]["key_source"] == "stored"
            assert child["llm"]["key_fingerprint"] == crypto.fingerprint(stored)
            assert fake.agent_bodies()[-1]["model"] == "claude-opus-x"

            # a workflow run that ends before any task: its snapshot dies with it
            gate = {"steps": [{"id": "gate", "type": "human_approval", "message": "Go?"},
                              *one_task()["steps"]]}
            r = await c.post("/v1/workflows/runs", headers={"X-LLM-Provider": "anthropic"},
                             json={"definition": gate, "machine_id": mid})
            waiting = await wait_wf(c, r.json()["id"], {"awaiting_human"})
            assert (await snapshots(server)) == (0, 1)
            cancelled = (await c.post(f"/v1/workflows/runs/{waiting['id']}/cancel")).json()
            assert cancelled["status"] == "cancelled"
            assert cancelled["llm"]["key_scrubbed"] is True
            assert await child_runs(c, waiting["id"]) == []
            assert (await snapshots(server)) == (0, 0)
