"""POST /v1/predict and /v1/sessions/{id}/predict as Server-Sent Events
(``Accept: text/event-stream``): keep-alives while the model works, then one
``result`` event (or one ``error`` event with the envelope); idempotent
replays of a streamed call."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from deckhand.api import result_stream
from tests.support.contract import assert_error, assert_valid
from tests.support.fake_providers import (
    anthropic_message,
    fake_provider,
    llm_server,
    provider_settings,
    screenshot,
    tool_use,
)

pytestmark = pytest.mark.asyncio
SHOT = base64.b64encode(screenshot(1280, 800, fmt="PNG")).decode()
SSE = {"Accept": "text/event-stream"}
CLICK = anthropic_message(tool_use("computer", {"action": "left_click", "coordinate": [5, 6]}))
PREDICT = {"screenshot": SHOT, "instruction": "Click", "cua_version": "v3"}


def frames(r: httpx.Response) -> list[tuple[str, Any]]:
    """(event, data) per frame; comments as ("comment", text)."""
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/event-stream")
    out: list[tuple[str, Any]] = []
    for block in r.text.split("\n\n"):
        if not block:
            continue
        if block.startswith(":"):
            out.append(("comment", block[1:].strip()))
            continue
        fields = dict(line.split(": ", 1) for line in block.split("\n"))
        out.append((fields["event"], json.loads(fields["data"])))
    return out


async def test_predict_streams_keepalives_then_the_result(
        tmp_path: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(result_stream, "KEEPALIVE_SECONDS", 0.05)
    async with fake_provider() as fake, llm_server(
            tmp_path, sqlite_url, **provider_settings("anthropic", fake)) as server:
        key = await server.key(credits=100)
        async with server.client(key) as c:
            fake.reply(CLICK)
            fake.delay = 0.4
            stream = frames(await c.post("/v1/predict", json=PREDICT, headers=SSE))
            fake.delay = 0.0
            *waiting, (name, result) = stream
            assert len(waiting) >= 2 and {w for w, _ in waiting} == {"comment"}
            assert name == "result"
            assert_valid("PredictResponse", result)
            assert result["actions"][0]["action_type"] == "click"
            assert result["usage"]["credits_charged"] == 5 and result["usage"]["billed"]

            # a bad request is refused before the stream opens, as without it
            assert_error(await c.post("/v1/predict", headers=SSE,
                                      json={**PREDICT, "screenshot": "A" * 200}),
                         422, "INVALID_SCREENSHOT")
            # a provider failure after it opened: one error event with the envelope
            fake.fail(400)
            *_, (name, failed) = frames(await c.post("/v1/predict", json=PREDICT, headers=SSE))
            assert name == "error" and failed["error"]["code"] == "LLM_UPSTREAM_ERROR"
            assert failed["error"]["request_id"].startswith("req_")

            # idempotent: the streamed answer is recorded; replays charge nothing,
            # as one event for a stream, as JSON otherwise
            fake.reply(CLICK)
            idem = {**SSE, "Idempotency-Key": "stream-1"}
            *_, (_, first) = frames(await c.post("/v1/predict", json=PREDICT, headers=idem))
            again = await c.post("/v1/predict", json=PREDICT, headers=idem)
            assert again.headers["x-coasty-idempotent-replay"] == "true"
            [(name, replay)] = frames(again)
            unbilled = {**first["usage"], "credits_charged": 0, "cost_cents": 0,
                        "breakdown": None, "billed": False}
            assert name == "result" and replay == {**first, "usage": unbilled}
            plain = await c.post("/v1/predict", json=PREDICT,
                                 headers={"Idempotency-Key": "stream-1"})
            assert plain.json() == {**first, "usage": unbilled}
            assert (await c.get("/v1/usage")).json()["breakdown"]["predict"]["credits"] == 10

            sid = (await c.post("/v1/sessions", json={"cua_version": "v3"})).json()["session_id"]
            fake.reply(CLICK)
            *_, (name, step) = frames(await c.post(f"/v1/sessions/{sid}/predict", headers=SSE,
                                                   json={"screenshot": SHOT,
                                                         "instruction": "Click"}))
            assert name == "result"
            assert_valid("SessionPredictResponse", step)
            assert step["step"] == 1 and step["session_id"] == sid
            assert (await c.get(f"/v1/sessions/{sid}")).json()["step_count"] == 1
