"""API keys over HTTP: create, list, revoke, scopes, live/test separation."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from deckhand.scopes import DEFAULT_SCOPES
from deckhand.store.tables import api_keys
from tests.conftest import LiveServer
from tests.support.contract import assert_error, assert_valid

pytestmark = pytest.mark.asyncio


async def test_create_list_revoke(server: LiveServer) -> None:
    admin = await server.key()
    async with server.client(admin) as c:
        r = await c.post("/v1/keys", json={"name": "ci"})
        assert r.status_code == 200, r.text
        created = r.json()
        assert_valid("APIKeyResponse", created)
        assert created["key"].startswith("sk-dh-live-") and len(created["key"]) == 11 + 64
        assert created["scopes"] == list(DEFAULT_SCOPES)

        listed = (await c.get("/v1/keys")).json()["keys"]
        for item in listed:
            assert_valid("APIKeyListItem", item)
            assert "key" not in item
        mine = next(k for k in listed if k["key_id"] == created["key_id"])
        assert mine["key_prefix"] == created["key"][:16]

    async with server.client(created["key"]) as c:
        # the new key has the default scopes only: no `keys`
        assert_error(await c.get("/v1/keys"), 403, "INSUFFICIENT_SCOPE")

    async with server.client(admin) as c:
        r = await c.delete(f"/v1/keys/{created['key_id']}")
        assert r.status_code == 200
        assert_valid("RevokeAPIKeyResponse", r.json())
        assert_error(await c.delete(f"/v1/keys/{created['key_id']}"), 404, "NOT_FOUND")
    async with server.client(created["key"]) as c:
        assert_error(await c.post("/v1/keys", json={"name": "x"}), 401, "INVALID_API_KEY")


async def test_cannot_grant_scopes_it_lacks(server: LiveServer) -> None:
    key = await server.key(scopes=("keys", "runs:read"))
    async with server.client(key) as c:
        err = assert_error(await c.post("/v1/keys", json={"name": "x", "scopes": ["runs:write"]}),
                           403, "INSUFFICIENT_SCOPE")
        assert "runs:write" in err["message"]
        r = await c.post("/v1/keys", json={"name": "x", "scopes": ["runs:read"]})
        assert r.status_code == 200 and r.json()["scopes"] == ["runs:read"]
        # opt-in scopes are never in the default set
        assert_error(await c.post("/v1/keys", json={"name": "x", "scopes": ["connection:read"]}),
                     403, "INSUFFICIENT_SCOPE")
        assert_error(await c.post("/v1/keys", json={"name": "x", "scopes": ["runs:read"] * 2}),
                     422, "VALIDATION_ERROR")


async def test_test_keys_are_a_separate_world(server: LiveServer) -> None:
    live = await server.key()
    test = await server.key(test=True)
    async with server.client(test) as c:
        r = await c.post("/v1/keys", json={"name": "from-test"})
        assert r.headers["x-coasty-key-kind"] == "test"
        assert r.headers["x-coasty-test-mode"] == "true"
        test_child = r.json()
        assert test_child["key"].startswith("sk-dh-test-")
        test_ids = {k["key_id"] for k in (await c.get("/v1/keys")).json()["keys"]}
    async with server.client(live) as c:
        live_ids = {k["key_id"] for k in (await c.get("/v1/keys")).json()["keys"]}
        assert test_child["key_id"] not in live_ids
        assert_error(await c.delete(f"/v1/keys/{test_child['key_id']}"), 404, "NOT_FOUND")
    assert not (test_ids & live_ids)


async def test_no_key_in_clear_text(server: LiveServer) -> None:
    admin = await server.key()
    async with server.client(admin) as c:
        raws = [(await c.post("/v1/keys", json={"name": f"k{i}"})).json()["key"] for i in range(3)]
    raws.append(admin)
    async with server.services.db.read() as conn:
        rows = (await conn.execute(select(api_keys))).all()
    dump = repr([tuple(r) for r in rows])
    for raw in raws:
        assert raw not in dump
        assert raw[11:] not in dump  # not even the random part
    assert all(len(r.key_hash) == 64 for r in rows)


async def test_usage_counts_requests(server: LiveServer) -> None:
    key = await server.key(credits=500)
    async with server.client(key) as c:
        for _ in range(3):
            await c.get("/v1/keys")
        r = await c.get("/v1/usage")
        assert r.status_code == 200
        body = r.json()
        assert_valid("UsageSummaryResponse", body)
        assert body["breakdown"]["listApiKeys"]["requests"] == 3
        assert body["total_requests"] >= 4 - 1
        assert body["balance"] == 500 and body["wallet_balance_usd"] == 5.0
