"""Runs driven by model brains — anthropic, openai, openai_compat — over the
real API, engine and store, each brain talking through its official SDK to a
fake of its provider's wire protocol (scripted replies).

On terminal machines (real machine agents): the shell tools, the verifier of
v4/v5 (pass and fail), v3 without one. On a fake machine with a 2560×1600
screen: the click lands on the right pixel after scaling, v5 recovery, asking
a human and OpenAI's safety checks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from deckhand.core.actions import Click
from deckhand.machines.fake import FakeMachine
from tests.support.contract import assert_valid
from tests.support.fake_providers import (
    anthropic_message,
    chat,
    computer_call,
    fake_provider,
    function_call,
    llm_server,
    output_message,
    provider_settings,
    responses,
    screen_machine_row,
    screen_worker,
    text,
    tool_use,
)
from tests.support.runs import events, machine, start, wait_for

pytestmark = pytest.mark.asyncio
PROVIDERS = ["anthropic", "openai", "openai_compat"]


def run_command(provider: str, command: str) -> dict[str, Any]:
    """The provider's reply that runs ``command`` in the terminal."""
    if provider == "anthropic":
        return anthropic_message(text("Running it."), tool_use("bash", {"command": command}))
    if provider == "openai":
        return responses(function_call("run_command", {"command": command}))
    return chat("Running it.", [("run_command", {"command": command})])


def finish(provider: str, answer: str) -> dict[str, Any]:
    if provider == "anthropic":
        return anthropic_message(text(answer))
    if provider == "openai":
        return responses(output_message(answer))
    return chat(answer)


def click(provider: str, x: int, y: int) -> dict[str, Any]:
    """The provider's reply that clicks (x, y) in the image the model sees."""
    if provider == "anthropic":
        return anthropic_message(tool_use("computer", {"action": "left_click",
                                                       "coordinate": [x, y]}))
    if provider == "openai":
        return responses(computer_call({"type": "click", "button": "left", "x": x, "y": y}))
    return chat(None, [("click", {"x": x, "y": y})])


def tokens(provider: str) -> tuple[int, int]:
    """What one scripted agent reply of the fake reports (input, output)."""
    return {"anthropic": (120, 30), "openai": (150, 40), "openai_compat": (90, 25)}[provider]


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_terminal_runs_with_and_without_verification(
        provider: str, tmp_path: Path, database_url: str) -> None:
    async with fake_provider() as fake, \
            llm_server(tmp_path, database_url, **provider_settings(provider, fake)) as server:
        key = await server.key()
        async with server.client(key) as c:
            mid = await machine(c)

            # v5: shell tool, then done; the verifier (its own model call) passes
            fake.reply(run_command(provider, "echo deck-$((40+2))"),
                       finish(provider, "The output is deck-42."))
            run = await start(c, machine_id=mid, task="Print deck-42")
            final = await wait_for(c, run["id"])
            assert_valid("RunResponse", final)
            assert final["status"] == "succeeded", final["error"]
            assert final["brain"] == provider
            assert final["result"]["answer"] == "The output is deck-42."
            assert final["steps_completed"] == 2
            i, o = tokens(provider)
            assert final["usage"] == {"input_tokens": 2 * i + 50, "output_tokens": 2 * o + 10,
                                      "cache_creation_input_tokens": 0,
                                      "cache_read_input_tokens": 0}
            stream = await events(c, run["id"])
            assert stream[0]["data"]["brain"] == provider and "model" in stream[0]["data"]
            out = [e["data"] for e in stream if e["type"] == "tool_result"]
            assert out[0]["exit_code"] == 0 and "deck-42" in out[0]["output"]
            verdicts = [e["data"] for e in stream if e["type"] == "verification"]
            assert [v["passed"] for v in verdicts] == [True]
            # the second agent request carried the command's output back to the model
            assert "deck-42" in str(fake.agent_bodies()[1])

            # v4: the verifier says no → failed with VERIFICATION_FAILED and its reason
            fake.reply(run_command(provider, "true"), finish(provider, "All done."))
            fake.verdict(False, "Nothing shows that the file was written.")
            run = await start(c, machine_id=mid, task="Write the file", cua_version="v4")
            final = await wait_for(c, run["id"])
            assert final["status"] == "failed"
            assert final["error"]["code"] == "VERIFICATION_FAILED"
            assert "Nothing shows that the file was written." in final["error"]["message"]

            # v3: no verifier call at all
            before = len(fake.requests)
            fake.reply(finish(provider, "Nothing to do."))
            run = await start(c, machine_id=mid, task="Nothing", cua_version="v3")
            final = await wait_for(c, run["id"])
            assert final["status"] == "succeeded"
            assert len(fake.requests) - before == 1


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_click_lands_on_the_real_pixel(provider: str, tmp_path: Path,
                                             sqlite_url: str) -> None:
    screen = FakeMachine(2560, 1600)
    async with fake_provider() as fake, llm_server(
            tmp_path, sqlite_url, workers=0, **provider_settings(provider, fake)) as server:
        key = await server.key()
        mid = await screen_machine_row(server)
        async with server.client(key) as c, screen_worker(server, screen):
            fake.reply(click(provider, 640, 400), finish(provider, "Clicked Save."))
            run = await start(c, machine_id=mid, task="Click Save")
            final = await wait_for(c, run["id"])
            assert final["status"] == "succeeded", final["error"]
            assert screen.actions == [Click(x=1280, y=800)]
            verify_request = fake.requests[-1].body
            assert "data:image/jpeg;base64" in str(verify_request) or \
                "'type': 'image'" in str(verify_request)  # the final screenshot was judged

            fake.reply(click(provider, 100, 50), finish(provider, "Clicked Save."))
            fake.verdict(False, "The dialog is still open.")
            run = await start(c, machine_id=mid, task="Click Save", cua_version="v4")
            final = await wait_for(c, run["id"])
            assert final["status"] == "failed"
            assert final["error"] == {"code": "VERIFICATION_FAILED",
                                      "message": "Verification failed: The dialog is still open."}
            assert screen.actions[-1] == Click(x=200, y=100)


async def test_v5_notices_repeats_that_change_nothing(tmp_path: Path, sqlite_url: str) -> None:
    screen = FakeMachine(1280, 800, frozen=True)
    async with fake_provider() as fake, llm_server(
            tmp_path, sqlite_url, workers=0, **provider_settings("anthropic", fake)) as server:
        key = await server.key()
        mid = await screen_machine_row(server)
        async with server.client(key) as c, screen_worker(server, screen):
            fake.reply(*[click("anthropic", 50, 60)] * 3, finish("anthropic", "Gave up."))
            run = await start(c, machine_id=mid, task="Open the menu", cua_version="v5")
            await wait_for(c, run["id"])
            stream = await events(c, run["id"])
    fourth = fake.agent_bodies()[3]
    last_user = fourth["messages"][-1]["content"]
    assert any("Re-plan" in str(b.get("text", "")) for b in last_user)
    recovery = [e["data"] for e in stream if e["type"] == "recovery"]
    assert len(recovery) == 1 and recovery[0]["step"] == 4
    assert all("Re-plan" not in str(b) for b in fake.agent_bodies()[:3])


async def test_request_human_pauses_and_the_note_reaches_the_model(
        tmp_path: Path, sqlite_url: str) -> None:
    async with fake_provider() as fake, llm_server(
            tmp_path, sqlite_url, **provider_settings("anthropic", fake)) as server:
        key = await server.key()
        async with server.client(key) as c:
            mid = await machine(c)
            fake.reply(anthropic_message(tool_use("request_human",
                                                  {"question": "Which branch?"})),
                       anthropic_message(text("Used main.")))
            run = await start(c, machine_id=mid, task="Deploy")
            paused = await wait_for(c, run["id"], {"awaiting_human"})
            assert paused["awaiting_human_reason"] == "Which branch?"
            r = await c.post(f"/v1/runs/{run['id']}/resume", json={"note": "use main"})
            assert r.status_code == 200, r.text
            final = await wait_for(c, run["id"])
    assert final["status"] == "succeeded"
    answer = fake.agent_bodies()[1]["messages"][2]["content"][0]
    assert answer["type"] == "tool_result" and "use main" in answer["content"][0]["text"]


async def test_openai_safety_check_awaits_a_human_and_is_acknowledged(
        tmp_path: Path, sqlite_url: str) -> None:
    screen = FakeMachine(2560, 1600)
    check = {"id": "sc_9", "code": "irrelevant_domain",
             "message": "The current domain is not related to the task."}
    async with fake_provider() as fake, llm_server(
            tmp_path, sqlite_url, workers=0, **provider_settings("openai", fake)) as server:
        key = await server.key()
        mid = await screen_machine_row(server)
        async with server.client(key) as c, screen_worker(server, screen):
            fake.reply(responses(computer_call({"type": "click", "button": "left", "x": 10,
                                                "y": 10}, pending=[check], call_id="call_x")),
                       responses(output_message("Done.")))
            run = await start(c, machine_id=mid, task="Buy it")
            paused = await wait_for(c, run["id"], {"awaiting_human"})
            assert paused["awaiting_human_reason"] == f"Safety check: {check['message']}"
            assert screen.actions == []
            await c.post(f"/v1/runs/{run['id']}/resume", json={"note": "fine"})
            final = await wait_for(c, run["id"])
    assert final["status"] == "succeeded", final["error"]
    assert screen.actions == [Click(x=20, y=20)]
    second = fake.agent_bodies()[1]["input"]
    out = next(i for i in second if i.get("type") == "computer_call_output")
    assert out["call_id"] == "call_x" and out["acknowledged_safety_checks"] == [check]


async def test_provider_failures_fail_the_run_with_llm_codes(
        tmp_path: Path, sqlite_url: str) -> None:
    async with fake_provider() as fake:
        settings = {**provider_settings("anthropic", fake), "llm_max_retries": 2}
        async with llm_server(tmp_path, sqlite_url, **settings) as server:
            key = await server.key()
            async with server.client(key) as c:
                mid = await machine(c)
                # a 429 and a 529 are retried by the SDK: the run does not notice
                fake.fail(429)
                fake.fail(529)
                fake.reply(finish("anthropic", "ok"))
                run = await start(c, machine_id=mid, task="t", cua_version="v3")
                assert (await wait_for(c, run["id"]))["status"] == "succeeded"
                # past the retries: the run fails with the provider's code
                fake.fail(429, times=3)
                run = await start(c, machine_id=mid, task="t", cua_version="v3")
                final = await wait_for(c, run["id"])
                assert final["status"] == "failed"
                assert final["error"]["code"] == "LLM_PROVIDER_RATE_LIMITED"
        wrong = {**provider_settings("anthropic", fake),
                 "anthropic_api_key": "sk-ant-not-the-right-key-000000"}
        async with llm_server(tmp_path / "b", sqlite_url.replace(".db", "-b.db"),
                              **wrong) as server:
            key = await server.key()
            async with server.client(key) as c:
                mid = await machine(c)
                run = await start(c, machine_id=mid, task="t")
                final = await wait_for(c, run["id"])
    assert final["status"] == "failed" and final["error"]["code"] == "LLM_AUTH_FAILED"
    assert final["steps_completed"] == 0  # no fallback to another brain
