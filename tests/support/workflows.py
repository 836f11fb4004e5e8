"""Helpers for the workflow tests over real HTTP (test_workflows*.py,
test_llm_workflows.py): scripted task steps, starting and reading workflow
runs, their events and child runs, and the autouse fixture ``destroy_machines``
that a test module registers by importing it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from deckhand.machines.local import LocalMachineProvider
from tests.support.contract import assert_valid
from tests.support.runs import poll_status, read_events, wait_for

TERMINAL = {"succeeded", "failed", "cancelled", "timed_out"}
SCRIPTED = {"model": "scripted"}


@pytest.fixture(autouse=True)
async def destroy_machines(tmp_path: Path) -> AsyncIterator[None]:
    """Machine agents outlive the server on purpose; stop this test's ones."""
    yield
    machines = tmp_path / "data" / "machines"
    if machines.is_dir():
        provider = LocalMachineProvider(tmp_path / "data")
        for mdir in machines.iterdir():
            await provider.destroy(mdir.name)


def sh(command: str, *, answer: str | None = None, fail: str | None = None) -> dict[str, Any]:
    """One scripted decision: run ``command``; with ``answer`` / ``fail`` it also ends the run."""
    entry: dict[str, Any] = {"actions": [{"kind": "terminal", "command": command}]}
    if answer is not None:
        entry["outcome"] = {"success": True, "answer": answer}
    if fail is not None:
        entry["outcome"] = {"success": False, "error_code": "TASK_FAILED", "message": fail}
    return entry


def task(step_id: str, *entries: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """A task step whose child run plays ``entries`` with the scripted brain."""
    return {"id": step_id, "type": "task", "task": json.dumps({"script": list(entries)}),
            **fields}


def wait(step_id: str, seconds: float = 0.0) -> dict[str, Any]:
    return {"id": step_id, "type": "wait", "seconds": seconds}


async def start_adhoc(c: httpx.AsyncClient, definition: dict[str, Any],
                      **fields: Any) -> dict[str, Any]:
    fields.setdefault("llm", SCRIPTED)
    r = await c.post("/v1/workflows/runs", json={"definition": definition, **fields})
    assert r.status_code == 200, r.text
    body = r.json()
    assert_valid("WorkflowRunResponse", body)
    return body  # type: ignore[no-any-return]


async def get_wf_run(c: httpx.AsyncClient, run_id: str) -> dict[str, Any]:
    r = await c.get(f"/v1/workflows/runs/{run_id}")
    assert r.status_code == 200, r.text
    body = r.json()
    assert_valid("WorkflowRunResponse", body)
    return body  # type: ignore[no-any-return]


async def wait_wf(c: httpx.AsyncClient, run_id: str, statuses: set[str] | None = None,
                  timeout: float = 30.0) -> dict[str, Any]:
    return await poll_status(lambda: get_wf_run(c, run_id), f"workflow run {run_id}",
                             statuses, timeout)


async def wf_events(c: httpx.AsyncClient, run_id: str, *, last_event_id: int | None = None,
                    after: int | None = None, timeout: float = 30.0) -> list[dict[str, Any]]:
    return await read_events(c, f"/v1/workflows/runs/{run_id}/events",
                             last_event_id=last_event_id, after=after, timeout=timeout)


async def child_runs(c: httpx.AsyncClient, wf_run_id: str) -> list[dict[str, Any]]:
    """The workflow run's task runs, from GET /v1/runs (oldest first)."""
    r = await c.get("/v1/runs", params={"limit": 200})
    assert r.status_code == 200
    return [x for x in reversed(r.json()["data"]) if x.get("workflow_run_id") == wf_run_id]


def started(stream: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e["data"] for e in stream if e["type"] == "step_started"]


def finished(stream: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {e["data"]["key"]: e["data"] for e in stream if e["type"] == "step_finished"}


def assert_log(stream: list[dict[str, Any]]) -> None:
    """Numbered 1..N without gaps; one done, last."""
    assert [e["seq"] for e in stream] == list(range(1, len(stream) + 1))
    assert stream[-1]["type"] == "done"
    assert sum(e["type"] == "done" for e in stream) == 1


async def wait_run_status(c: httpx.AsyncClient, run_id: str,
                          timeout: float = 15.0) -> dict[str, Any]:
    """The task run ``run_id`` once it has ended."""
    return await wait_for(c, run_id, timeout=timeout)
