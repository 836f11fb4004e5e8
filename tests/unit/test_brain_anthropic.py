"""The Anthropic brain against a fake of the Messages API, through the
official SDK (base_url): tools, scaling, the rebuilt conversation, errors."""

from __future__ import annotations

import base64
import io
import logging

import pytest
from PIL import Image
from pydantic import SecretStr

from deckhand.brains.anthropic import (
    BASH_TOOL,
    COMPUTER_BETA,
    COMPUTER_TOOL,
    EDITOR_NAME,
    EDITOR_TOOL,
    AnthropicBrain,
)
from deckhand.brains.providers import Provider
from deckhand.core.actions import ActionResult, Click, ReadFile, RunCommand, TypeText, WriteFile
from deckhand.core.steps import AgentContext, StepRecord
from deckhand.errors import ErrorCode, LlmError
from tests.support.fake_providers import (
    anthropic_message,
    fake_provider,
    observation,
    text,
    tool_use,
)


def brain_for(fake, **kw) -> AnthropicBrain:  # type: ignore[no-untyped-def]
    provider = Provider("anthropic", SecretStr(fake.api_key), fake.anthropic_url, timeout=10,
                        max_retries=kw.pop("max_retries", 0))
    return AnthropicBrain(provider, model="claude-test", **kw)


def ctx(**kw) -> AgentContext:  # type: ignore[no-untyped-def]
    return AgentContext(run_id="r1", task=kw.pop("task", "Open the settings"), **kw)


async def test_click_is_scaled_to_the_real_screen_and_tools_are_pinned() -> None:
    async with fake_provider() as fake:
        fake.reply(anthropic_message(text("Clicking Settings."), tool_use(
            "computer", {"action": "left_click", "coordinate": [640, 400]})))
        brain = brain_for(fake)
        try:
            d = await brain.decide(ctx(observation=observation(2560, 1600)))
        finally:
            await brain.aclose()
    assert d.actions == (Click(x=1280, y=800),)
    assert d.text == "Clicking Settings." and d.usage.input_tokens == 120
    req = fake.requests[0]
    assert req.path == "/v1/messages"
    assert COMPUTER_BETA in req.headers["anthropic-beta"]
    tools = {t["name"]: t for t in req.body["tools"]}
    assert tools["computer"]["type"] == COMPUTER_TOOL
    assert (tools["computer"]["display_width_px"], tools["computer"]["display_height_px"]) == \
        (1280, 800)
    assert tools["bash"]["type"] == BASH_TOOL and tools[EDITOR_NAME]["type"] == EDITOR_TOOL
    assert "request_human" in tools
    # the model saw the screen at the size it was told
    image = req.body["messages"][0]["content"][-1]
    data = base64.b64decode(image["source"]["data"])
    assert Image.open(io.BytesIO(data)).size == (1280, 800)


async def test_odd_resolution_scales_both_axes() -> None:
    async with fake_provider() as fake:
        fake.reply(anthropic_message(tool_use("computer", {"action": "double_click",
                                                           "coordinate": [100, 200]})))
        brain = brain_for(fake)
        try:
            d = await brain.decide(ctx(observation=observation(1920, 1080)))
        finally:
            await brain.aclose()
    # 1920×1080 fits 1280×720: a factor of 1.5 both ways
    assert d.actions == (Click(x=150, y=300, count=2),)
    tool = next(t for t in fake.requests[0].body["tools"] if t["name"] == "computer")
    assert (tool["display_width_px"], tool["display_height_px"]) == (1280, 720)


async def test_terminal_tools_and_the_conversation_rebuilt_from_steps() -> None:
    async with fake_provider() as fake:
        fake.reply(
            anthropic_message(tool_use("bash", {"command": "echo hi"}, id="toolu_a"),
                              tool_use(EDITOR_NAME, {"command": "create", "path": "/tmp/x",
                                                     "file_text": "abc"}, id="toolu_b")),
            anthropic_message(tool_use(EDITOR_NAME, {"command": "view", "path": "/tmp/x"},
                                       id="toolu_c")),
            anthropic_message(text("All done: hi")),
        )
        brain = brain_for(fake)
        try:
            context = ctx(task="say hi")
            d1 = await brain.decide(context)
            assert d1.actions == (RunCommand(command="echo hi"),
                                  WriteFile(path="/tmp/x", content="abc"))
            assert not any(t["name"] == "computer" for t in fake.requests[0].body["tools"])
            s1 = StepRecord(number=1, decision=d1, results=(
                ActionResult(ok=True, output="hi\n", exit_code=0), ActionResult(ok=True)))
            d2 = await brain.decide(context.model_copy(update={"steps": (s1,)}))
            assert d2.actions == (ReadFile(path="/tmp/x"),)
            s2 = StepRecord(number=2, decision=d2, results=(
                ActionResult(ok=True, output="abc"),))
            d3 = await brain.decide(context.model_copy(update={"steps": (s1, s2)}))
        finally:
            await brain.aclose()
    assert d3.outcome is not None and d3.outcome.success and d3.outcome.answer == "All done: hi"
    msgs = fake.requests[2].body["messages"]
    assert [m["role"] for m in msgs] == ["user", "assistant", "user", "assistant", "user"]
    results = msgs[2]["content"]
    assert [r["tool_use_id"] for r in results] == ["toolu_a", "toolu_b"]
    assert "exit code 0" in results[0]["content"][0]["text"]
    assert "hi" in results[0]["content"][0]["text"]
    view = msgs[4]["content"][0]
    assert view["tool_use_id"] == "toolu_c" and view["content"][0]["text"] == "     1\tabc"


async def test_str_replace_runs_a_python_edit_in_the_terminal(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import subprocess

    target = tmp_path / "f.txt"
    target.write_text("hello world\n")
    async with fake_provider() as fake:
        fake.reply(anthropic_message(tool_use(EDITOR_NAME, {
            "command": "str_replace", "path": str(target), "old_str": "world",
            "new_str": "deck 'hand'"})))
        brain = brain_for(fake)
        try:
            d = await brain.decide(ctx())
        finally:
            await brain.aclose()
    (command,) = d.actions
    assert isinstance(command, RunCommand)
    out = subprocess.run(["bash", "-c", command.command], capture_output=True, text=True,  # noqa: ASYNC221
                         check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    assert target.read_text() == "hello deck 'hand'\n"


async def test_request_human_and_its_answer() -> None:
    async with fake_provider() as fake:
        fake.reply(anthropic_message(tool_use("request_human", {"question": "Which account?"},
                                              id="toolu_h")),
                   anthropic_message(text("ok")))
        brain = brain_for(fake)
        try:
            d = await brain.decide(ctx())
            assert d.ask_human == "Which account?" and not d.actions
            step = StepRecord(number=1, decision=d, human_note="Use the blue one")
            await brain.decide(ctx(steps=(step,)))
        finally:
            await brain.aclose()
    result = fake.requests[1].body["messages"][2]["content"][0]
    assert result["tool_use_id"] == "toolu_h"
    assert "Use the blue one" in result["content"][0]["text"]


async def test_v1_asks_for_one_tool_call_and_performs_one_action() -> None:
    async with fake_provider() as fake:
        fake.reply(anthropic_message(
            tool_use("computer", {"action": "left_click", "coordinate": [10, 10]}),
            tool_use("computer", {"action": "type", "text": "hi"})))
        brain = brain_for(fake)
        try:
            d = await brain.decide(ctx(cua_version="v1", observation=observation(1280, 800)))
        finally:
            await brain.aclose()
    assert fake.requests[0].body["tool_choice"] == {"type": "auto",
                                                    "disable_parallel_tool_use": True}
    assert d.actions == (Click(x=10, y=10),)
    assert "one action per step" in d.provider_data["calls"][1]["error"]


async def test_v3_performs_several_actions() -> None:
    async with fake_provider() as fake:
        fake.reply(anthropic_message(
            tool_use("computer", {"action": "left_click", "coordinate": [10, 10]}),
            tool_use("computer", {"action": "type", "text": "hi"})))
        brain = brain_for(fake)
        try:
            d = await brain.decide(ctx(cua_version="v3", observation=observation(1280, 800)))
        finally:
            await brain.aclose()
    assert d.actions == (Click(x=10, y=10), TypeText(text="hi"))


async def test_bad_key_is_llm_auth_failed_and_never_logged(caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.DEBUG)
    async with fake_provider() as fake:
        brain = AnthropicBrain(Provider("anthropic", SecretStr("sk-ant-wrong-key-000000000000"),
                                        fake.anthropic_url, max_retries=0), model="m")
        try:
            with pytest.raises(LlmError) as caught:
                await brain.decide(ctx())
        finally:
            await brain.aclose()
    assert caught.value.code == ErrorCode.LLM_AUTH_FAILED
    assert "sk-ant-wrong-key" not in caught.value.message
    assert "sk-ant-wrong-key" not in caplog.text


@pytest.mark.parametrize("status", [429, 529])
async def test_retries_on_429_and_529(status: int) -> None:
    async with fake_provider() as fake:
        fake.fail(status)
        fake.reply(anthropic_message(text("done")))
        brain = brain_for(fake, max_retries=2)
        try:
            d = await brain.decide(ctx())
        finally:
            await brain.aclose()
    assert d.outcome is not None and d.outcome.success
    assert len(fake.requests) == 2


async def test_rate_limit_after_retries_is_llm_provider_rate_limited() -> None:
    async with fake_provider() as fake:
        fake.fail(429, times=3)
        brain = brain_for(fake, max_retries=2)
        try:
            with pytest.raises(LlmError) as caught:
                await brain.decide(ctx())
        finally:
            await brain.aclose()
    assert caught.value.code == ErrorCode.LLM_PROVIDER_RATE_LIMITED
    assert len(fake.requests) == 3


async def test_verify_and_ground() -> None:
    async with fake_provider() as fake:
        fake.verdict(False, "The settings page is not open.")
        fake.points.append((320, 200))
        brain = brain_for(fake)
        try:
            verdict = await brain.verify(ctx(), "I opened it", observation(2560, 1600))
            found = await brain.ground(observation(2560, 1600), "the Save button")
        finally:
            await brain.aclose()
    assert not verdict.passed and verdict.reason == "The settings page is not open."
    assert verdict.usage.input_tokens == 50
    v_req = fake.requests[0].body
    assert v_req["tool_choice"] == {"type": "tool", "name": "report_verdict"}
    assert any(b["type"] == "image" for b in v_req["messages"][0]["content"])
    assert (found.found, found.x, found.y) == (True, 640, 400)


def _marked(messages: list[dict]) -> list[tuple[int, int]]:  # type: ignore[type-arg]
    return [(m, b) for m, message in enumerate(messages)
            for b, block in enumerate(message["content"]) if "cache_control" in block]


def test_breakpoints_within_the_limit_and_a_hint_after_the_last() -> None:
    """At most three in the messages (the system prompt has the fourth) for any
    length of history; a recovery hint comes after the last one, so the next
    request, which has no hint, repeats the prefix up to it."""
    from deckhand.brains.anthropic import messages_for, system_blocks
    from deckhand.core.steps import Decision
    from tests.support.fake_providers import observation

    screens = [observation(64, 40, color=(i, 0, 0)) for i in range(41)]
    steps: list[StepRecord] = []
    for n in range(1, 41):
        call = {"id": f"t{n}", "name": "computer", "actions": [0, 1]}
        d = Decision(actions=(Click(x=n, y=n),), provider_data={
            "content": [{"type": "tool_use", "id": f"t{n}", "name": "computer",
                         "input": {"action": "left_click", "coordinate": [n, n]}}],
            "calls": [call]})
        steps.append(StepRecord(number=n, decision=d, results=(ActionResult(ok=True),),
                                observation=screens[n - 1]))
    for n in range(0, 41):
        context = AgentContext(run_id="r", task="t", steps=tuple(steps[:n]),
                               observation=screens[n])
        messages = messages_for(context)
        assert 1 <= len(_marked(messages)) <= 3
        assert "cache_control" in system_blocks(context)[-1]
        hinted = messages_for(context.model_copy(update={"hint": "re-plan"}))
        last = hinted[-1]["content"]
        assert last[-1] == {"type": "text", "text": "Note: re-plan"}
        assert "cache_control" in last[-2] and _marked(hinted) == _marked(messages)
