"""Usage per account, mode, month and endpoint: requests, credits and model
tokens. API requests and inference calls are counters (``usage_counters``);
agent steps are read from the steps themselves (``run_steps``), so a step's
one transaction stays as small as it is; machine runtime and snapshot fees
are read from the ledger entries that charged them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from deckhand.core.clock import utcnow
from deckhand.store.tables import ledger_entries, run_steps, runs
from deckhand.store.tables import usage_counters as t
from deckhand.store.upsert import increment

RUN_STEPS = "runSteps"  # the breakdown entry of agent steps (requests: steps)
# ledger kinds charged outside any request → their breakdown entry (requests:
# billed runtime segments, snapshots)
MACHINE_CHARGES = {"machine_runtime": "machineRuntime", "machine_snapshot": "machineSnapshots"}


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
    input_tokens: int = 0,
    output_tokens: int = 0,
    cache_creation_input_tokens: int = 0,
    cache_read_input_tokens: int = 0,
) -> None:
    await increment(
        conn, t,
        {"account_id": account_id, "mode": mode, "period": current_period(), "endpoint": endpoint},
        {"requests": requests, "credits": credits, "cost_cents": cost_cents,
         "input_tokens": input_tokens, "output_tokens": output_tokens,
         "cache_creation_input_tokens": cache_creation_input_tokens,
         "cache_read_input_tokens": cache_read_input_tokens},
    )


@dataclass
class UsageSummary:
    period: str
    total_requests: int = 0
    total_credits: int = 0
    total_cost_cents: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    breakdown: dict[str, dict[str, int]] = field(default_factory=dict)

    def add_tokens(self, endpoint: str, requests: int, credits: int, tokens: tuple[int, ...]
                   ) -> None:
        """One breakdown entry; its tokens (in the order of :data:`TOKENS`) add to the totals."""
        self.input_tokens += tokens[0]
        self.output_tokens += tokens[1]
        self.cache_creation_input_tokens += tokens[2]
        self.cache_read_input_tokens += tokens[3]
        self.breakdown[endpoint] = {"requests": requests, "credits": credits,
                                    **dict(zip(TOKENS, tokens, strict=True))}


TOKENS = ("input_tokens", "output_tokens", "cache_creation_input_tokens",
          "cache_read_input_tokens")


def _month(period: str) -> tuple[datetime, datetime]:
    year, month = (int(x) for x in period.split("-"))
    start = datetime(year, month, 1, tzinfo=UTC)
    if (year, month) == (9999, 12):  # the last month datetime has
        return start, datetime.max.replace(tzinfo=UTC)
    end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)
    return start, end


async def summary(conn: AsyncConnection, *, account_id: str, mode: str,
                  period: str) -> UsageSummary:
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
        out.add_tokens(r.endpoint, r.requests, r.credits, tuple(getattr(r, n) for n in TOKENS))
    start, end = _month(period)
    steps = (await conn.execute(
        select(func.count(), func.coalesce(func.sum(run_steps.c.credits), 0),
               *(func.coalesce(func.sum(run_steps.c[n]), 0) for n in TOKENS))
        .select_from(run_steps.join(runs, runs.c.id == run_steps.c.run_id))
        .where(runs.c.account_id == account_id, runs.c.mode == mode,
               run_steps.c.finished_at >= start, run_steps.c.finished_at < end)
    )).one()
    count, credits, *tokens = (int(x) for x in steps)
    if count:
        # steps are charged, not requested: they add credits and tokens, not requests
        out.total_credits += credits
        out.total_cost_cents += credits
        out.add_tokens(RUN_STEPS, count, credits, tuple(tokens))
    charges = await conn.execute(
        select(ledger_entries.c.kind, func.count(), func.sum(ledger_entries.c.credits))
        .where(ledger_entries.c.account_id == account_id, ledger_entries.c.mode == mode,
               ledger_entries.c.kind.in_(MACHINE_CHARGES),
               ledger_entries.c.created_at >= start, ledger_entries.c.created_at < end)
        .group_by(ledger_entries.c.kind)
    )
    for kind, entries, charged in charges:
        out.total_credits += int(charged)
        out.total_cost_cents += int(charged)
        out.add_tokens(MACHINE_CHARGES[kind], int(entries), int(charged), (0,) * len(TOKENS))
    return out


@dataclass
class DayUsage:
    date: str  # YYYY-MM-DD (UTC)
    credits: int = 0
    steps: int = 0
    input_tokens: int = 0
    output_tokens: int = 0


def _utc_day(conn: AsyncConnection, column: ColumnElement[datetime]) -> ColumnElement[str]:
    """The UTC calendar day of a timestamp column, as text, on either backend."""
    if conn.dialect.name == "sqlite":  # stored as naive UTC
        return func.date(column)
    return func.to_char(func.timezone("UTC", column), "YYYY-MM-DD")


async def daily(conn: AsyncConnection, *, account_id: str, mode: str,
                since: datetime) -> list[DayUsage]:
    """Credits and tokens per UTC day from ``since``: agent steps (their
    credits and tokens) and machine charges (runtime, snapshots). Days with
    nothing are left out."""
    days: dict[str, DayUsage] = {}
    step_day = _utc_day(conn, run_steps.c.finished_at)
    steps = await conn.execute(
        select(step_day, func.count(), func.coalesce(func.sum(run_steps.c.credits), 0),
               func.coalesce(func.sum(run_steps.c.input_tokens), 0),
               func.coalesce(func.sum(run_steps.c.output_tokens), 0))
        .select_from(run_steps.join(runs, runs.c.id == run_steps.c.run_id))
        .where(runs.c.account_id == account_id, runs.c.mode == mode,
               run_steps.c.finished_at >= since)
        .group_by(step_day)
    )
    for day, count, credits, input_tokens, output_tokens in steps:
        days[str(day)] = DayUsage(str(day), int(credits), int(count), int(input_tokens),
                                  int(output_tokens))
    charge_day = _utc_day(conn, ledger_entries.c.created_at)
    charges = await conn.execute(
        select(charge_day, func.sum(ledger_entries.c.credits))
        .where(ledger_entries.c.account_id == account_id, ledger_entries.c.mode == mode,
               ledger_entries.c.kind.in_(MACHINE_CHARGES), ledger_entries.c.created_at >= since)
        .group_by(charge_day)
    )
    for day, charged in charges:
        days.setdefault(str(day), DayUsage(str(day))).credits += int(charged)
    return [days[d] for d in sorted(days)]
