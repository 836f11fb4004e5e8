"""Helpers for the schedule and trigger tests (integration and e2e)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from tests.support.polling import wait_until

TASK = "Run `echo scheduled`"


def at(seconds: float) -> str:
    """An ISO time ``seconds`` from now (UTC)."""
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()


def parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def create(c: httpx.AsyncClient, machine_id: str, **fields: Any) -> dict[str, Any]:
    body = {"name": "s", "machine_id": machine_id, "task_prompt": TASK, **fields}
    r = await c.post("/v1/schedules", json=body)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


async def history(c: httpx.AsyncClient, schedule_id: str, **params: Any) -> list[dict[str, Any]]:
    r = await c.get(f"/v1/schedules/{schedule_id}/runs", params={"limit": 200, **params})
    assert r.status_code == 200, r.text
    return r.json()["data"]  # type: ignore[no-any-return]


async def wait_firings(c: httpx.AsyncClient, schedule_id: str, count: int,
                       timeout: float = 20.0, **params: Any) -> list[dict[str, Any]]:
    """Poll the run history until it holds at least ``count`` firings, each
    made (a pending chain firing has no run yet)."""
    return await wait_until(
        lambda: history(c, schedule_id, **params), timeout=timeout,
        what=f"{count} firing(s) of schedule {schedule_id}",
        done=lambda rows: len(rows) >= count and all(
            r["agent_run_id"] or r["status"] != "queued" for r in rows))
