"""The store's records: one frozen dataclass per table it returns rows of,
with a field for every column (so a new column without a field fails here),
nullable exactly where the column is, and real values after a round trip
through SQLite."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Table, select

from deckhand.store import accounts as accounts_store
from deckhand.store import machines as machines_store
from deckhand.store import runs as runs_store
from deckhand.store import tables
from deckhand.store.accounts import Account
from deckhand.store.db import Database
from deckhand.store.records import (
    Machine,
    Run,
    RunArtifact,
    RunStep,
    Schedule,
    ScheduleRun,
    Session,
    Snapshot,
    Trigger,
    Workflow,
    WorkflowRun,
    WorkflowStep,
    WorkflowVersion,
    from_row,
)
from deckhand.store.types import UTCDateTime
from deckhand.store.webhooks import Attempt, Delivery

RECORDS: dict[Table, type[Any]] = {
    tables.accounts: Account,
    tables.runs: Run,
    tables.run_steps: RunStep,
    tables.run_artifacts: RunArtifact,
    tables.machines: Machine,
    tables.machine_snapshots: Snapshot,
    tables.workflows: Workflow,
    tables.workflow_versions: WorkflowVersion,
    tables.workflow_runs: WorkflowRun,
    tables.workflow_steps: WorkflowStep,
    tables.inference_sessions: Session,
    tables.webhook_deliveries: Delivery,
    tables.webhook_attempts: Attempt,
    tables.schedules: Schedule,
    tables.schedule_runs: ScheduleRun,
    tables.schedule_triggers: Trigger,
}
# Tables whose rows the store never hands out whole: only counts, sums, a
# sealed key or an Event (seq, type, data) are read from them.
NOT_RETURNED = {"usage_counters", "ledger_entries", "run_events", "workflow_run_events",
                "run_llm_keys", "workflow_run_llm_keys", "webhook_receipts"}
# Records that leave a column out on purpose, and why.
LEFT_OUT = {
    "api_keys": {"key_hash"},  # the HMAC of the key: only looked up, never handed out
    "idempotency_records": {"account_id", "mode", "expires_at"},  # the lookup key and TTL
    "llm_keys": {"account_id"},  # always read for one account
}

CASES = sorted(RECORDS.items(), key=lambda item: item[0].name)
IDS = [t.name for t, _ in CASES]


def _blank(record: type[Any]) -> Any:
    return record(**{f.name: None for f in dataclasses.fields(record)})


def test_every_table_is_returned_as_a_record_or_listed_as_never_returned() -> None:
    from deckhand.store.idempotency import IdempotencyRecord
    from deckhand.store.keys import ApiKey
    from deckhand.store.llm_keys import StoredKey

    named = {t.name for t in RECORDS} | NOT_RETURNED | set(LEFT_OUT)
    assert named == set(tables.metadata.tables)
    partial = {"api_keys": ApiKey, "idempotency_records": IdempotencyRecord,
               "llm_keys": StoredKey}
    for name, record in partial.items():
        columns = {c.name for c in tables.metadata.tables[name].c}
        assert {f.name for f in dataclasses.fields(record)} == columns - LEFT_OUT[name]


@pytest.mark.parametrize(("table", "record"), CASES, ids=IDS)
def test_a_record_has_a_field_per_column_in_the_tables_order(table: Table,
                                                             record: type[Any]) -> None:
    assert [f.name for f in dataclasses.fields(record)] == [c.name for c in table.c]


@pytest.mark.parametrize(("table", "record"), CASES, ids=IDS)
def test_a_field_is_optional_exactly_where_its_column_is_nullable(table: Table,
                                                                  record: type[Any]) -> None:
    annotations = {f.name: str(f.type) for f in dataclasses.fields(record)}
    for column in table.c:
        hint = annotations[column.name]
        optional = "None" in hint or hint == "JSONValue"
        assert optional == (column.nullable and not column.primary_key), (column.name, hint)
        if isinstance(column.type, UTCDateTime):
            assert hint.startswith("datetime"), (column.name, hint)


@pytest.mark.parametrize(("table", "record"), CASES, ids=IDS)
def test_a_record_is_frozen(table: Table, record: type[Any]) -> None:
    value = _blank(record)
    for field in dataclasses.fields(record):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(value, field.name, "changed")
        assert getattr(value, field.name) is None


def _partial_records() -> list[type[Any]]:
    from deckhand.store.idempotency import IdempotencyRecord
    from deckhand.store.keys import ApiKey
    from deckhand.store.llm_keys import StoredKey

    return [ApiKey, IdempotencyRecord, StoredKey]


@pytest.mark.parametrize("record", [r for _, r in CASES] + _partial_records(),
                         ids=lambda r: r.__name__)
def test_a_record_is_frozen_and_has_slots_not_a_dict(record: type[Any]) -> None:
    value = _blank(record)
    assert not hasattr(value, "__dict__")
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(value, dataclasses.fields(record)[0].name, "changed")


# -- a round trip through SQLite ------------------------------------------------------------


@pytest.fixture
def db(sqlite_db: Database) -> Database:
    return sqlite_db


async def _account(db: Database) -> str:
    async with db.write() as conn:
        return (await accounts_store.create(conn, "acme", credits=100)).id


CREATED = datetime(2026, 12, 7, 4, 30, 15, 123456, tzinfo=UTC)


async def test_a_run_round_trips_with_real_types(db: Database) -> None:
    account_id = await _account(db)
    deadline = CREATED.astimezone(UTC) + timedelta(minutes=5)
    async with db.write() as conn:
        await runs_store.insert(conn, {
            "id": "run-1", "account_id": account_id, "mode": "live", "machine_id": "m-1",
            "status": "queued", "task": "open the editor", "cua_version": "v2",
            "brain": "scripted", "max_steps": 7, "on_awaiting_human": "pause",
            "deadline_seconds": 300, "deadline_at": deadline,
            "metadata": {"team": "ops", "tags": ["a", "b"]}, "llm": None,
            "created_at": CREATED,
        })
    async with db.read() as conn:
        run = await runs_store.get(conn, "run-1")
        owned = await runs_store.get_owned(conn, "run-1", account_id, "live")
        page, more = await runs_store.list_owned(conn, account_id, "live", status=None, limit=5)
    assert isinstance(run, Run)
    assert run == owned == page[0] and not more
    assert run.created_at == CREATED and run.created_at.tzinfo == UTC
    assert run.deadline_at == deadline
    assert run.metadata == {"team": "ops", "tags": ["a", "b"]}
    # the server defaults come back as values, not as missing attributes
    assert (run.steps_completed, run.last_seq, run.attempts) == (0, 0, 0)
    assert run.cancel_requested is False and run.claimed_by is None

    async with db.write() as conn:
        fresh = await runs_store.advance(conn, "run-1", owner=None, seqs=3, status="running")
    assert isinstance(fresh, Run)
    assert (fresh.status, fresh.last_seq) == ("running", 3)
    assert run.status == "queued"  # the record read before is a value, untouched
    async with db.read() as conn:
        assert await runs_store.get(conn, "run-1") == fresh
        assert await runs_store.get(conn, "no-such-run") is None
        some_columns = (await conn.execute(select(tables.runs.c.id, tables.runs.c.status))).one()
    with pytest.raises(TypeError):  # a row missing columns is refused, not half-mapped
        from_row(Run, some_columns)


async def test_a_machine_round_trips_and_is_billed_from_its_record(db: Database) -> None:
    account_id = await _account(db)
    since = CREATED + timedelta(hours=1)
    async with db.write() as conn:
        await machines_store.insert(conn, {
            "id": "m-1", "account_id": account_id, "mode": "live", "display_name": "box",
            "status": "running", "metadata": {"network": "none"}, "provider": "local",
            "created_at": CREATED, "billing_since": CREATED,
        })
    async with db.read() as conn:
        machine = await machines_store.get(conn, "m-1")
        owned = await machines_store.get_owned(conn, "m-1", account_id, "live")
        page, more = await machines_store.list_owned(conn, account_id, "live", limit=5)
        billable = await machines_store.billable(conn, account_id, "live")
    assert isinstance(machine, Machine)
    assert machine == owned == page[0] == billable[0] and not more
    assert machine.billing_since == CREATED and machine.billing_since.tzinfo == UTC
    assert machine.metadata == {"network": "none"}
    assert (machine.desktop_enabled, machine.cpu_cores, machine.kind) == (False, 1, "terminal")

    async with db.write() as conn:
        charged, dry = await machines_store.debit_runtime(conn, machine, credits=30, carry=250,
                                                          since=since)
    async with db.read() as conn:
        billed = await machines_store.get(conn, "m-1")
        left = (await accounts_store.get(conn, account_id)).credits
    assert (charged, dry, left) == (30, False, 70)
    assert billed is not None
    assert (billed.billing_since, billed.billing_carry, billed.billing_segments,
            billed.credits_billed) == (since, 250, 1, 30)
