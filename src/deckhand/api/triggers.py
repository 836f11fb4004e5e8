"""Triggers (the contract's ``triggers`` tag): list, add (webhook | chain),
remove, and the signed webhook entry point. See docs/schedules.md."""

from __future__ import annotations

import secrets
from collections import defaultdict
from typing import Annotated, Any, Literal

from fastapi import Depends, Path, Request
from pydantic import BaseModel, ConfigDict, Field

from deckhand import crypto, ids
from deckhand.api.deps import principal, services
from deckhand.api.routing import endpoint, router
from deckhand.api.schedules import ScheduleIdParam, owned
from deckhand.auth import Principal
from deckhand.core.clock import utcnow
from deckhand.engine import schedule_webhooks as webhooks
from deckhand.errors import AuthError, DeckhandError, ErrorCode, NotFound, ValidationFailed
from deckhand.services import Services
from deckhand.store import schedules as schedules_store
from deckhand.store import triggers as triggers_store
from deckhand.store.records import Trigger
from deckhand.store.schedules import MAX_CHAIN_DEPTH
from deckhand.views import trigger_view

r = router(tags=["triggers"])

Svc = Annotated[Services, Depends(services)]
Caller = Annotated[Principal, Depends(principal)]
TriggerIdParam = Annotated[str, Path(description="trg_<hex>")]
WebhookIdParam = Annotated[str, Path(description="whk_<hex>")]
UNAUTHORIZED = "The webhook signature is missing, wrong or stale."


class TriggerCreateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["webhook", "chain"]
    source_schedule_id: str | None = Field(default=None, max_length=64)
    event: Literal["on_complete", "on_failure", "on_any"] = "on_complete"
    pass_output: bool = True
    rate_limit_per_minute: int = Field(default=60, ge=1, le=600)
    enabled: bool = True


def webhook_url(svc: Services, request: Request, t: Trigger) -> str | None:
    if t.webhook_id is None:
        return None
    base = (svc.settings.public_url or str(request.base_url)).rstrip("/")
    return f"{base}/v1/triggers/webhook/{t.webhook_id}"


def check_chain(edges: list[tuple[str, str]], source: str, target: str) -> None:
    """Refuse a chain source → target that closes a cycle or makes a chain
    longer than MAX_CHAIN_DEPTH links."""
    out: dict[str, set[str]] = defaultdict(set)
    into: dict[str, set[str]] = defaultdict(set)
    for a, b in edges:
        out[a].add(b)
        into[b].add(a)

    def longest(start: str, nxt: dict[str, set[str]], seen: frozenset[str]) -> int:
        if start in seen:
            raise ValidationFailed("source_schedule_id: this chain would close a cycle.")
        return max((1 + longest(n, nxt, seen | {start}) for n in nxt[start]), default=0)

    if source == target:
        raise ValidationFailed("source_schedule_id: a schedule cannot chain to itself.")
    downstream = longest(target, out, frozenset())
    if _reaches(out, target, source):
        raise ValidationFailed("source_schedule_id: this chain would close a cycle "
                               f"({target} already leads to {source}).")
    upstream = longest(source, into, frozenset())
    if upstream + 1 + downstream > MAX_CHAIN_DEPTH:
        raise ValidationFailed(f"source_schedule_id: chains are at most {MAX_CHAIN_DEPTH} "
                               "links long; this one would be longer.")


def _reaches(out: dict[str, set[str]], start: str, goal: str) -> bool:
    stack, seen = [start], set()
    while stack:
        node = stack.pop()
        if node == goal:
            return True
        if node not in seen:
            seen.add(node)
            stack.extend(out[node])
    return False


@endpoint(r, "GET", "/v1/schedules/{schedule_id}/triggers", operation_id="listTriggers",
          scopes=("schedules:read",))
async def list_triggers(schedule_id: ScheduleIdParam, request: Request, svc: Svc,
                        caller: Caller) -> dict[str, Any]:
    async with svc.db.read() as conn:
        s = await owned(conn, schedule_id, caller)
        found = await triggers_store.of_schedule(conn, s.id)
    return {"object": "list",
            "data": [trigger_view(t, webhook_url=webhook_url(svc, request, t)) for t in found],
            "request_id": request.state.request_id}


@endpoint(r, "POST", "/v1/schedules/{schedule_id}/triggers", operation_id="addTrigger",
          scopes=("triggers:write",), idempotent=True)
async def add_trigger(schedule_id: ScheduleIdParam, body: TriggerCreateRequest,
                      request: Request, svc: Svc, caller: Caller) -> dict[str, Any]:
    secret = None
    async with svc.db.write() as conn:
        s = await owned(conn, schedule_id, caller)
        values: dict[str, Any] = {
            "id": ids.trigger_id(), "schedule_id": s.id, "account_id": caller.account_id,
            "mode": caller.mode, "kind": body.kind, "enabled": body.enabled,
            "pass_output": body.pass_output, "rate_limit_per_minute": body.rate_limit_per_minute,
            "created_at": utcnow(), "source_schedule_id": None, "event": None,
            "webhook_id": None, "secret_sealed": None}
        if body.kind == "chain":
            if not body.source_schedule_id:
                raise ValidationFailed("source_schedule_id: a chain trigger needs the schedule "
                                       "whose runs fire it.")
            try:
                source = await owned(conn, body.source_schedule_id, caller)
            except NotFound as exc:
                raise NotFound(f"source_schedule_id: schedule {body.source_schedule_id} "
                               "not found.") from exc
            check_chain(await triggers_store.chain_edges(conn, caller.account_id, caller.mode),
                        source.id, s.id)
            values.update(source_schedule_id=source.id, event=body.event)
        else:
            secret = "whsec_" + secrets.token_hex(32)
            values.update(webhook_id=ids.webhook_id(),
                          secret_sealed=crypto.seal(svc.secret, triggers_store.SECRET_PURPOSE,
                                                    secret))
        t = await triggers_store.insert(conn, values)
    view = trigger_view(t, webhook_url=webhook_url(svc, request, t), webhook_secret=secret)
    if secret is None:
        view["webhook_secret"] = None
    return {**view, "request_id": request.state.request_id}


@endpoint(r, "DELETE", "/v1/schedules/{schedule_id}/triggers/{trigger_id}",
          operation_id="removeTrigger", scopes=("triggers:write",))
async def remove_trigger(schedule_id: ScheduleIdParam, trigger_id: TriggerIdParam,
                         request: Request, svc: Svc, caller: Caller) -> dict[str, Any]:
    async with svc.db.write() as conn:
        s = await owned(conn, schedule_id, caller)
        if not ids.TRIGGER_ID_RE.match(trigger_id):
            raise NotFound(f"Trigger {trigger_id} not found.")
        t = await triggers_store.get_of_schedule(conn, s.id, trigger_id)
        await triggers_store.remove(conn, t.id)
    return {"deleted": True, "trigger_id": t.id, "request_id": request.state.request_id}


async def _capped_body(request: Request) -> bytes:
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > webhooks.MAX_BODY_BYTES:
            raise DeckhandError("The webhook body exceeds 1 MB.",
                                code=ErrorCode.PAYLOAD_TOO_LARGE,
                                examples={"max_bytes": webhooks.MAX_BODY_BYTES})
        chunks.append(chunk)
    return b"".join(chunks)


@endpoint(r, "POST", "/v1/triggers/webhook/{webhook_id}", operation_id="fireWebhook",
          signed=True)
async def fire_webhook(webhook_id: WebhookIdParam, request: Request,
                       svc: Svc) -> dict[str, Any]:
    """No API key: the body's HMAC signature is the credential. Every way of
    failing it (unknown id, disabled trigger, wrong, stale or missing
    signature) is the same 401."""
    body = await _capped_body(request)
    primary = request.headers.get("coasty-signature")
    legacy = request.headers.get("x-coasty-signature")
    header = primary if legacy is None else (legacy if primary is None else None)
    now = utcnow()
    async with svc.db.write() as conn:
        t = (await triggers_store.by_webhook(conn, webhook_id)
             if ids.WEBHOOK_ID_RE.match(webhook_id) else None)
        secret = (crypto.open_sealed(svc.secret, triggers_store.SECRET_PURPOSE, t.secret_sealed)
                  if t is not None and t.secret_sealed else None)
        if t is None or secret is None or not t.enabled or not webhooks.signature_ok(
                secret, header, body, now):
            raise AuthError(UNAUTHORIZED, code=ErrorCode.INVALID_SIGNATURE)
        s = await schedules_store.get(conn, t.schedule_id)
        if s is None:
            raise AuthError(UNAUTHORIZED, code=ErrorCode.INVALID_SIGNATURE)
        got = await webhooks.receive(conn, svc.firer, t, s, body,
                                     request.headers.get("content-type"), now)
    message = ("Duplicate of a delivery in the last 60 s; no new run." if got.deduplicated
               else "Run queued." if got.status == "queued" else f"Firing {got.status}.")
    return {"received": True, "schedule_id": t.schedule_id, "run_id": got.run_id,
            "deduplicated": got.deduplicated, "message": message,
            "request_id": request.state.request_id}
