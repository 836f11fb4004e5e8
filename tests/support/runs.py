"""Helpers for tests that drive runs through the public API."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx

from deckhand.client import sse_data

TERMINAL = {"succeeded", "failed", "cancelled", "timed_out"}


def script(*steps: dict[str, Any], answer: str | None = None) -> str:
    body: dict[str, Any] = {"script": list(steps)}
    if answer:
        body["answer"] = answer
    return json.dumps(body)


def cmd(command: str, **extra: Any) -> dict[str, Any]:
    return {"actions": [{"kind": "terminal", "command": command, **extra}]}


async def machine(c: httpx.AsyncClient, name: str = "m") -> str:
    r = await c.post("/v1/machines", json={"display_name": name})
    assert r.status_code == 200, r.text
    return r.json()["machine"]["id"]  # type: ignore[no-any-return]


async def start(c: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    r = await c.post("/v1/runs", json=fields)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


async def wait_for(c: httpx.AsyncClient, run_id: str, statuses: set[str] | None = None,
                   timeout: float = 30.0) -> dict[str, Any]:
    """Poll until the run is in one of ``statuses`` (default: any terminal)."""
    want = statuses or TERMINAL
    deadline = time.monotonic() + timeout
    while True:
        run = (await c.get(f"/v1/runs/{run_id}")).json()
        if run["status"] in want:
            return run  # type: ignore[no-any-return]
        if time.monotonic() > deadline:
            raise AssertionError(f"run {run_id} stuck in {run['status']}: {run}")
        await asyncio.sleep(0.05)


async def events(c: httpx.AsyncClient, run_id: str, *, last_event_id: int | None = None,
                 after: int | None = None, timeout: float = 30.0) -> list[dict[str, Any]]:
    """Read the SSE stream until it closes (after ``done``)."""
    headers = {} if last_event_id is None else {"Last-Event-ID": str(last_event_id)}
    params = {} if after is None else {"after": after}
    out = []
    async with asyncio.timeout(timeout):
        async with c.stream("GET", f"/v1/runs/{run_id}/events", headers=headers,
                            params=params) as r:
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/event-stream")
            async for data in sse_data(r.aiter_lines()):
                out.append(json.loads(data))
    return out
