"""Whose key a brain uses (engine/llm_credentials.py): a header key is sealed
into the choice and only its fingerprint shown; a stored key is opened from
the store (live mode only); a sealed snapshot is opened for the brain; no key
is LLM_KEY_NOT_CONFIGURED; without BYOK the server's brain is chosen."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from deckhand import crypto
from deckhand.brains.anthropic import AnthropicBrain
from deckhand.brains.openai import OpenAIBrain
from deckhand.brains.resolve import BrainResolver, LlmRequest
from deckhand.brains.scripted import ScriptedBrain
from deckhand.config import Settings
from deckhand.engine.llm_credentials import LlmCredentials
from deckhand.errors import ErrorCode, ValidationFailed
from deckhand.store import accounts as accounts_store
from deckhand.store import llm_keys as llm_keys_store
from deckhand.store.db import Database

SECRET = b"s" * 32
HEADER_KEY = "sk-ant-header-key-0123456789"
STORED_KEY = "sk-proj-stored-key-0123456789"
CLEAR = {"anthropic_api_key": None, "openai_api_key": None, "openai_base_url": None,
         "anthropic_base_url": None}


def credentials(**kw: object) -> LlmCredentials:
    return LlmCredentials(BrainResolver(Settings(**{**CLEAR, **kw})), SECRET)  # type: ignore[arg-type]


@pytest.fixture
def db(sqlite_db: Database) -> Database:
    return sqlite_db


async def test_a_header_key_is_sealed_and_only_its_fingerprint_shown(db: Database) -> None:
    creds = credentials()
    llm = LlmRequest(provider="anthropic", api_key=HEADER_KEY, grounding_model="claude-g")
    async with db.read() as conn:
        choice = await creds.choose(conn, account_id="acct", mode="live", model=None, llm=llm)
    assert (choice.brain, choice.model) == ("anthropic", "claude-sonnet-4-6")
    assert choice.llm == {"provider": "anthropic", "model": "claude-sonnet-4-6",
                          "key_fingerprint": crypto.fingerprint(HEADER_KEY),
                          "key_source": "header", "key_scrubbed": False,
                          "grounding_model": "claude-g"}
    assert choice.sealed_key is not None and HEADER_KEY not in choice.sealed_key
    assert llm_keys_store.open_key(SECRET, choice.sealed_key) == HEADER_KEY
    assert HEADER_KEY not in repr(choice)
    brain = creds.for_choice(choice)
    try:
        assert isinstance(brain, AnthropicBrain)
        assert brain.provider.api_key.get_secret_value() == HEADER_KEY
        assert brain.grounding_model == "claude-g"
        assert HEADER_KEY not in repr(brain.provider)
    finally:
        await brain.aclose()


async def test_a_stored_key_is_used_in_live_mode_only(db: Database) -> None:
    creds = credentials()
    async with db.write() as conn:
        account = await accounts_store.create(conn, "byok")
        await llm_keys_store.put(conn, secret=SECRET, account_id=account.id, provider="openai",
                                 key=STORED_KEY)
    llm = LlmRequest(provider="openai", model="computer-use-preview")
    async with db.read() as conn:
        choice = await creds.choose(conn, account_id=account.id, mode="live", model=None,
                                    llm=llm)
        assert choice.llm is not None and choice.llm["key_source"] == "stored"
        with pytest.raises(ValidationFailed) as caught:
            await creds.choose(conn, account_id=account.id, mode="test", model=None, llm=llm)
    assert caught.value.code == ErrorCode.LLM_KEY_NOT_CONFIGURED
    assert "test keys use only X-LLM-Api-Key" in caught.value.message
    brain = creds.for_choice(choice)
    try:
        assert isinstance(brain, OpenAIBrain)
        assert brain.provider.api_key.get_secret_value() == STORED_KEY
    finally:
        await brain.aclose()


async def test_no_key_is_not_configured_and_never_falls_back(db: Database) -> None:
    creds = credentials(anthropic_api_key="sk-ant-server-key-0123456789")
    async with db.read() as conn:
        with pytest.raises(ValidationFailed) as caught:
            await creds.choose(conn, account_id="nobody", mode="live", model=None,
                               llm=LlmRequest(provider="anthropic"))
    assert caught.value.code == ErrorCode.LLM_KEY_NOT_CONFIGURED
    assert "does not fall back" in caught.value.message


async def test_an_inherited_sealed_key_keeps_its_source(db: Database) -> None:
    creds = credentials()
    sealed = llm_keys_store.seal(SECRET, STORED_KEY)
    llm = LlmRequest.inherited({"provider": "openai", "model": "m", "key_source": "stored"},
                               sealed)
    async with db.read() as conn:
        choice = await creds.choose(conn, account_id="a", mode="live", model=None, llm=llm)
    assert choice.sealed_key == sealed
    assert choice.llm is not None and choice.llm["key_source"] == "stored"
    assert choice.llm["key_fingerprint"] == crypto.fingerprint(STORED_KEY)


async def test_without_byok_the_server_brain_is_chosen_and_built(db: Database) -> None:
    creds = credentials(anthropic_api_key="sk-ant-server-key-0123456789")
    async with db.read() as conn:
        scripted = await creds.choose(conn, account_id="a", mode="live", model="scripted",
                                      llm=None)
        managed = await creds.choose(conn, account_id="a", mode="live", model=None, llm=None)
        with pytest.raises(ValidationFailed) as caught:
            await creds.choose(conn, account_id="a", mode="live", model="openai", llm=None)
    assert (scripted.brain, scripted.llm, scripted.sealed_key) == ("scripted", None, None)
    assert (managed.brain, managed.model) == ("anthropic", creds.default_model("anthropic"))
    assert managed.model is not None
    assert caught.value.code == ErrorCode.LLM_KEY_NOT_CONFIGURED
    assert isinstance(creds.for_choice(scripted, '{"script": []}'), ScriptedBrain)
    brain = creds.for_choice(managed)
    try:
        assert isinstance(brain, AnthropicBrain)
        assert brain.provider.api_key == SecretStr("sk-ant-server-key-0123456789")
    finally:
        await brain.aclose()
