"""A workflow's `retry` stops at once on a failure that another attempt
cannot change (the error tree's non-retryable request errors), and says so in
the retry step's record; a failure of the work itself is still retried."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from deckhand.errors import ErrorCode, another_attempt_can_help
from tests.conftest import LiveServer
from tests.support.fake_providers import fake_provider, llm_server, provider_settings
from tests.support.runs import machine, poll_status

NO_MACHINE = "mch_test_00000000"


def retry(body: list[dict[str, Any]], attempts: int = 3) -> dict[str, Any]:
    return {"steps": [{"id": "again", "type": "retry", "max_attempts": attempts,
                       "delay_ms": 0, "body": body}]}


def failing_task(**fields: Any) -> dict[str, Any]:
    script = {"script": [{"actions": [], "outcome": {
        "success": False, "error_code": "TASK_FAILED", "message": "not yet"}}]}
    return {"id": "t", "type": "task", "task": json.dumps(script), **fields}


async def finished(c: httpx.AsyncClient, definition: dict[str, Any],
                   **fields: Any) -> dict[str, Any]:
    r = await c.post("/v1/workflows/runs", json={"definition": definition, **fields})
    assert r.status_code == 200, r.text

    async def get() -> dict[str, Any]:
        return (await c.get(f"/v1/workflows/runs/{r.json()['id']}")).json()  # type: ignore[no-any-return]

    return await poll_status(get, "the workflow run")


def test_which_failures_another_attempt_can_change() -> None:
    for code in (ErrorCode.LLM_AUTH_FAILED, ErrorCode.LLM_KEY_NOT_CONFIGURED,
                 ErrorCode.INSUFFICIENT_CREDITS, ErrorCode.NOT_FOUND,
                 ErrorCode.MACHINE_REQUIRED, ErrorCode.OFFLINE_BRAIN_UNSUPPORTED):
        assert not another_attempt_can_help(code.value), code
    for code in ("TASK_FAILED", "ASSERTION_FAILED", ErrorCode.VERIFICATION_FAILED.value,
                 ErrorCode.MAX_STEPS_REACHED.value, ErrorCode.MACHINE_ERROR.value,
                 ErrorCode.LLM_UPSTREAM_ERROR.value, ErrorCode.LLM_PROVIDER_RATE_LIMITED.value):
        assert another_attempt_can_help(code), code


@pytest.mark.asyncio
async def test_retry_stops_at_once_on_a_machine_that_is_not_there(
        sqlite_server: LiveServer) -> None:
    key = await sqlite_server.key(test=True)
    async with sqlite_server.client(key) as c:
        run = await finished(c, retry([failing_task(machine_id=NO_MACHINE)]),
                                llm={"model": "scripted"})
    assert run["status"] == "failed", run
    err = run["error"]
    assert err["code"] == "NOT_FOUND" and err["step_id"] == "again"
    assert err["attempts"] == 1 and err["retryable"] is False
    assert "stopped after attempt 1 of 3" in err["message"]
    assert err["last_error"]["code"] == "NOT_FOUND"


@pytest.mark.asyncio
async def test_retry_stops_at_once_when_the_provider_refuses_the_key(
        tmp_path: Path, sqlite_url: str) -> None:
    async with fake_provider() as fake:
        wrong = {**provider_settings("anthropic", fake),
                 "anthropic_api_key": "sk-ant-not-the-right-key-000000"}
        async with llm_server(tmp_path, sqlite_url, **wrong) as server:
            key = await server.key()
            async with server.client(key) as c:
                mid = await machine(c)
                try:
                    run = await finished(c, retry([
                        {"id": "t", "type": "task", "task": "Open the settings"}]),
                        machine_id=mid)
                finally:
                    await c.delete(f"/v1/machines/{mid}")
    assert run["status"] == "failed", run
    err = run["error"]
    assert err["code"] == "LLM_AUTH_FAILED" and err["attempts"] == 1, err
    assert "cannot change on a retry" in err["message"]
    assert len(fake.agent_bodies()) == 1  # one attempt reached the provider, not three


@pytest.mark.asyncio
async def test_a_failure_of_the_work_is_still_retried(sqlite_server: LiveServer) -> None:
    key = await sqlite_server.key(test=True)
    async with sqlite_server.client(key) as c:
        mid = await machine(c)
        try:
            run = await finished(c, retry([failing_task()], attempts=2), machine_id=mid,
                                    llm={"model": "scripted"})
        finally:
            await c.delete(f"/v1/machines/{mid}")
    assert run["status"] == "failed"
    assert run["error"]["code"] == "RETRY_EXHAUSTED"
    assert run["error"]["last_error"]["code"] == "TASK_FAILED"
