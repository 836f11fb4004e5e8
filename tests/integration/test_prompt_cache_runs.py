"""Prompt caching through real runs (API, engine, store) with the fake
providers computing the caches as the providers document them
(tests/support/prompt_cache.py): Anthropic's breakpoints within the API's
four and a prefix that request n+1 repeats from request n; the OpenAI-
compatible prefix byte for byte; the cache's tokens in the run, its steps'
events and GET /v1/usage."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from deckhand.brains.history import ScreenBudget, layout, policy_for
from deckhand.machines.fake import FakeMachine
from tests.support.contract import assert_valid
from tests.support.fake_providers import (
    anthropic_message,
    chat,
    fake_provider,
    llm_server,
    provider_settings,
    screen_machine_row,
    screen_worker,
    text,
    tool_use,
)
from tests.support.prompt_cache import AnthropicCache
from tests.support.runs import events, start, wait_for

pytestmark = pytest.mark.asyncio
STEPS = 16
BUDGET = {"anthropic_screens_kept": 2, "openai_compat_screens_kept": 2, "screens_chunk": 3}


def unmarked(blocks: list[Any]) -> list[Any]:
    return [{k: v for k, v in b.items() if k != "cache_control"} if isinstance(b, dict)
            else b for b in blocks]


def images(value: Any) -> int:
    if isinstance(value, dict):
        return (value.get("type") == "image") + sum(images(v) for v in value.values())
    return sum(images(v) for v in value) if isinstance(value, list) else 0


def marks(blocks: list[Any]) -> list[int]:
    return [i for i, b in enumerate(blocks) if isinstance(b, dict) and "cache_control" in b]


async def test_anthropic_breakpoints_and_a_prefix_that_holds(tmp_path: Path,
                                                             sqlite_url: str) -> None:
    screen = FakeMachine(1280, 800)
    async with fake_provider() as fake, llm_server(
            tmp_path, sqlite_url, workers=0, **BUDGET,
            **provider_settings("anthropic", fake)) as server:
        fake.measured = True
        key = await server.key()
        mid = await screen_machine_row(server)
        async with server.client(key) as c, screen_worker(server, screen):
            fake.reply(*(anthropic_message(tool_use("computer", {
                "action": "left_click", "coordinate": [10 + 40 * n, 20 + 30 * n]}))
                for n in range(STEPS)), anthropic_message(text("Done.")))
            run = await start(c, machine_id=mid, task="Click through the pages",
                              cua_version="v3", max_steps=STEPS + 1)
            final = await wait_for(c, run["id"], timeout=60)
            assert final["status"] == "succeeded", final["error"]
            usage = (await c.get("/v1/usage")).json()
            stream = await events(c, run["id"])
            spec = (await c.get("/openapi.json")).json()

    bodies = fake.agent_bodies()
    assert len(bodies) == STEPS + 1
    flat = [AnthropicCache().blocks(b) for b in bodies]
    policy = policy_for("v3", ScreenBudget(2, 3))
    chunks = 0
    for n, (before, now) in enumerate(zip(flat, flat[1:], strict=False), start=1):
        # request n (of n steps) after request n - 1
        assert 2 <= len(marks(now)) <= 4, marks(now)
        assert "cache_control" in bodies[n]["system"][-1]  # tools and system prompt
        chunk = layout(n, policy).image_cut != layout(n - 1, policy).image_cut
        chunks += chunk
        same = [i for i in marks(before) if unmarked(now[:i + 1]) == unmarked(before[:i + 1])]
        if not chunk:  # it repeats the last request up to that one's last breakpoint
            assert same[-1] == marks(before)[-1], (n, same)
            assert fake.usages[n].cache_creation < fake.usages[n].input_tokens / 2
        elif chunks > 1:  # screens dropped: up to where the text part ended still holds
            assert same[-1] == marks(before)[1] and marks(before)[1] in marks(now), (n, same)
        assert fake.usages[n].cache_read > 0
    assert chunks >= 3, "too few chunks of screens dropped: the test shows little"
    # at most keep + chunk - 1 screens (and the start screen before the first chunk)
    assert max(images(blocks) for blocks in flat) <= 2 + 3
    assert min(images(blocks) for blocks in flat[2:]) >= 2

    reads = sum(u.cache_read for u in fake.usages)
    writes = sum(u.cache_creation for u in fake.usages)
    assert reads > 0 and writes > 0
    assert final["usage"]["cache_read_input_tokens"] == reads
    assert final["usage"]["cache_creation_input_tokens"] == writes
    assert final["usage"]["input_tokens"] == sum(u.input_tokens for u in fake.usages)
    per_step = [e["data"]["usage"] for e in stream
                if e["type"] == "step" and e["data"]["status"] == "completed"]
    assert [u["cache_read_input_tokens"] for u in per_step] == [u.cache_read
                                                                 for u in fake.usages]
    assert_valid("UsageSummaryResponse", usage)
    steps = usage["breakdown"]["runSteps"]
    assert (steps["cache_read_input_tokens"], steps["cache_creation_input_tokens"]) \
        == (reads, writes)
    assert usage["cache_read_input_tokens"] == reads
    # our OpenAPI shows the additive fields
    run_usage = spec["paths"]["/v1/runs/{run_id}"]["get"]["responses"]["200"]["content"][
        "application/json"]["schema"]["properties"]["usage"]["properties"]
    for schema in (run_usage, spec["components"]["schemas"]["UsageSummaryResponse"][
            "properties"], spec["components"]["schemas"]["EndpointUsage"]["properties"]):
        assert {"cache_creation_input_tokens", "cache_read_input_tokens"} <= set(schema)


async def test_openai_compatible_requests_repeat_the_last_one(tmp_path: Path,
                                                              sqlite_url: str) -> None:
    screen = FakeMachine(1280, 800)
    async with fake_provider() as fake, llm_server(
            tmp_path, sqlite_url, workers=0, **BUDGET,
            **provider_settings("openai_compat", fake)) as server:
        fake.measured = True
        key = await server.key()
        mid = await screen_machine_row(server)
        async with server.client(key) as c, screen_worker(server, screen):
            fake.reply(*(chat(None, [("click", {"x": 10 + 40 * n, "y": 20 + 30 * n})])
                         for n in range(8)), chat("Done."))
            run = await start(c, machine_id=mid, task="Click through the pages",
                              cua_version="v3", max_steps=9)
            final = await wait_for(c, run["id"], timeout=60)
            assert final["status"] == "succeeded", final["error"]
    bodies = [b["messages"] for b in fake.agent_bodies() if "messages" in b]
    policy = policy_for("v3", ScreenBudget(2, 3))
    for n, (before, now) in enumerate(zip(bodies, bodies[1:], strict=False), start=1):
        if layout(n, policy) == layout(n - 1, policy):
            assert now[:len(before)] == before, n  # byte-stable: a prefix cache reuses it
    assert final["usage"]["cache_read_input_tokens"] == sum(u.cache_read for u in fake.usages)
    assert final["usage"]["cache_read_input_tokens"] > 0
