"""Usage counters per account, mode, month and endpoint."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from deckhand.store.tables import usage_counters as t
from deckhand.store.types import utcnow
from deckhand.store.upsert import increment


def current_period() -> str:
    return utcnow().strftime("%Y-%m")


async def record(
    conn: AsyncConnection,
    *,
    account_id: str,
    mode: str,
    endpoint: str,
    requests: int = 0,
    credits: int = 0,
    cost_cents: int = 0,
) -> None:
    await increment(
        conn, t,
        {"account_id": account_id, "mode": mode, "period": current_period(), "endpoint": endpoint},
        {"requests": requests, "credits": credits, "cost_cents": cost_cents},
    )


@dataclass
class UsageSummary:
    period: str
    total_requests: int = 0
    total_credits: int = 0
    total_cost_cents: int = 0
    breakdown: dict[str, dict[str, int]] = field(default_factory=dict)


async def summary(conn: AsyncConnection, *, account_id: str, mode: str, period: str) -> UsageSummary:
    rows = (
        await conn.execute(
            select(t).where(t.c.account_id == account_id, t.c.mode == mode, t.c.period == period)
        )
    ).all()
    out = UsageSummary(period=period)
    for r in rows:
        out.total_requests += r.requests
        out.total_credits += r.credits
        out.total_cost_cents += r.cost_cents
        out.breakdown[r.endpoint] = {"requests": r.requests, "credits": r.credits}
    return out
