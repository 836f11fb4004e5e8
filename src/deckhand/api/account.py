"""Keys, usage, idempotency lookup and the health checks (the contract's
``keys`` tag and the health operations)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import Depends, Path, Query
from pydantic import BaseModel, ConfigDict, Field, field_validator

from deckhand import ids
from deckhand.api.deps import principal, services
from deckhand.api.idempotency import lookup_body
from deckhand.api.routing import endpoint, router
from deckhand.auth import Principal
from deckhand.core.clock import iso
from deckhand.errors import NotFound, ScopeError
from deckhand.scopes import ALL_SCOPES, DEFAULT_SCOPES
from deckhand.services import Services
from deckhand.store import accounts as accounts_store
from deckhand.store import idempotency as idem_store
from deckhand.store import keys as keys_store
from deckhand.store import usage as usage_store

r = router()

Scope = Literal[ALL_SCOPES]  # type: ignore[valid-type]


class CreateAPIKeyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100, pattern=r".*\S.*")
    scopes: list[Scope] | None = Field(default=None, max_length=23)  # type: ignore[valid-type]

    @field_validator("scopes", mode="before")
    @classmethod
    def _not_null(cls, v: object) -> object:
        # only an explicit null gets here (defaults are not validated)
        if v is None:
            raise ValueError("scopes must be a list; omit it for the default scopes")
        return v

    @field_validator("scopes")
    @classmethod
    def _unique(cls, v: list[str] | None) -> list[str] | None:
        if v is not None and len(set(v)) != len(v):
            raise ValueError("scopes must not repeat")
        return v


class APIKeyResponse(BaseModel):
    key: str
    key_id: str
    name: str
    tier: str
    scopes: list[str]
    created_at: str


class APIKeyListItem(BaseModel):
    key_id: str
    name: str
    tier: str
    scopes: list[str]
    created_at: str
    last_used_at: str | None
    key_prefix: str


class ListAPIKeysResponse(BaseModel):
    keys: list[APIKeyListItem]


class RevokeAPIKeyResponse(BaseModel):
    status: Literal["ok"] = "ok"
    key_id: str


class EndpointUsage(BaseModel):
    requests: int = 0
    credits: int = 0
    input_tokens: int = Field(default=0, description="Deckhand: model input tokens.")
    output_tokens: int = Field(default=0, description="Deckhand: model output tokens.")
    cache_creation_input_tokens: int = Field(
        default=0, description="Deckhand: the input tokens the provider wrote to its prompt "
        "cache (part of input_tokens).")
    cache_read_input_tokens: int = Field(
        default=0, description="Deckhand: the input tokens read from the provider's prompt "
        "cache (part of input_tokens; OpenAI's cached tokens).")


class UsageSummaryResponse(BaseModel):
    period: str
    total_requests: int = 0
    total_credits: int = 0
    total_cost_cents: int = 0
    input_tokens: int = Field(
        default=0, description="Deckhand: model input tokens of agent steps and inference calls.")
    output_tokens: int = Field(
        default=0, description="Deckhand: model output tokens of agent steps and inference calls.")
    cache_creation_input_tokens: int = Field(
        default=0, description="Deckhand: input tokens written to a provider's prompt cache "
        "(part of input_tokens).")
    cache_read_input_tokens: int = Field(
        default=0, description="Deckhand: input tokens read from a provider's prompt cache "
        "(part of input_tokens; OpenAI's cached tokens).")
    breakdown: dict[str, EndpointUsage] = {}
    balance: int = 0
    wallet_balance_cents: int = 0
    wallet_balance_usd: float = 0
    wallet_unlimited: bool = Field(
        default=False, description="Deckhand: true when the account's wallet has no limit."
    )


class IdempotencyLookupResponse(BaseModel):
    status: Literal["completed", "processing"]
    request_id: str
    result: object | None = None
    original_status: int | None = None


class HealthResponse(BaseModel):
    status: Literal["ok"] = "ok"
    api_version: str = "v1"
    service: str


Svc = Annotated[Services, Depends(services)]
Caller = Annotated[Principal, Depends(principal)]


@endpoint(r, "POST", "/v1/keys", operation_id="createApiKey", scopes=("keys",),
          response_model=APIKeyResponse, tags=["keys"])
async def create_api_key(body: CreateAPIKeyRequest, svc: Svc, caller: Caller) -> APIKeyResponse:
    wanted = tuple(body.scopes) if body.scopes else DEFAULT_SCOPES
    beyond = [s for s in wanted if s not in caller.scopes]
    if beyond:
        raise ScopeError(
            "A key cannot grant scopes its creator lacks: " + ", ".join(beyond)
            + ". Pass `scopes` with a subset of this key's scopes."
        )
    async with svc.db.write() as conn:
        account = await accounts_store.get(conn, caller.account_id)
        key, raw = await keys_store.create(
            conn, secret=svc.secret, account_id=caller.account_id, name=body.name.strip(),
            test=caller.is_test, scopes=wanted,
        )
    return APIKeyResponse(key=raw, key_id=key.id, name=key.name, tier=account.tier,
                          scopes=list(key.scopes), created_at=iso(key.created_at) or "")


@endpoint(r, "GET", "/v1/keys", operation_id="listApiKeys", scopes=("keys",),
          response_model=ListAPIKeysResponse, tags=["keys"])
async def list_api_keys(svc: Svc, caller: Caller) -> ListAPIKeysResponse:
    async with svc.db.read() as conn:
        account = await accounts_store.get(conn, caller.account_id)
        found = await keys_store.list_for(conn, caller.account_id, caller.mode)
    return ListAPIKeysResponse(keys=[
        APIKeyListItem(key_id=k.id, name=k.name, tier=account.tier, scopes=list(k.scopes),
                       created_at=iso(k.created_at) or "", last_used_at=iso(k.last_used_at),
                       key_prefix=k.key_prefix)
        for k in found
    ])


@endpoint(r, "DELETE", "/v1/keys/{key_id}", operation_id="revokeApiKey", scopes=("keys",),
          response_model=RevokeAPIKeyResponse, tags=["keys"])
async def revoke_api_key(
    key_id: Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_-]+$")],
    svc: Svc, caller: Caller,
) -> RevokeAPIKeyResponse:
    async with svc.db.write() as conn:
        await keys_store.revoke(conn, caller.account_id, caller.mode, key_id)
    return RevokeAPIKeyResponse(key_id=key_id)


@endpoint(r, "GET", "/v1/usage", operation_id="getUsage", scopes=("usage",),
          response_model=UsageSummaryResponse, tags=["keys"])
async def get_usage(
    svc: Svc, caller: Caller,
    period: Annotated[str | None, Query(pattern=r"^[1-9][0-9]{3}-(0[1-9]|1[0-2])$",
                                        description="YYYY-MM (UTC), from 1000-01")] = None,
) -> UsageSummaryResponse:
    await svc.usage.flush()
    period = period or usage_store.current_period()
    async with svc.db.read() as conn:
        s = await usage_store.summary(conn, account_id=caller.account_id, mode=caller.mode,
                                      period=period)
        account = await accounts_store.get(conn, caller.account_id)
    balance = account.credits if account.credits is not None else 0
    return UsageSummaryResponse(
        period=s.period, total_requests=s.total_requests, total_credits=s.total_credits,
        total_cost_cents=s.total_cost_cents, input_tokens=s.input_tokens,
        output_tokens=s.output_tokens,
        cache_creation_input_tokens=s.cache_creation_input_tokens,
        cache_read_input_tokens=s.cache_read_input_tokens,
        breakdown={k: EndpointUsage(**v) for k, v in s.breakdown.items()},
        balance=balance, wallet_balance_cents=balance, wallet_balance_usd=balance / 100,
        wallet_unlimited=account.credits is None,
    )


@endpoint(r, "GET", "/v1/idempotency/{key}", operation_id="getIdempotencyResult",
          response_model=IdempotencyLookupResponse, tags=["keys"])
async def get_idempotency_result(
    key: Annotated[str, Path()],
    svc: Svc, caller: Caller,
) -> dict[str, object]:
    if not ids.IDEMPOTENCY_KEY_RE.match(key):
        # The contract has no 422 here: a key no request could have used is unknown.
        raise NotFound(f"{key[:140]!r} is not an Idempotency-Key (1-128 characters of "
                       "A-Z a-z 0-9 _ - :), so no request used it.")
    async with svc.db.read() as conn:
        record = await idem_store.get(conn, account_id=caller.account_id, mode=caller.mode,
                                      key=key)
    if record is None:
        raise NotFound(f"No request with Idempotency-Key {key!r} in the last 24 hours.")
    return lookup_body(record, svc.secret)


def _health(service: str) -> HealthResponse:
    return HealthResponse(service=service)


@endpoint(r, "GET", "/v1/health", operation_id="health", public=True,
          response_model=HealthResponse, tags=["predict"])
async def health() -> HealthResponse:
    return _health("deckhand")


@endpoint(r, "GET", "/v1/machines/health", operation_id="machinesHealth", public=True,
          response_model=HealthResponse, tags=["machines"])
async def machines_health() -> HealthResponse:
    return _health("deckhand-machines")


@endpoint(r, "GET", "/v1/schedules/health", operation_id="schedulesHealth", public=True,
          response_model=HealthResponse, tags=["schedules"])
async def schedules_health() -> HealthResponse:
    return _health("deckhand-schedules")


@endpoint(r, "GET", "/v1/triggers/health", operation_id="triggersHealth", public=True,
          response_model=HealthResponse, tags=["triggers"])
async def triggers_health() -> HealthResponse:
    return _health("deckhand-triggers")


