"""The OpenAI-compatible brain against a fake Chat Completions server, through
the official SDK (base_url): function calls, images, scaling, discovery."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from deckhand.brains.openai_compat import OpenAICompatBrain
from deckhand.brains.providers import Provider
from deckhand.core.actions import ActionResult, Click, Drag, KeyPress, RunCommand
from deckhand.core.steps import AgentContext, StepRecord
from deckhand.errors import ErrorCode, LlmError
from tests.support.fake_providers import chat, fake_provider, observation


def brain_for(fake, **kw) -> OpenAICompatBrain:  # type: ignore[no-untyped-def]
    provider = Provider("openai_compat", SecretStr(fake.api_key), fake.openai_url, timeout=10,
                        max_retries=kw.pop("max_retries", 0))
    return OpenAICompatBrain(provider, **kw)


def ctx(**kw) -> AgentContext:  # type: ignore[no-untyped-def]
    return AgentContext(run_id="r1", task=kw.pop("task", "Open the menu"), **kw)


async def test_function_calls_scaled_and_the_first_served_model() -> None:
    async with fake_provider() as fake:
        fake.reply(
            chat("Opening.", [("click", {"x": 640, "y": 400, "button": "right"}),
                              ("key", {"keys": "ctrl+enter"}),
                              ("drag", {"x": 0, "y": 0, "to_x": 1280, "to_y": 800})]),
            chat("The menu is open."),
        )
        brain = brain_for(fake)
        screen = observation(2560, 1600)
        try:
            d1 = await brain.decide(ctx(observation=screen))
            s1 = StepRecord(number=1, decision=d1, results=(ActionResult(ok=True),) * 3,
                            observation=screen)
            d2 = await brain.decide(ctx(observation=screen, steps=(s1,)))
        finally:
            await brain.aclose()
    assert d1.actions == (Click(x=1280, y=800, button="right"), KeyPress(keys="ctrl+Return"),
                          Drag(x=0, y=0, to_x=2559, to_y=1599))
    assert d2.outcome is not None and d2.outcome.answer == "The menu is open."
    assert fake.requests[0].path == "/v1/models"
    first = fake.requests[1].body
    assert first["model"] == "fake-vision-1"
    names = {t["function"]["name"] for t in first["tools"]}
    assert {"click", "type_text", "run_command", "request_human"} <= names
    image = first["messages"][-1]["content"][1]
    assert image["image_url"]["url"].startswith("data:image/jpeg;base64,")
    assert "1280×800" in first["messages"][-1]["content"][0]["text"]
    second = fake.requests[2].body["messages"]
    assert [m["role"] for m in second] == ["system", "user", "user", "assistant", "tool",
                                          "tool", "tool", "user"]
    # byte-stable: the second request repeats the first one's messages
    assert second[:len(first["messages"])] == first["messages"]
    assert second[4]["tool_call_id"] == d1.provider_data["calls"][0]["id"]


async def test_terminal_only_machine_offers_no_screen_functions() -> None:
    async with fake_provider() as fake:
        fake.reply(chat(None, [("run_command", {"command": "ls"})]))
        brain = brain_for(fake, model="qwen2.5-vl")
        try:
            d = await brain.decide(ctx())
        finally:
            await brain.aclose()
    assert d.actions == (RunCommand(command="ls"),)
    body = fake.requests[0].body
    assert body["model"] == "qwen2.5-vl"
    assert "click" not in {t["function"]["name"] for t in body["tools"]}


async def test_v1_sends_no_parallel_tool_calls_and_bad_arguments_are_told() -> None:
    async with fake_provider() as fake:
        fake.reply(chat(None, [("click", {"x": "left"}), ("run_command", {"command": "ls"})]))
        brain = brain_for(fake, model="m")
        try:
            d = await brain.decide(ctx(cua_version="v1", observation=observation(1280, 800)))
        finally:
            await brain.aclose()
    assert fake.requests[0].body["parallel_tool_calls"] is False
    calls = d.provider_data["calls"]
    assert "Invalid arguments" in calls[0]["error"]
    assert d.actions == (RunCommand(command="ls"),)


async def test_bad_key() -> None:
    async with fake_provider() as fake:
        brain = OpenAICompatBrain(Provider("openai_compat", SecretStr("wrong-key-0000000000000"),
                                           fake.openai_url, max_retries=0), model="m")
        try:
            with pytest.raises(LlmError) as caught:
                await brain.decide(ctx())
        finally:
            await brain.aclose()
    assert caught.value.code == ErrorCode.LLM_AUTH_FAILED


async def test_verify_falls_back_to_text_and_ground_scales() -> None:
    async with fake_provider() as fake:
        fake.verdict(False, "No menu visible.")
        fake.points.append((100, 50))
        brain = brain_for(fake, model="m")
        try:
            verdict = await brain.verify(ctx(), "opened", observation(1920, 1080))
            found = await brain.ground(observation(1920, 1080), "the menu")
        finally:
            await brain.aclose()
    assert not verdict.passed and verdict.reason == "No menu visible."
    assert (found.x, found.y) == (150, 75)


async def test_429_is_retried_then_surfaces_as_rate_limited() -> None:
    async with fake_provider() as fake:
        fake.fail(429)
        fake.reply(chat("ok"))
        brain = brain_for(fake, model="m", max_retries=1)
        try:
            assert (await brain.decide(ctx())).outcome is not None
            fake.fail(429, times=2)
            with pytest.raises(LlmError) as caught:
                await brain.decide(ctx())
        finally:
            await brain.aclose()
    assert caught.value.code == ErrorCode.LLM_PROVIDER_RATE_LIMITED
    assert len(fake.requests) == 4
