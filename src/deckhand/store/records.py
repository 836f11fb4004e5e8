"""The records the store returns for runs, machines, workflows, workflow runs,
their steps and inference sessions: frozen dataclasses, one field per column of
their table, in the table's order.

Callers get plain values with real types instead of SQLAlchemy rows, so mypy
checks every column they read, and nothing outside the store depends on
``Row`` behaviour (tuple indexing, ``_mapping``). A record is frozen: a change
is written to the database and read back as a new record, never patched in
memory. Records whose aggregates were typed before (``Account``, ``ApiKey``,
``IdempotencyRecord``, ``StoredKey``, ``Delivery``, ``Attempt``) live next to
their queries and are built with :func:`from_row` too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeAlias, TypeVar

from sqlalchemy import Row

# A JSON column holding an object (most of them), and one holding any JSON value.
JSONObject: TypeAlias = dict[str, Any]
JSONValue: TypeAlias = "dict[str, JSONValue] | list[JSONValue] | str | int | float | bool | None"

R = TypeVar("R")


def from_row(record: type[R], row: Row[Any]) -> R:
    """Build ``record`` from a row of its table, by column name (so a select
    with the columns in another order still maps right; a missing or extra
    column is a TypeError, not a silently wrong field)."""
    return record(**row._mapping)


def maybe(record: type[R], row: Row[Any] | None) -> R | None:
    """:func:`from_row`, or None when the query found no row."""
    return None if row is None else from_row(record, row)


@dataclass(frozen=True, slots=True)
class Run:
    """An agent run (table ``runs``), with the engine's lease bookkeeping."""

    id: str
    account_id: str
    mode: str
    machine_id: str
    status: str
    task: str
    cua_version: str
    instructions: str | None
    system_prompt: str | None
    model: str | None
    brain: str
    max_steps: int
    deadline_seconds: int | None
    deadline_at: datetime | None
    on_awaiting_human: str
    awaiting_human_timeout_seconds: int | None
    awaiting_human_reason: str | None
    awaiting_human_since: datetime | None
    webhook_url: str | None
    webhook_secret_sealed: str | None
    metadata: JSONObject | None
    llm: JSONObject | None  # the non-secret BYOK echo
    steps_completed: int
    credits_charged: int
    cost_cents: int
    input_tokens: int
    output_tokens: int
    result: JSONObject | None
    error: JSONObject | None
    request_id: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    last_seq: int
    claimed_by: str | None
    lease_expires_at: datetime | None
    cancel_requested: bool
    attempts: int
    workflow_run_id: str | None
    cache_creation_input_tokens: int
    cache_read_input_tokens: int


@dataclass(frozen=True, slots=True)
class RunStep:
    """One agent step of a run (table ``run_steps``)."""

    run_id: str
    number: int
    decision: JSONObject
    results: list[JSONObject]
    human_note: str | None
    input_tokens: int
    output_tokens: int
    credits: int
    started_at: datetime
    finished_at: datetime
    cache_creation_input_tokens: int
    cache_read_input_tokens: int


@dataclass(frozen=True, slots=True)
class RunArtifact:
    """A screen or a download of a step (table ``run_artifacts``): where its
    bytes are; a download has its file name and source URL."""

    run_id: str
    step: int
    kind: str
    sha256: str
    content_type: str
    size: int
    width: int | None
    height: int | None
    created_at: datetime
    name: str | None = None
    source_url: str | None = None


@dataclass(frozen=True, slots=True)
class Machine:
    """A machine (table ``machines``): owner, shape, where its agent listens,
    and its runtime metering."""

    id: str
    account_id: str
    mode: str
    display_name: str
    status: str
    os_type: str
    desktop_enabled: bool
    cpu_cores: int
    memory_gb: int
    storage_gb: int
    metadata: JSONObject
    ttl_minutes: int | None
    auto_destroy_at: datetime | None
    provider: str  # local | remote
    agent_url: str | None
    agent_token_sealed: str | None
    error: str | None
    created_at: datetime
    started_at: datetime | None
    terminated_at: datetime | None
    kind: str
    stopped_at: datetime | None
    last_active_at: datetime | None
    billing_since: datetime | None
    billing_carry: int  # millicredits
    billing_segments: int
    credits_billed: int
    suspended_for_billing: bool


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A saved machine disk (table ``machine_snapshots``)."""

    id: str
    account_id: str
    mode: str
    machine_id: str
    name: str
    kind: str
    path: str
    size_bytes: int
    credits_charged: int
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Workflow:
    """A workflow at its current version (table ``workflows``)."""

    id: str
    account_id: str
    mode: str
    slug: str
    name: str
    description: str | None
    status: str  # active | archived
    version: int
    definition: JSONObject
    inputs_schema: JSONObject | None
    metadata: JSONObject | None
    request_id: str | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class WorkflowVersion:
    """One version of a workflow (table ``workflow_versions``)."""

    workflow_id: str
    version: int
    definition: JSONObject
    inputs_schema: JSONObject | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class WorkflowRun:
    """A workflow run (table ``workflow_runs``), with the lease bookkeeping."""

    id: str
    account_id: str
    mode: str
    workflow_id: str | None  # None: an ad-hoc run
    workflow_version: int | None
    status: str
    definition: JSONObject  # the definition it runs (a snapshot)
    inputs: JSONObject
    machine_id: str | None
    model: str | None
    llm: JSONObject | None
    output: JSONValue  # whatever the definition's output template renders
    error: JSONObject | None
    awaiting_human_reason: str | None
    awaiting_step_id: str | None
    awaiting_step_key: str | None
    awaiting_human_since: datetime | None
    awaiting_timeout_at: datetime | None
    iterations_used: int
    spent_cents: int
    budget_cents: int | None
    max_iterations: int | None
    deadline_seconds: int | None
    deadline_at: datetime | None
    webhook_url: str | None
    webhook_secret_sealed: str | None
    metadata: JSONObject | None
    request_id: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    last_seq: int
    claimed_by: str | None
    lease_expires_at: datetime | None
    cancel_requested: bool
    attempts: int


@dataclass(frozen=True, slots=True)
class WorkflowStep:
    """The interpreter's state of one step execution (table ``workflow_steps``),
    keyed by its path in the run."""

    workflow_run_id: str
    key: str
    step_id: str
    type: str
    status: str
    child_run_id: str | None
    data: JSONObject | None
    wake_at: datetime | None
    started_at: datetime
    finished_at: datetime | None


@dataclass(frozen=True, slots=True)
class Session:
    """A stateful inference session (table ``inference_sessions``)."""

    id: str
    account_id: str
    mode: str
    cua_version: str
    model: str | None
    screen_width: int
    screen_height: int
    max_trajectory_length: int
    system_prompt: str | None
    instructions: str | None
    tools: list[str] | None
    metadata: JSONObject | None
    llm: JSONObject | None
    key_sealed: str | None
    trajectory: list[JSONObject]
    step_count: int
    total_credits: int
    input_tokens: int
    output_tokens: int
    created_at: datetime
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class Schedule:
    """A schedule (table ``schedules``): what it runs, when, and its counters."""

    id: str
    account_id: str
    mode: str
    name: str
    machine_id: str
    task_prompt: str
    frequency: str
    cron: str
    timezone: str
    time: str | None
    day_of_week: int | None
    day_of_month: int | None
    run_at: datetime | None
    enabled: bool
    next_run_at: datetime | None
    last_run_at: datetime | None
    run_count: int
    consecutive_failures: int
    max_consecutive_failures: int
    paused_reason: str | None
    metadata: dict[str, str] | None
    llm: JSONObject | None  # the non-secret BYOK preference
    request_id: str | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class ScheduleRun:
    """One firing (table ``schedule_runs``)."""

    id: str
    schedule_id: str
    account_id: str
    mode: str
    run_id: str | None
    status: str
    trigger: str
    error: str | None
    context: JSONObject | None
    depth: int
    executed_at: datetime


@dataclass(frozen=True, slots=True)
class Trigger:
    """A webhook or chain trigger of a schedule (table ``schedule_triggers``)."""

    id: str
    schedule_id: str
    account_id: str
    mode: str
    kind: str
    enabled: bool
    source_schedule_id: str | None
    event: str | None
    pass_output: bool
    rate_limit_per_minute: int
    webhook_id: str | None
    secret_sealed: str | None
    created_at: datetime
