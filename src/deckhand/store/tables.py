"""Every table, as SQLAlchemy Core. Migrations in ``migrations/versions`` create
them; this module is what the repositories query."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
)

from deckhand.store.types import UTCDateTime

metadata = MetaData()

accounts = Table(
    "accounts",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(200), nullable=False, unique=True),
    # NULL = unlimited wallet; otherwise credits left (1 credit = 1 cent).
    Column("credits", BigInteger, nullable=True),
    Column("tier", String(32), nullable=False, server_default="enterprise"),
    Column("created_at", UTCDateTime, nullable=False),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("account_id", String(64), ForeignKey("accounts.id"), nullable=False),
    Column("name", String(200), nullable=False),
    Column("mode", String(8), nullable=False),  # live | test
    # HMAC-SHA256(server secret, key), hex. The key itself is never stored.
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("key_prefix", String(16), nullable=False),
    Column("scopes", JSON, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("last_used_at", UTCDateTime, nullable=True),
    Column("revoked_at", UTCDateTime, nullable=True),
)
Index("ix_api_keys_account", api_keys.c.account_id, api_keys.c.mode)

idempotency_records = Table(
    "idempotency_records",
    metadata,
    Column("account_id", String(64), primary_key=True),
    Column("mode", String(8), primary_key=True),
    Column("key", String(128), primary_key=True),
    Column("operation", String(128), nullable=False),
    Column("request_hash", String(64), nullable=False),
    Column("status", String(16), nullable=False),  # processing | completed
    Column("response_status", Integer, nullable=True),
    Column("response_body", Text, nullable=True),
    Column("response_headers", JSON, nullable=True),
    Column("request_id", String(64), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
)

usage_counters = Table(
    "usage_counters",
    metadata,
    Column("account_id", String(64), primary_key=True),
    Column("mode", String(8), primary_key=True),
    Column("period", String(7), primary_key=True),  # YYYY-MM
    Column("endpoint", String(128), primary_key=True),
    Column("requests", BigInteger, nullable=False, server_default="0"),
    Column("credits", BigInteger, nullable=False, server_default="0"),
    Column("cost_cents", BigInteger, nullable=False, server_default="0"),
)

machines = Table(
    "machines",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("account_id", String(64), ForeignKey("accounts.id"), nullable=False),
    Column("mode", String(8), nullable=False),
    Column("display_name", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("os_type", String(16), nullable=False, server_default="linux"),
    Column("desktop_enabled", Boolean, nullable=False, server_default=false()),
    Column("cpu_cores", Integer, nullable=False, server_default="1"),
    Column("memory_gb", Integer, nullable=False, server_default="2"),
    Column("storage_gb", Integer, nullable=False, server_default="10"),
    Column("metadata", JSON, nullable=False),
    Column("ttl_minutes", Integer, nullable=True),
    Column("auto_destroy_at", UTCDateTime, nullable=True),
    Column("provider", String(16), nullable=False),  # local | remote
    Column("agent_url", String(512), nullable=True),
    Column("agent_token_sealed", Text, nullable=True),
    Column("error", Text, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("started_at", UTCDateTime, nullable=True),
    Column("terminated_at", UTCDateTime, nullable=True),
)
Index("ix_machines_account", machines.c.account_id, machines.c.mode, machines.c.created_at)

runs = Table(
    "runs",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("account_id", String(64), ForeignKey("accounts.id"), nullable=False),
    Column("mode", String(8), nullable=False),
    Column("machine_id", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("task", Text, nullable=False),
    Column("cua_version", String(4), nullable=False),
    Column("instructions", Text, nullable=True),
    Column("system_prompt", Text, nullable=True),
    Column("model", String(512), nullable=True),
    Column("brain", String(32), nullable=False),
    Column("max_steps", Integer, nullable=False),
    Column("deadline_seconds", Integer, nullable=True),
    Column("deadline_at", UTCDateTime, nullable=True),
    Column("on_awaiting_human", String(8), nullable=False),
    Column("awaiting_human_timeout_seconds", Integer, nullable=True),
    Column("awaiting_human_reason", Text, nullable=True),
    Column("awaiting_human_since", UTCDateTime, nullable=True),
    Column("webhook_url", String(2048), nullable=True),
    Column("webhook_secret_sealed", Text, nullable=True),
    Column("metadata", JSON, nullable=True),
    Column("llm", JSON, nullable=True),
    Column("steps_completed", Integer, nullable=False, server_default="0"),
    Column("credits_charged", BigInteger, nullable=False, server_default="0"),
    Column("cost_cents", BigInteger, nullable=False, server_default="0"),
    Column("input_tokens", BigInteger, nullable=False, server_default="0"),
    Column("output_tokens", BigInteger, nullable=False, server_default="0"),
    Column("result", JSON, nullable=True),
    Column("error", JSON, nullable=True),
    Column("request_id", String(64), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("started_at", UTCDateTime, nullable=True),
    Column("finished_at", UTCDateTime, nullable=True),
    # the engine's bookkeeping
    Column("last_seq", Integer, nullable=False, server_default="0"),
    Column("claimed_by", String(128), nullable=True),
    Column("lease_expires_at", UTCDateTime, nullable=True),
    Column("cancel_requested", Boolean, nullable=False, server_default=false()),
    Column("attempts", Integer, nullable=False, server_default="0"),
)
Index("ix_runs_account", runs.c.account_id, runs.c.mode, runs.c.created_at)
Index("ix_runs_status", runs.c.status, runs.c.lease_expires_at)

run_steps = Table(
    "run_steps",
    metadata,
    Column("run_id", String(36), ForeignKey("runs.id"), primary_key=True),
    Column("number", Integer, primary_key=True),
    Column("decision", JSON, nullable=False),
    Column("results", JSON, nullable=False),
    Column("human_note", Text, nullable=True),
    Column("input_tokens", Integer, nullable=False, server_default="0"),
    Column("output_tokens", Integer, nullable=False, server_default="0"),
    Column("credits", Integer, nullable=False, server_default="0"),
    Column("started_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime, nullable=False),
)

run_events = Table(
    "run_events",
    metadata,
    Column("run_id", String(36), ForeignKey("runs.id"), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("type", String(32), nullable=False),
    Column("data", JSON, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

ledger_entries = Table(
    "ledger_entries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("account_id", String(64), ForeignKey("accounts.id"), nullable=False),
    Column("mode", String(8), nullable=False),
    Column("run_id", String(36), nullable=True),
    Column("step", Integer, nullable=True),
    Column("kind", String(32), nullable=False),  # run_step | top_up | …
    Column("credits", BigInteger, nullable=False),  # debited (positive) or credited (negative)
    Column("balance_after", BigInteger, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    UniqueConstraint("run_id", "step", "kind", name="uq_ledger_run_step"),
)
Index("ix_ledger_account", ledger_entries.c.account_id, ledger_entries.c.created_at)

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", String(40), primary_key=True),  # evt_<hex>: also the payload's id
    Column("account_id", String(64), nullable=False),
    Column("run_id", String(36), nullable=True),
    Column("url", String(2048), nullable=False),
    Column("event_type", String(64), nullable=False),
    Column("payload", Text, nullable=False),
    Column("secret_sealed", Text, nullable=False),
    Column("status", String(16), nullable=False),  # pending | delivered | failed
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", UTCDateTime, nullable=True),
    Column("claimed_until", UTCDateTime, nullable=True),
    Column("last_status_code", Integer, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("delivered_at", UTCDateTime, nullable=True),
)
Index("ix_webhook_due", webhook_deliveries.c.status, webhook_deliveries.c.next_attempt_at)

webhook_attempts = Table(
    "webhook_attempts",
    metadata,
    Column("delivery_id", String(40), ForeignKey("webhook_deliveries.id"), primary_key=True),
    Column("attempt", Integer, primary_key=True),
    Column("attempted_at", UTCDateTime, nullable=False),
    Column("status_code", Integer, nullable=True),
    Column("error", Text, nullable=True),
    Column("duration_ms", Integer, nullable=False),
)
