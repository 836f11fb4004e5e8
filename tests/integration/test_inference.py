"""The inference endpoints over real HTTP, through brains talking to a fake
provider: /v1/predict, /v1/sessions*, /v1/ground, /v1/parse, /v1/models —
every answer validated against the contract's schemas."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from tests.support.contract import assert_error, assert_valid
from tests.support.fake_providers import (
    anthropic_message,
    chat,
    computer_call,
    fake_provider,
    llm_server,
    provider_settings,
    responses,
    screenshot,
    text,
    tool_use,
)

pytestmark = pytest.mark.asyncio
SHOT = base64.b64encode(screenshot(2560, 1600)).decode()
SMALL = base64.b64encode(screenshot(1280, 800, fmt="PNG")).decode()


def click_reply(provider: str, x: int, y: int) -> dict:  # type: ignore[type-arg]
    if provider == "anthropic":
        return anthropic_message(text("The button is there."), tool_use(
            "computer", {"action": "left_click", "coordinate": [x, y]}),
            tool_use("computer", {"action": "type", "text": "hello"}))
    if provider == "openai":
        return responses(computer_call(actions=[
            {"type": "click", "button": "left", "x": x, "y": y},
            {"type": "type", "text": "hello"}]))
    return chat("The button is there.", [("click", {"x": x, "y": y}),
                                         ("type_text", {"text": "hello"})])


@pytest.mark.parametrize("provider", ["anthropic", "openai", "openai_compat"])
async def test_predict_per_provider(provider: str, tmp_path: Path, sqlite_url: str) -> None:
    async with fake_provider() as fake, llm_server(
            tmp_path, sqlite_url, **provider_settings(provider, fake)) as server:
        key = await server.key(credits=100)
        async with server.client(key) as c:
            fake.reply(click_reply(provider, 640, 400))
            r = await c.post("/v1/predict", json={"screenshot": SHOT,
                                                  "instruction": "Click Sign In and type hello",
                                                  "cua_version": "v3"})
            assert r.status_code == 200, r.text
            body = r.json()
            assert_valid("PredictResponse", body)
            assert body["status"] == "continue" and body["cua_version"] == "v3"
            assert (body["screen_width"], body["screen_height"]) == (2560, 1600)
            assert body["actions"][0] == {"action_type": "click", "raw_code":
                                          "pyautogui.click(1280, 800)",
                                          "params": {"x": 1280, "y": 800, "button": "left",
                                                     "clicks": 1}}
            assert body["actions"][1]["action_type"] == "type_text"
            assert body["raw_code"] == ["pyautogui.click(1280, 800)", "pyautogui.write('hello')"]
            assert body["usage"]["credits_charged"] == 5 and body["usage"]["billed"] is True
            assert body["usage"]["input_tokens"] > 0
            assert r.headers["x-credits-charged"] == "5"
            assert r.headers["x-credits-remaining"] == "95"

            # the raw code round-trips through /v1/parse
            parsed = await c.post("/v1/parse", json={"code": "\n".join(body["raw_code"])})
            assert_valid("ParseResponse", parsed.json())
            assert parsed.json()["actions"][0]["params"] == body["actions"][0]["params"]

            # asked for coordinates in another screen space, and one action at most
            fake.reply(click_reply(provider, 640, 400))
            r = await c.post("/v1/predict", json={
                "screenshot": SHOT, "instruction": "Click", "screen_width": 1920,
                "screen_height": 1200, "max_actions": 1, "include_raw_code": False,
                "cua_version": "v3", "tools": ["click"]})
            body = r.json()
            assert_valid("PredictResponse", body)
            assert [a["params"] for a in body["actions"]] == [
                {"x": 960, "y": 600, "button": "left", "clicks": 1}]
            assert "raw_code" not in body and "raw_code" not in body["actions"][0]


async def test_predict_done_is_verified_in_v5(tmp_path: Path, sqlite_url: str) -> None:
    async with fake_provider() as fake, llm_server(
            tmp_path, sqlite_url, **provider_settings("anthropic", fake)) as server:
        key = await server.key(test=True)
        async with server.client(key) as c:
            fake.reply(anthropic_message(text("It is signed in.")))
            r = await c.post("/v1/predict", json={"screenshot": SMALL, "instruction": "Sign in"})
            body = r.json()
            assert_valid("PredictResponse", body)
            assert body["status"] == "done"
            assert body["actions"] == [{"action_type": "done",
                                        "params": {"answer": "It is signed in."}}]
            assert body["usage"]["credits_charged"] == 0 and body["usage"]["billed"] is False
            assert body["usage"]["input_tokens"] == 120 + 50  # the verifier's call counts too

            fake.reply(anthropic_message(text("Done.")))
            fake.verdict(False, "The login form is still shown.")
            body = (await c.post("/v1/predict", json={"screenshot": SMALL,
                                                      "instruction": "Sign in"})).json()
            assert body["status"] == "fail"
            assert body["actions"][-1]["params"]["code"] == "VERIFICATION_FAILED"
            assert "login form is still shown" in body["actions"][-1]["params"]["reason"]


async def test_predict_with_byok_headers_and_trajectory(tmp_path: Path, sqlite_url: str) -> None:
    byok = "sk-ant-predict-byok-key-0000000000"
    async with fake_provider(api_key=byok) as fake, llm_server(
            tmp_path, sqlite_url, brain="offline", anthropic_base_url=fake.url) as server:
        key = await server.key()
        async with server.client(key) as c:
            fake.reply(click_reply("anthropic", 10, 10))
            r = await c.post("/v1/predict", headers={"X-LLM-Provider": "anthropic",
                                                     "X-LLM-Api-Key": byok,
                                                     "X-LLM-Model": "claude-opus-x"},
                             json={"screenshot": SMALL, "instruction": "Next", "trajectory": [
                                 {"screenshot": SMALL, "reasoning": "opened the page",
                                  "actions": [{"action_type": "click",
                                               "params": {"x": 5, "y": 6}}]}]})
            assert r.status_code == 200, r.text
            body = r.json()
            assert_valid("PredictResponse", body)
            assert body["llm"]["key_source"] == "header" and byok not in r.text
            sent = fake.requests[0].body
            assert sent["model"] == "claude-opus-x"
            assert "opened the page" in sent["messages"][0]["content"][0]["text"]
            # an unquoted label is not an offline instruction: a clear 422, not a guess
            assert_error(await c.post("/v1/predict", json={"screenshot": SMALL,
                                                           "instruction": "Click Sign In"}),
                         422, "OFFLINE_BRAIN_UNSUPPORTED")
            assert_error(await c.post("/v1/predict", json={"screenshot": "A" * 200,
                                                           "instruction": "x"}),
                         422, "INVALID_SCREENSHOT")
            assert_error(await c.post("/v1/predict", json={"screenshot": "not base64!" * 20,
                                                           "instruction": "x"}),
                         422, "VALIDATION_ERROR")


async def test_sessions(tmp_path: Path, database_url: str) -> None:
    async with fake_provider() as fake, llm_server(
            tmp_path, database_url, **provider_settings("openai_compat", fake)) as server:
        key = await server.key()
        async with server.client(key) as c:
            r = await c.post("/v1/sessions", json={"cua_version": "v3", "screen_width": 2560,
                                                   "screen_height": 1600,
                                                   "max_trajectory_length": 2,
                                                   "metadata": {"team": "qa"}})
            assert r.status_code == 200, r.text
            created = r.json()
            assert_valid("CreateSessionResponse", created)
            sid = created["session_id"]
            assert created["screen_size"] == "2560x1600"

            for n in range(1, 5):
                fake.reply(chat(f"step {n}", [("click", {"x": 640, "y": 400})]))
                r = await c.post(f"/v1/sessions/{sid}/predict",
                                 json={"screenshot": SMALL, "instruction": f"do {n}"})
                assert r.status_code == 200, r.text
                body = r.json()
                assert_valid("SessionPredictResponse", body)
                assert body["step"] == n and body["session_id"] == sid
                # the session's screen space: 1280×800 image, 2560×1600 coordinates
                assert body["actions"][0]["params"]["x"] == 1280
            # the trajectory the server kept (the last 2 steps) went to the model
            fourth = fake.agent_bodies()[-1]["messages"][1]["content"]
            assert "'do 2'" in fourth and "'do 3'" in fourth and "'do 1'" not in fourth

            info = (await c.get(f"/v1/sessions/{sid}")).json()
            assert_valid("SessionInfoResponse", info)
            assert info["step_count"] == 4 and info["total_credits_used"] == 20
            listed = (await c.get("/v1/sessions")).json()
            assert [s["session_id"] for s in listed["sessions"]] == [sid]
            for s in listed["sessions"]:
                assert_valid("SessionInfoResponse", s)

            r = await c.post(f"/v1/sessions/{sid}/reset")
            assert_valid("SessionMutationResponse", r.json())
            assert (await c.get(f"/v1/sessions/{sid}")).json()["step_count"] == 0
            r = await c.delete(f"/v1/sessions/{sid}")
            assert_valid("SessionMutationResponse", r.json())
            assert r.json() == {"status": "ok", "session_id": sid}
            assert_error(await c.get(f"/v1/sessions/{sid}"), 404, "SESSION_NOT_FOUND")
            assert_error(await c.post(f"/v1/sessions/{sid}/predict",
                                      json={"screenshot": SMALL, "instruction": "x"}),
                         404, "SESSION_NOT_FOUND")
        other = await server.key(account="other")
        async with server.client(other) as c:
            assert (await c.get("/v1/sessions")).json() == {"sessions": []}


async def test_ground_parse_models(tmp_path: Path, sqlite_url: str) -> None:
    async with fake_provider() as fake, llm_server(
            tmp_path, sqlite_url, **provider_settings("openai", fake)) as server:
        key = await server.key()
        async with server.client(key) as c:
            fake.points.append((320, 200))
            r = await c.post("/v1/ground", json={"screenshot": SHOT, "element": "Save button"})
            assert r.status_code == 200, r.text
            body = r.json()
            assert_valid("GroundResponse", body)
            assert (body["x"], body["y"]) == (640, 400)
            assert (body["screen_width"], body["screen_height"]) == (2560, 1600)
            assert fake.requests[-1].body["model"] == "gpt-4o"
            assert_error(await c.post("/v1/ground", json={"screenshot": SHOT,
                                                          "element": "a unicorn"}),
                         404, "NOT_FOUND")

            r = await c.post("/v1/parse", json={"code": "pyautogui.click(1, 2)"})
            assert_valid("ParseResponse", r.json())
            error = assert_error(await c.post("/v1/parse", json={"code": "import os"}),
                                 422, "VALIDATION_ERROR")
            assert "import os is not supported" in error["message"]

            models = (await c.get("/v1/models")).json()
            assert_valid("ModelsResponse", models)
            assert [v["id"] for v in models["cua_versions"]] == ["v1", "v3", "v4", "v5"]
            assert [v["id"] for v in models["cua_versions"] if v["latest"]] == ["v5"]
            default = [m for m in models["models"] if m["default"]]
            assert len(default) == 1 and default[0]["brain"] == "openai"
            assert set(models["action_types"]) >= {"click", "type_text", "done", "fail"}
        narrow = await server.key(scopes=("runs:read",))
        async with server.client(narrow) as c:
            assert (await c.get("/v1/models")).status_code == 200  # no scope needed
            assert_error(await c.post("/v1/parse", json={"code": "x"}), 403,
                         "INSUFFICIENT_SCOPE")
