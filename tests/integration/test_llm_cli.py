"""`deckhand run` from the CLI against a fake provider reached through
OPENAI_BASE_URL: with nothing else set it is the OpenAI-compatible brain
(Chat Completions); DECKHAND_BRAIN=openai picks the Responses API."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from tests.support.fake_providers import (
    chat,
    fake_provider,
    function_call,
    output_message,
    responses,
)

pytestmark = pytest.mark.asyncio


async def deckhand_run(tmp_path: Path, task: str, **env: str) -> tuple[int, str]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("DECKHAND_", "ANTHROPIC_", "OPENAI_"))}
    clean.update(DECKHAND_DATA_DIR=str(tmp_path / "var"), **env)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "deckhand.cli", "run", task, env=clean, cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), 120)
    return proc.returncode or 0, out.decode()


async def test_deckhand_run_through_openai_base_url(tmp_path: Path) -> None:
    async with fake_provider() as fake:
        fake.reply(chat("Let me check.", [("run_command", {"command": "echo cli-$((6*7))"})]),
                   chat("It printed cli-42."))
        code, out = await deckhand_run(tmp_path, "Print cli-42",
                                       OPENAI_BASE_URL=fake.openai_url,
                                       OPENAI_API_KEY=fake.api_key)
        assert code == 0, out
        assert "openai_compat brain" in out
        assert "cli-42" in out and "result: succeeded" in out
        assert "answer: It printed cli-42." in out
        assert fake.requests[0].path == "/v1/models"  # no model set: the server's first
        assert fake.bodies("/chat/completions")[0]["model"] == "fake-vision-1"

        fake.reply(responses(function_call("run_command", {"command": "echo via-responses"})),
                   responses(output_message("Done via responses.")))
        code, out = await deckhand_run(tmp_path / "b", "Print it", DECKHAND_BRAIN="openai",
                                       OPENAI_BASE_URL=fake.openai_url,
                                       OPENAI_API_KEY=fake.api_key)
        assert code == 0, out
        assert "openai brain" in out and "via-responses" in out
        assert fake.bodies("/responses")[0]["model"] == "computer-use-preview"
