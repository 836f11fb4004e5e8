"""Every route the app serves refuses a missing key, a wrong key and a key
without the route's scope, with the contract's envelope."""

from __future__ import annotations

import re
import uuid

import pytest

from deckhand.scopes import ALL_SCOPES
from tests.support.contract import assert_error

pytestmark = pytest.mark.asyncio

SAMPLE_PARAMS = {
    "machine_id": "mch_test_0123456789abcdef",
    "run_id": str(uuid.uuid4()),
    "workflow_id": str(uuid.uuid4()),
    "schedule_id": str(uuid.uuid4()),
    "trigger_id": "trg_0123456789abcdef",
    "webhook_id": "whk_0123456789abcdef",
    "session_id": "sess_1",
    "key_id": "key_0123456789abcdef",
    "key": "some-key",
    "provider": "anthropic",
    "op": "read",
}


def operations(openapi: dict) -> list[tuple[str, str, dict]]:  # type: ignore[type-arg]
    out = []
    for path, ops in openapi["paths"].items():
        for method, op in ops.items():
            if method in ("get", "post", "put", "patch", "delete"):
                out.append((method.upper(), path, op))
    return out


def concrete(path: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: SAMPLE_PARAMS.get(m.group(1), "x"), path)


async def test_every_route_checks_key_and_scope(server) -> None:  # type: ignore[no-untyped-def]
    async with server.client() as c:
        openapi = (await c.get("/openapi.json")).json()
    ops = operations(openapi)
    assert len(ops) >= 8
    wrong = "sk-dh-live-" + "0" * 64
    checked = 0
    for method, path, op in ops:
        url = concrete(path)
        if op.get("security") == []:
            async with server.client() as c:
                r = await c.request(method, url)
            assert r.status_code < 400, (method, path, r.text)
            continue
        if op.get("x-auth-mode") == "hmac_sha256":  # a signed webhook: no key, a signature
            async with server.client() as c:
                assert_error(await c.request(method, url, json={}), 401, "INVALID_SIGNATURE")
            async with server.client(wrong) as c:
                assert_error(await c.request(method, url, json={}), 401, "INVALID_SIGNATURE")
            continue
        scopes = op.get("x-required-scopes") or []
        async with server.client() as c:
            assert_error(await c.request(method, url, json={}), 401, "INVALID_API_KEY")
        async with server.client(wrong) as c:
            assert_error(await c.request(method, url, json={}), 401, "INVALID_API_KEY")
        async with server.client(Authorization=f"Bearer {wrong}") as c:
            assert_error(await c.request(method, url, json={}), 401, "INVALID_API_KEY")
        if scopes:
            others = tuple(s for s in ALL_SCOPES if s not in scopes)
            lacking = await server.key(scopes=others)
            async with server.client(lacking) as c:
                err = assert_error(await c.request(method, url, json={}), 403,
                                   "INSUFFICIENT_SCOPE")
            assert any(s in err["message"] for s in scopes)
        checked += 1
    assert checked >= 5


async def test_bearer_and_blank_x_api_key_fall_through(server) -> None:  # type: ignore[no-untyped-def]
    key = await server.key()
    async with server.client() as c:
        r = await c.get("/v1/keys", headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == 200
        r = await c.get("/v1/keys", headers={"X-API-Key": "", "Authorization": f"Bearer {key}"})
        assert r.status_code == 200
        assert r.headers["x-coasty-key-kind"] == "live"
        assert r.headers["x-coasty-test-mode"] == "false"
        r = await c.get("/v1/keys", headers={"Authorization": f"Basic {key}"})
        assert_error(r, 401, "INVALID_API_KEY")
