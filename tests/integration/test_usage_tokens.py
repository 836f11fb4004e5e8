"""Model tokens in usage: per call (the contract's UsageInfo on predict,
ground and session predict), per step (runs) and in GET /v1/usage — and
idempotent replays of inference calls, which charge nothing."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.contract import assert_error, assert_valid
from tests.support.fake_providers import (
    anthropic_message,
    fake_provider,
    llm_server,
    provider_settings,
    screenshot,
    tool_use,
)
from tests.support.fake_providers import text as say
from tests.support.runs import machine, start, wait_for

pytestmark = pytest.mark.asyncio
NO_CACHE = {"cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
SHOT = base64.b64encode(screenshot(1280, 800, fmt="PNG")).decode()
CLICK = anthropic_message(tool_use("computer", {"action": "left_click", "coordinate": [5, 6]}),
                          usage=(120, 30))


async def twice(c: httpx.AsyncClient, path: str, body: dict[str, Any], key: str,
                schema: str) -> tuple[httpx.Response, httpx.Response]:
    """The call, then its idempotent replay."""
    first = await c.post(path, json=body, headers={"Idempotency-Key": key})
    again = await c.post(path, json=body, headers={"Idempotency-Key": key})
    assert first.status_code == again.status_code == 200, (first.text, again.text)
    assert_valid(schema, first.json())
    assert_valid(schema, again.json())
    assert first.headers["x-coasty-idempotent-replay"] == "false"
    assert again.headers["x-coasty-idempotent-replay"] == "true"
    assert again.headers["x-credits-charged"] == "0"
    return first, again


def billed(usage: dict[str, Any], credits: int, tokens: tuple[int, int]) -> None:
    assert usage == {"input_tokens": tokens[0], "output_tokens": tokens[1],
                     "credits_charged": credits, "cost_cents": credits,
                     "breakdown": [{"item": "base", "credits": credits}], "billed": True}


def replayed(first: httpx.Response, again: httpx.Response) -> None:
    """The replay is the original answer, charging nothing."""
    usage = first.json()["usage"]
    assert again.json()["usage"] == {**usage, "credits_charged": 0, "cost_cents": 0,
                                     "breakdown": None, "billed": False}
    assert {k: v for k, v in again.json().items() if k != "usage"} \
        == {k: v for k, v in first.json().items() if k != "usage"}


async def test_tokens_per_call_and_in_usage_and_free_replays(tmp_path: Path,
                                                             database_url: str) -> None:
    async with fake_provider() as fake, llm_server(
            tmp_path, database_url, **provider_settings("anthropic", fake)) as server:
        key = await server.key(credits=1000)
        async with server.client(key) as c:
            fake.reply(CLICK)
            first, again = await twice(c, "/v1/predict", {
                "screenshot": SHOT, "instruction": "Click", "cua_version": "v3"}, "p-1",
                "PredictResponse")
            billed(first.json()["usage"], 5, (120, 30))
            replayed(first, again)

            fake.points.append((10, 10))  # a grounding call uses (50, 10) tokens
            first, again = await twice(c, "/v1/ground", {"screenshot": SHOT,
                                                         "element": "OK"}, "g-1",
                                       "GroundResponse")
            billed(first.json()["usage"], 3, (50, 10))
            replayed(first, again)
            # not found: not charged, but the model's tokens count in the usage
            assert_error(await c.post("/v1/ground", json={"screenshot": SHOT,
                                                          "element": "a unicorn"}),
                         404, "NOT_FOUND")

            sid = (await c.post("/v1/sessions", json={"cua_version": "v3"})).json()["session_id"]
            fake.reply(CLICK)
            first, again = await twice(c, f"/v1/sessions/{sid}/predict",
                                       {"screenshot": SHOT, "instruction": "Click"}, "s-1",
                                       "SessionPredictResponse")
            billed(first.json()["usage"], 5, (120, 30))
            replayed(first, again)
            info = (await c.get(f"/v1/sessions/{sid}")).json()
            assert info["step_count"] == 1 and info["total_credits_used"] == 5
            assert info["usage"] == {"input_tokens": 120, "output_tokens": 30}
            # every replay was answered from the record: one model call each
            assert len(fake.requests) == 4

            mid = await machine(c)
            fake.reply(anthropic_message(tool_use("bash", {"command": "true"}), usage=(200, 20)),
                       anthropic_message(say("Done."), usage=(300, 25)))
            run = await start(c, machine_id=mid, task="t", cua_version="v3")
            final = await wait_for(c, run["id"])
            assert final["status"] == "succeeded", final["error"]
            assert final["usage"] == {"input_tokens": 500, "output_tokens": 45, **NO_CACHE}

            usage = (await c.get("/v1/usage")).json()
            assert_valid("UsageSummaryResponse", usage)
            breakdown = usage["breakdown"]
            assert breakdown["predict"] == {"requests": 2, "credits": 5, "input_tokens": 120,
                                            "output_tokens": 30, **NO_CACHE}
            assert breakdown["ground"] == {"requests": 3, "credits": 3, "input_tokens": 100,
                                           "output_tokens": 20, **NO_CACHE}
            assert breakdown["sessionPredict"] == {"requests": 2, "credits": 5,
                                                   "input_tokens": 120, "output_tokens": 30,
                                                   **NO_CACHE}
            assert breakdown["runSteps"] == {"requests": 2, "credits": 10, "input_tokens": 500,
                                             "output_tokens": 45, **NO_CACHE}
            assert (usage["input_tokens"], usage["output_tokens"]) == (840, 125)
            assert usage["total_credits"] == 5 + 3 + 5 + 10
            assert usage["balance"] == 1000 - usage["total_credits"]
            # another month has none of it
            other = (await c.get("/v1/usage", params={"period": "2020-01"})).json()
            assert other["breakdown"] == {} and other["input_tokens"] == 0
        test = await server.key(test=True)
        async with server.client(test) as c:
            fake.reply(CLICK)
            first, again = await twice(c, "/v1/predict", {
                "screenshot": SHOT, "instruction": "Click", "cua_version": "v3"}, "p-1",
                "PredictResponse")
            assert first.json()["usage"]["billed"] is False
            assert first.json()["usage"]["credits_charged"] == 0
            assert first.json()["usage"]["input_tokens"] == 120
            usage = (await c.get("/v1/usage")).json()
            assert usage["breakdown"]["predict"] == {"requests": 2, "credits": 0,
                                                     "input_tokens": 120, "output_tokens": 30,
                                                   **NO_CACHE}
