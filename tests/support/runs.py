"""Helpers for tests that drive runs through the public API."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from deckhand.client import sse_data
from tests.support.polling import wait_until

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

    async def get() -> dict[str, Any]:
        return (await c.get(f"/v1/runs/{run_id}")).json()  # type: ignore[no-any-return]

    return await poll_status(get, f"run {run_id}", statuses, timeout)


async def poll_status(get: Callable[[], Awaitable[dict[str, Any]]], what: str,
                      statuses: set[str] | None = None,
                      timeout: float = 30.0) -> dict[str, Any]:
    """Poll ``get()`` until its ``status`` is one of ``statuses`` (default: any
    terminal); ``what`` names it in the failure."""
    want = statuses or TERMINAL
    return await wait_until(get, timeout=timeout, what=f"{what} to be {' or '.join(sorted(want))}",
                            done=lambda body: body["status"] in want)


async def events(c: httpx.AsyncClient, run_id: str, *, last_event_id: int | None = None,
                 after: int | None = None, timeout: float = 30.0) -> list[dict[str, Any]]:
    """Read the run's SSE stream until it closes (after ``done``)."""
    return await read_events(c, f"/v1/runs/{run_id}/events", last_event_id=last_event_id,
                             after=after, timeout=timeout)


async def read_events(c: httpx.AsyncClient, path: str, *, last_event_id: int | None = None,
                      after: int | None = None, timeout: float = 30.0) -> list[dict[str, Any]]:
    """Read the SSE stream at ``path`` until it closes."""
    headers = {} if last_event_id is None else {"Last-Event-ID": str(last_event_id)}
    params = {} if after is None else {"after": after}
    out = []
    async with asyncio.timeout(timeout):
        async with c.stream("GET", path, headers=headers, params=params) as r:
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/event-stream")
            async for data in sse_data(r.aiter_lines()):
                out.append(json.loads(data))
    return out
