"""schedules, their firings, triggers and webhook receipts

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

from deckhand.store.types import UTCDateTime

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "schedules",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("account_id", sa.String(64), sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("mode", sa.String(8), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("machine_id", sa.String(64), nullable=False),
        sa.Column("task_prompt", sa.Text(), nullable=False),
        sa.Column("frequency", sa.String(32), nullable=False),
        sa.Column("cron", sa.String(128), nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("time", sa.String(5), nullable=True),
        sa.Column("day_of_week", sa.Integer(), nullable=True),
        sa.Column("day_of_month", sa.Integer(), nullable=True),
        sa.Column("run_at", UTCDateTime(), nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("next_run_at", UTCDateTime(), nullable=True),
        sa.Column("last_run_at", UTCDateTime(), nullable=True),
        sa.Column("run_count", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("consecutive_failures", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("max_consecutive_failures", sa.Integer(), nullable=False),
        sa.Column("paused_reason", sa.Text(), nullable=True),
        sa.Column("metadata", sa.JSON(), nullable=True),
        sa.Column("llm", sa.JSON(), nullable=True),
        sa.Column("request_id", sa.String(64), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_schedules_due", "schedules", ["enabled", "next_run_at"])
    op.create_index("ix_schedules_account", "schedules", ["account_id", "mode", "created_at"])
    op.create_table(
        "schedule_runs",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("schedule_id", sa.String(64), sa.ForeignKey("schedules.id"), nullable=False),
        sa.Column("account_id", sa.String(64), nullable=False),
        sa.Column("mode", sa.String(8), nullable=False),
        sa.Column("run_id", sa.String(36), nullable=True),
        sa.Column("status", sa.String(24), nullable=False),
        sa.Column("trigger", sa.String(16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("context", sa.JSON(), nullable=True),
        sa.Column("depth", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("executed_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_schedule_runs_schedule", "schedule_runs", ["schedule_id", "executed_at"])
    op.create_index("ix_schedule_runs_run", "schedule_runs", ["run_id"])
    op.create_index("ix_schedule_runs_status", "schedule_runs", ["status"])
    op.create_table(
        "schedule_triggers",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("schedule_id", sa.String(64), sa.ForeignKey("schedules.id"), nullable=False),
        sa.Column("account_id", sa.String(64), nullable=False),
        sa.Column("mode", sa.String(8), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("source_schedule_id", sa.String(64), nullable=True),
        sa.Column("event", sa.String(16), nullable=True),
        sa.Column("pass_output", sa.Boolean(), nullable=False),
        sa.Column("rate_limit_per_minute", sa.Integer(), nullable=False),
        sa.Column("webhook_id", sa.String(56), nullable=True, unique=True),
        sa.Column("secret_sealed", sa.Text(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_schedule_triggers_schedule", "schedule_triggers", ["schedule_id"])
    op.create_index("ix_schedule_triggers_source", "schedule_triggers", ["source_schedule_id"])
    op.create_table(
        "webhook_receipts",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("trigger_id", sa.String(40), nullable=False),
        sa.Column("body_hash", sa.String(64), nullable=False),
        sa.Column("run_id", sa.String(36), nullable=True),
        sa.Column("received_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_webhook_receipts_trigger", "webhook_receipts",
                    ["trigger_id", "received_at"])


def downgrade() -> None:
    op.drop_table("webhook_receipts")
    op.drop_table("schedule_triggers")
    op.drop_table("schedule_runs")
    op.drop_table("schedules")
