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
    Column("input_tokens", BigInteger, nullable=False, server_default="0"),
    Column("output_tokens", BigInteger, nullable=False, server_default="0"),
    # 0009: the prompt cache's part of input_tokens
    Column("cache_creation_input_tokens", BigInteger, nullable=False, server_default="0"),
    Column("cache_read_input_tokens", BigInteger, nullable=False, server_default="0"),
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
    # 0005: kinds, metering, idle clean-up
    Column("kind", String(16), nullable=False, server_default="terminal"),
    Column("stopped_at", UTCDateTime, nullable=True),
    Column("last_active_at", UTCDateTime, nullable=True),
    Column("billing_since", UTCDateTime, nullable=True),
    Column("billing_carry", BigInteger, nullable=False, server_default="0"),  # millicredits
    Column("billing_segments", Integer, nullable=False, server_default="0"),
    Column("credits_billed", BigInteger, nullable=False, server_default="0"),
    Column("suspended_for_billing", Boolean, nullable=False, server_default=false()),
)
Index("ix_machines_account", machines.c.account_id, machines.c.mode, machines.c.created_at)

machine_snapshots = Table(
    "machine_snapshots",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("account_id", String(64), ForeignKey("accounts.id"), nullable=False),
    Column("mode", String(8), nullable=False),
    Column("machine_id", String(64), nullable=False),
    Column("name", String(200), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("path", Text, nullable=False),
    Column("size_bytes", BigInteger, nullable=False),
    Column("credits_charged", Integer, nullable=False, server_default="0"),
    Column("created_at", UTCDateTime, nullable=False),
)
Index("ix_machine_snapshots_account", machine_snapshots.c.account_id, machine_snapshots.c.mode,
      machine_snapshots.c.created_at)

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
    # the workflow run that started this run as a task step (migration 0003)
    Column("workflow_run_id", String(36), nullable=True),
    # 0009: the prompt cache's part of input_tokens
    Column("cache_creation_input_tokens", BigInteger, nullable=False, server_default="0"),
    Column("cache_read_input_tokens", BigInteger, nullable=False, server_default="0"),
)
Index("ix_runs_account", runs.c.account_id, runs.c.mode, runs.c.created_at)
Index("ix_runs_status", runs.c.status, runs.c.lease_expires_at)
Index("ix_runs_workflow_run", runs.c.workflow_run_id)

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
    # 0009: the prompt cache's part of input_tokens
    Column("cache_creation_input_tokens", BigInteger, nullable=False, server_default="0"),
    Column("cache_read_input_tokens", BigInteger, nullable=False, server_default="0"),
)

# A step's screens (kind "screen": what the brain saw; "after": the settled
# screen after its last action) and the files the browser downloaded during
# it (kind "download-<i>"), pointing at content-addressed bytes in the
# artifact store (deckhand/artifacts). Written in the step's transaction.
run_artifacts = Table(
    "run_artifacts",
    metadata,
    Column("run_id", String(36), ForeignKey("runs.id"), primary_key=True),
    Column("step", Integer, primary_key=True),
    Column("kind", String(16), primary_key=True),
    Column("sha256", String(64), nullable=False),
    Column("content_type", String(64), nullable=False),
    Column("size", Integer, nullable=False),
    Column("width", Integer, nullable=True),
    Column("height", Integer, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    # 0010: a download's file name and the URL it came from (None for screens)
    Column("name", String(255), nullable=True),
    Column("source_url", Text, nullable=True),
)
Index("ix_run_artifacts_sha256", run_artifacts.c.sha256)
Index("ix_run_artifacts_created", run_artifacts.c.created_at)

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

# -- workflows (migration 0003) ------------------------------------------------

workflows = Table(
    "workflows",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("account_id", String(64), ForeignKey("accounts.id"), nullable=False),
    Column("mode", String(8), nullable=False),
    Column("slug", String(64), nullable=False),
    Column("name", String(128), nullable=False),
    Column("description", Text, nullable=True),
    Column("status", String(16), nullable=False),  # active | archived
    Column("version", Integer, nullable=False),
    Column("definition", JSON, nullable=False),
    Column("inputs_schema", JSON, nullable=True),
    Column("metadata", JSON, nullable=True),
    Column("request_id", String(64), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    UniqueConstraint("account_id", "mode", "slug", name="uq_workflows_slug"),
)
Index("ix_workflows_account", workflows.c.account_id, workflows.c.mode, workflows.c.created_at)

# Every version of every workflow (PUT adds one; runs record the one they ran).
workflow_versions = Table(
    "workflow_versions",
    metadata,
    Column("workflow_id", String(36), ForeignKey("workflows.id"), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("definition", JSON, nullable=False),
    Column("inputs_schema", JSON, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
)

workflow_runs = Table(
    "workflow_runs",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("account_id", String(64), ForeignKey("accounts.id"), nullable=False),
    Column("mode", String(8), nullable=False),
    Column("workflow_id", String(36), nullable=True),  # None: an ad-hoc run
    Column("workflow_version", Integer, nullable=True),
    Column("status", String(16), nullable=False),
    Column("definition", JSON, nullable=False),  # the definition it runs (a snapshot)
    Column("inputs", JSON, nullable=False),
    Column("machine_id", String(128), nullable=True),
    Column("model", String(512), nullable=True),
    Column("llm", JSON, nullable=True),  # the non-secret BYOK echo, as on runs
    Column("output", JSON, nullable=True),
    Column("error", JSON, nullable=True),
    Column("awaiting_human_reason", Text, nullable=True),
    Column("awaiting_step_id", String(64), nullable=True),
    Column("awaiting_step_key", String(1024), nullable=True),
    Column("awaiting_human_since", UTCDateTime, nullable=True),
    Column("awaiting_timeout_at", UTCDateTime, nullable=True),
    Column("iterations_used", Integer, nullable=False, server_default="0"),
    Column("spent_cents", BigInteger, nullable=False, server_default="0"),
    Column("budget_cents", BigInteger, nullable=True),
    Column("max_iterations", Integer, nullable=True),
    Column("deadline_seconds", Integer, nullable=True),
    Column("deadline_at", UTCDateTime, nullable=True),
    Column("webhook_url", String(2048), nullable=True),
    Column("webhook_secret_sealed", Text, nullable=True),
    Column("metadata", JSON, nullable=True),
    Column("request_id", String(64), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("started_at", UTCDateTime, nullable=True),
    Column("finished_at", UTCDateTime, nullable=True),
    # the engine's bookkeeping, as for runs
    Column("last_seq", Integer, nullable=False, server_default="0"),
    Column("claimed_by", String(128), nullable=True),
    Column("lease_expires_at", UTCDateTime, nullable=True),
    Column("cancel_requested", Boolean, nullable=False, server_default=false()),
    Column("attempts", Integer, nullable=False, server_default="0"),
)
Index("ix_workflow_runs_account", workflow_runs.c.account_id, workflow_runs.c.mode,
      workflow_runs.c.created_at)
Index("ix_workflow_runs_status", workflow_runs.c.status, workflow_runs.c.lease_expires_at)
Index("ix_workflow_runs_workflow", workflow_runs.c.workflow_id, workflow_runs.c.created_at)

workflow_run_events = Table(
    "workflow_run_events",
    metadata,
    Column("workflow_run_id", String(36), ForeignKey("workflow_runs.id"), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("type", String(32), nullable=False),
    Column("data", JSON, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

# The interpreter's durable position: one row per step execution, keyed by its
# path in the run (e.g. ``outer[2]/check`` for step ``check`` in iteration 2).
workflow_steps = Table(
    "workflow_steps",
    metadata,
    Column("workflow_run_id", String(36), ForeignKey("workflow_runs.id"), primary_key=True),
    Column("key", String(1024), primary_key=True),
    Column("step_id", String(64), nullable=False),
    Column("type", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("child_run_id", String(36), nullable=True),
    Column("data", JSON, nullable=True),
    Column("wake_at", UTCDateTime, nullable=True),
    Column("started_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime, nullable=True),
)

# Bring-your-own-key provider keys (sealed with crypto.seal, purpose "llm-key"): one per
# account and provider, managed with live keys only.
llm_keys = Table(
    "llm_keys",
    metadata,
    Column("account_id", String(64), ForeignKey("accounts.id"), primary_key=True),
    Column("provider", String(32), primary_key=True),
    Column("key_sealed", Text, nullable=False),
    Column("key_fingerprint", String(64), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

# A BYOK run's key snapshot, deleted when the run ends (runs.llm.key_scrubbed).
run_llm_keys = Table(
    "run_llm_keys",
    metadata,
    Column("run_id", String(36), ForeignKey("runs.id"), primary_key=True),
    Column("key_sealed", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

# A BYOK workflow run's key snapshot: its task runs get their own snapshots from
# it; deleted when the workflow run ends (workflow_runs.llm.key_scrubbed).
workflow_run_llm_keys = Table(
    "workflow_run_llm_keys",
    metadata,
    Column("workflow_run_id", String(36), ForeignKey("workflow_runs.id"), primary_key=True),
    Column("key_sealed", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

# Stateful inference sessions (/v1/sessions): settings, trajectory, counters.
inference_sessions = Table(
    "inference_sessions",
    metadata,
    Column("id", String(128), primary_key=True),
    Column("account_id", String(64), ForeignKey("accounts.id"), nullable=False),
    Column("mode", String(8), nullable=False),
    Column("cua_version", String(4), nullable=False),
    Column("model", String(512), nullable=True),
    Column("screen_width", Integer, nullable=False),
    Column("screen_height", Integer, nullable=False),
    Column("max_trajectory_length", Integer, nullable=False),
    Column("system_prompt", Text, nullable=True),
    Column("instructions", Text, nullable=True),
    Column("tools", JSON, nullable=True),
    Column("metadata", JSON, nullable=True),
    Column("llm", JSON, nullable=True),  # the non-secret BYOK echo
    Column("key_sealed", Text, nullable=True),  # the BYOK key for the session's lifetime
    Column("trajectory", JSON, nullable=False),
    Column("step_count", Integer, nullable=False, server_default="0"),
    Column("total_credits", BigInteger, nullable=False, server_default="0"),
    Column("input_tokens", BigInteger, nullable=False, server_default="0"),
    Column("output_tokens", BigInteger, nullable=False, server_default="0"),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
)
Index("ix_inference_sessions_account", inference_sessions.c.account_id,
      inference_sessions.c.mode, inference_sessions.c.created_at)

# -- schedules and triggers (migration 0007, docs/schedules.md) -----------------

schedules = Table(
    "schedules",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("account_id", String(64), ForeignKey("accounts.id"), nullable=False),
    Column("mode", String(8), nullable=False),
    Column("name", String(128), nullable=False),
    Column("machine_id", String(64), nullable=False),
    Column("task_prompt", Text, nullable=False),
    Column("frequency", String(32), nullable=False),  # a preset, custom, or once (run_at)
    Column("cron", String(128), nullable=False),  # "" for a one-shot
    Column("timezone", String(64), nullable=False),
    Column("time", String(5), nullable=True),
    Column("day_of_week", Integer, nullable=True),
    Column("day_of_month", Integer, nullable=True),
    Column("run_at", UTCDateTime, nullable=True),
    Column("enabled", Boolean, nullable=False),
    Column("next_run_at", UTCDateTime, nullable=True),  # None: nothing due (paused, done)
    Column("last_run_at", UTCDateTime, nullable=True),
    Column("run_count", Integer, nullable=False, server_default="0"),
    Column("consecutive_failures", Integer, nullable=False, server_default="0"),
    Column("max_consecutive_failures", Integer, nullable=False),
    Column("paused_reason", Text, nullable=True),
    Column("metadata", JSON, nullable=True),
    Column("llm", JSON, nullable=True),  # the non-secret BYOK preference only
    Column("request_id", String(64), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)
Index("ix_schedules_due", schedules.c.enabled, schedules.c.next_run_at)
Index("ix_schedules_account", schedules.c.account_id, schedules.c.mode, schedules.c.created_at)

# One firing of a schedule (the contract's ScheduleRunRecord): its run, or why none.
schedule_runs = Table(
    "schedule_runs",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("schedule_id", String(64), ForeignKey("schedules.id"), nullable=False),
    Column("account_id", String(64), nullable=False),
    Column("mode", String(8), nullable=False),
    Column("run_id", String(36), nullable=True),
    # pending (a chain firing not yet made) | queued (see run_id) | skipped |
    # insufficient_credits | failed (the firing itself failed)
    Column("status", String(24), nullable=False),
    Column("trigger", String(16), nullable=False),
    Column("error", Text, nullable=True),
    Column("context", JSON, nullable=True),  # a pending firing's triggered context
    Column("depth", Integer, nullable=False, server_default="0"),  # chain links behind it
    Column("executed_at", UTCDateTime, nullable=False),
)
Index("ix_schedule_runs_schedule", schedule_runs.c.schedule_id, schedule_runs.c.executed_at)
Index("ix_schedule_runs_run", schedule_runs.c.run_id)
Index("ix_schedule_runs_status", schedule_runs.c.status)

schedule_triggers = Table(
    "schedule_triggers",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("schedule_id", String(64), ForeignKey("schedules.id"), nullable=False),
    Column("account_id", String(64), nullable=False),
    Column("mode", String(8), nullable=False),
    Column("kind", String(16), nullable=False),  # webhook | chain
    Column("enabled", Boolean, nullable=False),
    Column("source_schedule_id", String(64), nullable=True),
    Column("event", String(16), nullable=True),  # on_complete | on_failure | on_any
    Column("pass_output", Boolean, nullable=False),
    Column("rate_limit_per_minute", Integer, nullable=False),
    Column("webhook_id", String(56), nullable=True, unique=True),
    Column("secret_sealed", Text, nullable=True),  # crypto.seal, purpose "schedule-webhook"
    Column("created_at", UTCDateTime, nullable=False),
)
Index("ix_schedule_triggers_schedule", schedule_triggers.c.schedule_id)
Index("ix_schedule_triggers_source", schedule_triggers.c.source_schedule_id)

# Webhook deliveries received: the 60 s dedup and the per-minute rate limit.
webhook_receipts = Table(
    "webhook_receipts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("trigger_id", String(40), nullable=False),
    Column("body_hash", String(64), nullable=False),
    Column("run_id", String(36), nullable=True),
    Column("received_at", UTCDateTime, nullable=False),
)
Index("ix_webhook_receipts_trigger", webhook_receipts.c.trigger_id,
      webhook_receipts.c.received_at)
