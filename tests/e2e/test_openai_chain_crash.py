"""The OpenAI response chain across a ``kill -9`` of the server.

A run on a terminal machine is driven by the OpenAI brain (the fake of the
Responses API on loopback, holding the responses as OpenAI does). Each step's
request chains from the last recorded step's response (``previous_response_id``)
and sends only the new call outputs. The server is killed while a step's
command runs — that step's response was made but its step never recorded.
After the restart the run goes on from the last recorded step's response,
never from the lost one: resumed when the provider still holds it, rebuilt
from the recorded steps (the whole history, once) when it does not.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from deckhand.client import DeckhandClient
from deckhand.store import steps as steps_store
from deckhand.store.db import Database
from tests.support.crash import kill_sessions_naming, wait_status, wait_steps
from tests.support.deployment import Deployment, free_port
from tests.support.fake_providers import fake_provider, function_call, output_message, responses

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(90)]
STEPS = 5


async def recorded_response_ids(d: Deployment, run_id: str) -> list[str]:
    db = Database(d.url)
    try:
        async with db.read() as conn:
            rows = await steps_store.for_run(conn, run_id)
    finally:
        await db.dispose()
    # the last step answers without a call: it has nothing to continue
    return [r.decision["provider_data"]["response_id"] for r in rows
            if r.decision["provider_data"]]


def is_opening(item: dict[str, Any]) -> bool:
    return item.get("role") == "user" and "Task:" in str(item.get("content"))


@pytest.mark.parametrize("chain", ["resumed", "rebuilt"])
async def test_the_chain_survives_a_kill_9(tmp_path: Path, chain: str) -> None:
    async with fake_provider() as fake:
        d = Deployment(tmp_path / "d", None, secret_prefix="chain-", lease_seconds=2,
                       extra_env={"DECKHAND_BRAIN": "openai",
                                  "DECKHAND_OPENAI_API_KEY": fake.api_key,
                                  "DECKHAND_OPENAI_BASE_URL": fake.openai_url,
                                  "DECKHAND_LLM_MAX_RETRIES": "0"})
        d.tmp.mkdir()
        fake.reply(*(responses(function_call("run_command",
                                             {"command": f"sleep 0.8; echo step-{n}"}))
                     for n in range(STEPS + 1)), responses(output_message("All done.")))
        try:
            key = d.create_key()
            port = free_port()
            server = await d.serve(port)
            async with DeckhandClient(f"http://127.0.0.1:{port}", key, timeout=30) as client:
                mid = (await client.create_machine("chain"))["id"]
                d.machines.append(mid)
                run = await client.create_run(machine_id=mid, task="Run the steps",
                                              cua_version="v3", max_steps=STEPS + 3)
                await wait_steps(client, run["id"], d, 2, timeout=30)
                server.kill9()  # mid-step: its response is made, its step not recorded
                before_kill = len(fake.requests)
                if chain == "rebuilt":
                    fake.forget()  # the provider no longer has any response
                await d.serve(port)
                final = await wait_status(client, run["id"], d, timeout=40)
                assert final["status"] == "succeeded", final
                ids = await recorded_response_ids(d, run["id"])
                await client.delete_machine(mid)
        finally:
            await d.teardown()
            kill_sessions_naming(d.data_dir)

    bodies = [r.body for r in fake.requests]
    assert is_opening(bodies[0]["input"][0]) and "previous_response_id" not in bodies[0]
    # before the kill: every request chained from the one before, history never resent
    for body in bodies[1:before_kill]:
        assert body["previous_response_id"] and not any(is_opening(i) for i in body["input"])
    # the step in flight at the kill made a response nobody recorded
    recorded_before = [i for i in ids if i in {b.get("previous_response_id")
                                               for b in bodies[:before_kill]}]
    after = bodies[before_kill:]
    last_recorded = recorded_before[-1]
    assert after[0]["previous_response_id"] == last_recorded  # never the lost response
    if chain == "resumed":
        chained = after
    else:  # the chain was lost: the request is sent again with the whole history, once
        assert "previous_response_id" not in after[1] and is_opening(after[1]["input"][0])
        calls = [i for i in after[1]["input"] if i.get("type") == "function_call"]
        assert len(calls) == len(recorded_before)
        chained = after[2:]
    for body in chained:
        assert body["previous_response_id"] in ids
        assert not any(is_opening(i) for i in body["input"])
    assert [b.get("previous_response_id") for b in bodies].count(None) \
        == (1 if chain == "resumed" else 2)
