"""``GET /v1/usage/daily`` (Deckhand, additive): credits and tokens per UTC day."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import Depends, Query, Request

from deckhand.api.deps import principal, services
from deckhand.api.routing import endpoint, router
from deckhand.auth import Principal
from deckhand.core.clock import utcnow
from deckhand.services import Services
from deckhand.store import usage as usage_store

r = router(tags=["keys"])
Svc = Annotated[Services, Depends(services)]
Caller = Annotated[Principal, Depends(principal)]


@endpoint(r, "GET", "/v1/usage/daily", operation_id="getDailyUsage", scopes=("usage",))
async def daily_usage(
    request: Request, svc: Svc, caller: Caller,
    days: Annotated[int, Query(ge=1, le=366, description="How many days back, today "
                                                         "included (UTC).")] = 30,
) -> dict[str, Any]:
    """Deckhand: agent steps (count, credits, tokens) and machine charges per
    UTC day; days with nothing are left out."""
    now = utcnow()
    since = datetime(now.year, now.month, now.day, tzinfo=now.tzinfo) - timedelta(days=days - 1)
    async with svc.db.read() as conn:
        rows = await usage_store.daily(conn, account_id=caller.account_id, mode=caller.mode,
                                       since=since)
    return {"object": "list", "days": days, "data": [asdict(x) for x in rows],
            "request_id": request.state.request_id}
