"""Bring-your-own-key provider keys (the contract's /v1/llm/keys): store,
list, delete. Keys are sealed at rest and never returned; every answer
carries only a fingerprint. Live keys only: a test key can neither read nor
change the account's stored provider keys."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Path
from pydantic import BaseModel, ConfigDict, Field

from deckhand.api.deps import principal, services
from deckhand.api.routing import endpoint, router
from deckhand.auth import Principal
from deckhand.brains.resolve import BYOK_PROVIDERS
from deckhand.core.clock import iso
from deckhand.errors import ErrorCode, NotFound, ScopeError, ValidationFailed
from deckhand.services import Services
from deckhand.store import llm_keys as llm_keys_store

r = router(tags=["keys"])

Svc = Annotated[Services, Depends(services)]
Caller = Annotated[Principal, Depends(principal)]
ProviderParam = Annotated[str, Path(
    max_length=64, description="The BYOK provider: anthropic or openai.")]


class StoreLlmKeyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    api_key: str = Field(min_length=16, max_length=512)


def _live(caller: Principal) -> None:
    if caller.is_test:
        raise ScopeError("Stored provider keys belong to live mode: use a live API key "
                         "(test keys cannot read or change them).")


def _provider(provider: str) -> str:
    if provider not in BYOK_PROVIDERS:
        raise ValidationFailed(
            f"Provider {provider!r} has no storable key; use anthropic or openai.",
            code=ErrorCode.LLM_PROVIDER_UNSUPPORTED)
    return provider


@endpoint(r, "GET", "/v1/llm/keys", operation_id="listLlmKeys", scopes=("llm_keys",))
async def list_llm_keys(svc: Svc, caller: Caller) -> dict[str, Any]:
    _live(caller)
    async with svc.db.read() as conn:
        found = await llm_keys_store.list_for(conn, caller.account_id)
    return {"keys": [{"provider": k.provider, "key_fingerprint": k.key_fingerprint,
                      "created_at": iso(k.created_at), "updated_at": iso(k.updated_at)}
                     for k in found]}


@endpoint(r, "PUT", "/v1/llm/keys/{provider}", operation_id="storeLlmKey",
          scopes=("llm_keys",))
async def store_llm_key(provider: ProviderParam, body: StoreLlmKeyRequest, svc: Svc,
                        caller: Caller) -> dict[str, Any]:
    _live(caller)
    _provider(provider)
    key = body.api_key.strip()
    if len(key) < 16:
        raise ValidationFailed("api_key must be at least 16 characters.")
    async with svc.db.write() as conn:
        stored = await llm_keys_store.put(conn, secret=svc.secret, account_id=caller.account_id,
                                          provider=provider, key=key)
    return {"provider": provider, "key_fingerprint": stored.key_fingerprint, "stored": True,
            "created_at": iso(stored.created_at), "updated_at": iso(stored.updated_at)}


@endpoint(r, "DELETE", "/v1/llm/keys/{provider}", operation_id="deleteLlmKey",
          scopes=("llm_keys",))
async def delete_llm_key(provider: ProviderParam, svc: Svc, caller: Caller) -> dict[str, Any]:
    _live(caller)
    _provider(provider)
    async with svc.db.write() as conn:
        removed = await llm_keys_store.remove(conn, caller.account_id, provider)
    if not removed:
        raise NotFound(f"No {provider} key is stored.", code=ErrorCode.LLM_KEY_NOT_FOUND)
    return {"deleted": True}
