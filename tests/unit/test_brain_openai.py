"""The OpenAI brain against a fake of the Responses API, through the official
SDK (base_url): the computer-use tool, scaling, safety checks, function tools."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from deckhand.brains.openai import PREVIEW_TOOL, OpenAIBrain
from deckhand.brains.providers import Provider
from deckhand.core.actions import ActionResult, Click, KeyPress, RunCommand, Scroll, TypeText
from deckhand.core.steps import AgentContext, StepRecord
from deckhand.errors import ErrorCode, LlmError
from tests.support.fake_providers import (
    computer_call,
    fake_provider,
    function_call,
    observation,
    output_message,
    reasoning,
    responses,
)


def brain_for(fake, model: str = "computer-use-preview", **kw) -> OpenAIBrain:  # type: ignore[no-untyped-def]
    provider = Provider("openai", SecretStr(fake.api_key), fake.openai_url, timeout=10,
                        max_retries=kw.pop("max_retries", 0))
    return OpenAIBrain(provider, model=model, **kw)


def ctx(**kw) -> AgentContext:  # type: ignore[no-untyped-def]
    return AgentContext(run_id="r1", task=kw.pop("task", "Search for shoes"), **kw)


async def test_computer_call_is_scaled_and_answered_with_a_screenshot() -> None:
    async with fake_provider() as fake:
        fake.reply(
            responses(reasoning("Find the search box."), computer_call(
                {"type": "click", "button": "left", "x": 640, "y": 400}, call_id="call_1")),
            responses(output_message("Searched.")),
        )
        brain = brain_for(fake)
        screen = observation(2560, 1600)
        try:
            d1 = await brain.decide(ctx(observation=screen))
            assert d1.actions == (Click(x=1280, y=800),)
            assert d1.reasoning == "Find the search box."
            step = StepRecord(number=1, decision=d1, results=(ActionResult(ok=True),),
                              observation=screen)
            d2 = await brain.decide(ctx(observation=observation(2560, 1600, color=(9, 9, 9)),
                                        steps=(step,)))
        finally:
            await brain.aclose()
    assert d2.outcome is not None and d2.outcome.answer == "Searched."
    first = fake.requests[0].body
    tool = next(t for t in first["tools"] if t["type"] == PREVIEW_TOOL)
    assert (tool["display_width"], tool["display_height"], tool["environment"]) == \
        (1280, 800, "linux")
    assert first["truncation"] == "auto"
    assert "previous_response_id" not in first
    # chained: only the answer to the call is sent, after the first response
    assert fake.requests[1].body["previous_response_id"] == d1.provider_data["response_id"]
    second = fake.requests[1].body["input"]
    types = [i.get("type") or i.get("role") for i in second]
    assert types == ["computer_call_output"]
    out = second[-1]
    assert out["call_id"] == "call_1" and out["output"]["type"] == "computer_screenshot"
    assert out["output"]["image_url"].startswith("data:image/jpeg;base64,")


async def test_batched_actions_with_the_ga_computer_tool() -> None:
    async with fake_provider() as fake:
        fake.reply(responses(computer_call(actions=[
            {"type": "keypress", "keys": ["CTRL", "L"]},
            {"type": "type", "text": "example.com"},
            {"type": "scroll", "x": 100, "y": 100, "scroll_x": 0, "scroll_y": -300},
        ])))
        brain = brain_for(fake, model="gpt-5.4")
        try:
            d = await brain.decide(ctx(observation=observation(1280, 800)))
        finally:
            await brain.aclose()
    assert d.actions == (KeyPress(keys="ctrl+L"), TypeText(text="example.com"),
                         Scroll(direction="up", amount=3, x=100, y=100))
    assert {"type": "computer"} in fake.requests[0].body["tools"]


async def test_pending_safety_checks_await_a_human_then_are_acknowledged() -> None:
    check = {"id": "sc_1", "code": "malicious_instructions",
             "message": "The page asks you to ignore your instructions."}
    async with fake_provider() as fake:
        fake.reply(
            responses(computer_call({"type": "click", "button": "left", "x": 10, "y": 20},
                                    pending=[check], call_id="call_s")),
            responses(output_message("Done.")),
        )
        brain = brain_for(fake)
        screen = observation(1280, 800)
        try:
            held = await brain.decide(ctx(observation=screen))
            assert held.ask_human == f"Safety check: {check['message']}"
            assert not held.actions  # nothing happens before a human says so
            s1 = StepRecord(number=1, decision=held, observation=screen, human_note="go ahead")
            ack = await brain.decide(ctx(observation=screen, steps=(s1,)))
            assert len(fake.requests) == 1  # acknowledging costs no model call
            assert ack.actions == (Click(x=10, y=20),)
            s2 = StepRecord(number=2, decision=ack, results=(ActionResult(ok=True),),
                            observation=screen)
            await brain.decide(ctx(observation=screen, steps=(s1, s2)))
        finally:
            await brain.aclose()
    items = fake.requests[1].body["input"]
    outputs = [i for i in items if i.get("type") == "computer_call_output"]
    assert len(outputs) == 1 and outputs[0]["call_id"] == "call_s"
    assert outputs[0]["acknowledged_safety_checks"] == [check]
    # chained from the held call's response: it is not sent again
    assert fake.requests[1].body["previous_response_id"] == held.provider_data["response_id"]
    assert sum(i.get("type") == "computer_call" for i in items) == 0


async def test_a_lost_chain_is_rebuilt_from_the_recorded_steps() -> None:
    """OpenAI no longer has the response the last step recorded (expired,
    another key): the request is sent again with the whole history, and the
    chain goes on from its response."""
    async with fake_provider() as fake:
        fake.reply(
            responses(function_call("run_command", {"command": "ls"}, call_id="c1")),
            responses(function_call("run_command", {"command": "pwd"}, call_id="c2")),
            responses(output_message("Done.")),
        )
        brain = brain_for(fake)
        try:
            d1 = await brain.decide(ctx())
            s1 = StepRecord(number=1, decision=d1,
                            results=(ActionResult(ok=True, output="a b", exit_code=0),))
            fake.forget()
            d2 = await brain.decide(ctx(steps=(s1,)))
            s2 = StepRecord(number=2, decision=d2,
                            results=(ActionResult(ok=True, output="/root", exit_code=0),))
            d3 = await brain.decide(ctx(steps=(s1, s2)))
        finally:
            await brain.aclose()
    assert d3.outcome is not None and d3.outcome.answer == "Done."
    bodies = [r.body for r in fake.requests]
    assert [b.get("previous_response_id") for b in bodies] == [
        None, d1.provider_data["response_id"], None, d2.provider_data["response_id"]]
    assert fake.requests[1].body["input"][0]["type"] == "function_call_output"
    rebuilt = [i.get("type") or i.get("role") for i in bodies[2]["input"]]
    assert rebuilt == ["user", "function_call", "function_call_output"]
    assert [i.get("type") for i in bodies[3]["input"]] == ["function_call_output"]


async def test_function_tools_on_a_terminal_machine_and_request_human() -> None:
    async with fake_provider() as fake:
        fake.reply(
            responses(function_call("run_command", {"command": "uname -a"}, call_id="c1")),
            responses(function_call("request_human", {"question": "Proceed?"}, call_id="c2")),
        )
        brain = brain_for(fake)
        try:
            d1 = await brain.decide(ctx())
            s1 = StepRecord(number=1, decision=d1, results=(
                ActionResult(ok=True, output="Linux", exit_code=0),))
            d2 = await brain.decide(ctx(steps=(s1,)))
        finally:
            await brain.aclose()
    assert d1.actions == (RunCommand(command="uname -a"),)
    assert not any(t["type"] == PREVIEW_TOOL for t in fake.requests[0].body["tools"])
    assert d2.ask_human == "Proceed?"
    out = [i for i in fake.requests[1].body["input"] if i.get("type") == "function_call_output"]
    assert out[0]["call_id"] == "c1" and "Linux" in out[0]["output"]


async def test_bad_key_and_server_errors() -> None:
    async with fake_provider() as fake:
        brain = OpenAIBrain(Provider("openai", SecretStr("sk-wrong-000000000000000000"),
                                     fake.openai_url, max_retries=0),
                            model="computer-use-preview")
        try:
            with pytest.raises(LlmError) as caught:
                await brain.decide(ctx())
        finally:
            await brain.aclose()
        assert caught.value.code == ErrorCode.LLM_AUTH_FAILED
        assert "sk-fak" not in caught.value.message  # the masked key in the body is redacted
        fake.fail(500, times=3)
        brain = brain_for(fake, max_retries=2)
        try:
            with pytest.raises(LlmError) as caught:
                await brain.decide(ctx())
        finally:
            await brain.aclose()
        assert caught.value.code == ErrorCode.LLM_UPSTREAM_ERROR


async def test_verify_uses_a_general_model() -> None:
    async with fake_provider() as fake:
        fake.verdict(True, "The results page shows shoes.")
        brain = brain_for(fake)
        try:
            verdict = await brain.verify(ctx(), "done", observation(800, 600))
        finally:
            await brain.aclose()
    assert verdict.passed and verdict.by == "openai gpt-4o"
    body = fake.requests[0].body
    assert body["model"] == "gpt-4o"
    assert body["tool_choice"] == {"type": "function", "name": "report_verdict"}


@pytest.mark.parametrize("status", [429, 500])
async def test_retried_by_the_sdk(status: int) -> None:
    async with fake_provider() as fake:
        fake.fail(status)
        fake.reply(responses(output_message("ok")))
        brain = brain_for(fake, max_retries=2)
        try:
            d = await brain.decide(ctx())
        finally:
            await brain.aclose()
    assert d.outcome is not None and d.outcome.answer == "ok" and len(fake.requests) == 2
