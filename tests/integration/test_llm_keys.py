"""PUT/GET/DELETE /v1/llm/keys/{provider}: sealed at rest, only a fingerprint
ever shown, live keys only."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from deckhand import crypto
from deckhand.store import llm_keys as llm_keys_store
from deckhand.store.tables import llm_keys
from tests.support.contract import assert_error, assert_valid
from tests.support.fake_providers import llm_server

pytestmark = pytest.mark.asyncio
ANTHROPIC_KEY = "sk-ant-api03-stored-key-0123456789"
OPENAI_KEY = "sk-proj-stored-openai-key-0123456789"


async def test_store_list_replace_delete(tmp_path: Path, database_url: str) -> None:
    async with llm_server(tmp_path, database_url) as server:
        key = await server.key()
        async with server.client(key) as c:
            r = await c.put("/v1/llm/keys/anthropic", json={"api_key": ANTHROPIC_KEY})
            assert r.status_code == 200, r.text
            stored = r.json()
            assert_valid("StoreLlmKeyResponse", stored)
            assert stored["provider"] == "anthropic" and stored["stored"] is True
            assert stored["key_fingerprint"] == crypto.fingerprint(ANTHROPIC_KEY)
            assert ANTHROPIC_KEY not in r.text

            await c.put("/v1/llm/keys/openai", json={"api_key": OPENAI_KEY})
            listed = (await c.get("/v1/llm/keys")).json()
            assert_valid("ListLlmKeysResponse", listed)
            assert [k["provider"] for k in listed["keys"]] == ["anthropic", "openai"]
            assert ANTHROPIC_KEY not in str(listed) and OPENAI_KEY not in str(listed)

            replaced = (await c.put("/v1/llm/keys/anthropic",
                                    json={"api_key": ANTHROPIC_KEY + "-v2"})).json()
            assert replaced["key_fingerprint"] == crypto.fingerprint(ANTHROPIC_KEY + "-v2")
            assert replaced["created_at"] == stored["created_at"]

            # sealed at rest; the server secret opens it
            async with server.services.db.read() as conn:
                rows = (await conn.execute(select(llm_keys))).all()
            assert len(rows) == 2
            for row in rows:
                assert ANTHROPIC_KEY not in row.key_sealed and OPENAI_KEY not in row.key_sealed
            anthropic_row = next(r for r in rows if r.provider == "anthropic")
            assert llm_keys_store.open_key(server.services.secret, anthropic_row.key_sealed) \
                == ANTHROPIC_KEY + "-v2"

            r = await c.delete("/v1/llm/keys/anthropic")
            assert r.status_code == 200 and r.json() == {"deleted": True}
            assert_valid("DeleteLlmKeyResponse", r.json())
            assert_error(await c.delete("/v1/llm/keys/anthropic"), 404, "LLM_KEY_NOT_FOUND")
            listed = (await c.get("/v1/llm/keys")).json()
            assert [k["provider"] for k in listed["keys"]] == ["openai"]


async def test_refusals(tmp_path: Path, sqlite_url: str) -> None:
    async with llm_server(tmp_path, sqlite_url) as server:
        live = await server.key()
        test = await server.key(test=True)
        narrow = await server.key(scopes=("runs:read",))
        async with server.client(live) as c:
            for provider in ("managed", "gemini", "openai_compat"):
                assert_error(await c.put(f"/v1/llm/keys/{provider}",
                                         json={"api_key": ANTHROPIC_KEY}),
                             422, "LLM_PROVIDER_UNSUPPORTED")
            assert_error(await c.put("/v1/llm/keys/openai", json={"api_key": "short"}),
                         422, "VALIDATION_ERROR")
            assert_error(await c.put("/v1/llm/keys/openai",
                                     json={"api_key": OPENAI_KEY, "extra": 1}),
                         422, "VALIDATION_ERROR")
        async with server.client(test) as c:
            assert_error(await c.get("/v1/llm/keys"), 403, "INSUFFICIENT_SCOPE")
            assert_error(await c.put("/v1/llm/keys/openai", json={"api_key": OPENAI_KEY}),
                         403, "INSUFFICIENT_SCOPE")
        async with server.client(narrow) as c:
            assert_error(await c.get("/v1/llm/keys"), 403, "INSUFFICIENT_SCOPE")
        async with server.client() as c:
            assert_error(await c.get("/v1/llm/keys"), 401, "INVALID_API_KEY")
