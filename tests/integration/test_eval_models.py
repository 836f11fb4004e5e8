"""``deckhand eval --server`` on the model path: two bundled tasks in their
natural phrasing, driven by a model brain whose provider is a fake speaking
its wire protocol (scripted tool calls), on real terminal machines; the
checks read what the commands left, and the table counts the model's tokens."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from deckhand.eval.tasks import BUNDLED
from tests.support.fake_providers import (
    anthropic_message,
    fake_provider,
    function_call,
    llm_server,
    output_message,
    provider_settings,
    responses,
    text,
    tool_use,
)
from tests.support.machine_pages import pages_port

pytestmark = pytest.mark.asyncio
SOURCES = BUNDLED.resolve().parents[2]
TASKS = ["terminal/write-greeting.toml", "terminal/count-errors.toml"]
COMMANDS = ["printf 'Hello, Deckhand!\\n' > hello.txt", "grep -c ' ERROR ' app.log > errors.txt"]
# what one scripted agent reply and the verifier's reply report (input, output)
AGENT_TOKENS = {"anthropic": (120, 30), "openai": (150, 40)}
VERIFIER_TOKENS = (50, 10)


def run_command(provider: str, command: str) -> dict[str, Any]:
    if provider == "anthropic":
        return anthropic_message(text("Running it."), tool_use("bash", {"command": command}))
    return responses(function_call("run_command", {"command": command}))


def finish(provider: str, answer: str) -> dict[str, Any]:
    if provider == "anthropic":
        return anthropic_message(text(answer))
    return responses(output_message(answer))


@pytest.mark.parametrize("provider", ["anthropic", "openai"])
async def test_a_model_brain_passes_two_tasks_through_the_eval(
        provider: str, tmp_path: Path, sqlite_url: str) -> None:
    async with fake_provider() as fake, \
            llm_server(tmp_path, sqlite_url, **provider_settings(provider, fake)) as server:
        key = await server.key()
        for command in COMMANDS:  # one task at a time: the replies come in this order
            fake.reply(run_command(provider, command), finish(provider, "Done."))
        env = {k: v for k, v in os.environ.items() if not k.startswith("DECKHAND_")}
        env.update(PYTHONPATH=str(SOURCES), DECKHAND_DATA_DIR=str(tmp_path / "cli"))
        tasks = [a for t in TASKS for a in ("--tasks", str(BUNDLED / t))]
        # the server runs in this process: wait for the command without blocking it
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "deckhand.cli", "eval", *tasks, "--server", server.url,
            "--key", key, "--site-port", str(pages_port(server)), "--concurrency", "1",
            "--out", str(tmp_path / "report.json"),
            env=env, cwd=tmp_path, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 120)
        assert proc.returncode == 0, out.decode() + err.decode()

    report = json.loads((tmp_path / "report.json").read_text())
    assert report["phrasing"] == "natural" and report["brains"] == [provider]
    assert report["server"] == server.url
    i, o = AGENT_TOKENS[provider]
    for task in report["tasks"]:
        assert task["passed"] and task["status"] == "succeeded", task
        assert task["steps"] == 2
        assert (task["input_tokens"], task["output_tokens"]) == (
            2 * i + VERIFIER_TOKENS[0], 2 * o + VERIFIER_TOKENS[1])
    assert report["totals"]["input_tokens"] == 2 * (2 * i + VERIFIER_TOKENS[0])
    # the model was given the natural phrasing, with the task's words
    first_requests = [b for b in fake.agent_bodies() if "hello.txt" in json.dumps(b)]
    assert first_requests and "Hello, Deckhand!" in json.dumps(first_requests[0])
    assert any("Count the lines whose level is ERROR" in json.dumps(b)
               for b in fake.agent_bodies())
