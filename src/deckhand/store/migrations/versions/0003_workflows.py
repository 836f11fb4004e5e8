"""workflows, their versions, workflow runs, their events and step states;
runs.workflow_run_id

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

from deckhand.store.types import UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "workflows",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("account_id", sa.String(64), sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("mode", sa.String(8), nullable=False),
        sa.Column("slug", sa.String(64), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("description", sa.Text, nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("definition", sa.JSON, nullable=False),
        sa.Column("inputs_schema", sa.JSON, nullable=True),
        sa.Column("metadata", sa.JSON, nullable=True),
        sa.Column("request_id", sa.String(64), nullable=True),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.UniqueConstraint("account_id", "mode", "slug", name="uq_workflows_slug"),
    )
    op.create_index("ix_workflows_account", "workflows", ["account_id", "mode", "created_at"])
    op.create_table(
        "workflow_versions",
        sa.Column("workflow_id", sa.String(36), sa.ForeignKey("workflows.id"), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("definition", sa.JSON, nullable=False),
        sa.Column("inputs_schema", sa.JSON, nullable=True),
        sa.Column("created_at", UTCDateTime, nullable=False),
    )
    op.create_table(
        "workflow_runs",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("account_id", sa.String(64), sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("mode", sa.String(8), nullable=False),
        sa.Column("workflow_id", sa.String(36), nullable=True),
        sa.Column("workflow_version", sa.Integer, nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("definition", sa.JSON, nullable=False),
        sa.Column("inputs", sa.JSON, nullable=False),
        sa.Column("machine_id", sa.String(128), nullable=True),
        sa.Column("model", sa.String(512), nullable=True),
        sa.Column("output", sa.JSON, nullable=True),
        sa.Column("error", sa.JSON, nullable=True),
        sa.Column("awaiting_human_reason", sa.Text, nullable=True),
        sa.Column("awaiting_step_id", sa.String(64), nullable=True),
        sa.Column("awaiting_step_key", sa.String(1024), nullable=True),
        sa.Column("awaiting_human_since", UTCDateTime, nullable=True),
        sa.Column("awaiting_timeout_at", UTCDateTime, nullable=True),
        sa.Column("iterations_used", sa.Integer, nullable=False, server_default="0"),
        sa.Column("spent_cents", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("budget_cents", sa.BigInteger, nullable=True),
        sa.Column("max_iterations", sa.Integer, nullable=True),
        sa.Column("deadline_seconds", sa.Integer, nullable=True),
        sa.Column("deadline_at", UTCDateTime, nullable=True),
        sa.Column("webhook_url", sa.String(2048), nullable=True),
        sa.Column("webhook_secret_sealed", sa.Text, nullable=True),
        sa.Column("metadata", sa.JSON, nullable=True),
        sa.Column("request_id", sa.String(64), nullable=True),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("started_at", UTCDateTime, nullable=True),
        sa.Column("finished_at", UTCDateTime, nullable=True),
        sa.Column("last_seq", sa.Integer, nullable=False, server_default="0"),
        sa.Column("claimed_by", sa.String(128), nullable=True),
        sa.Column("lease_expires_at", UTCDateTime, nullable=True),
        sa.Column("cancel_requested", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    )
    op.create_index("ix_workflow_runs_account", "workflow_runs",
                    ["account_id", "mode", "created_at"])
    op.create_index("ix_workflow_runs_status", "workflow_runs", ["status", "lease_expires_at"])
    op.create_index("ix_workflow_runs_workflow", "workflow_runs", ["workflow_id", "created_at"])
    op.create_table(
        "workflow_run_events",
        sa.Column("workflow_run_id", sa.String(36), sa.ForeignKey("workflow_runs.id"),
                  primary_key=True),
        sa.Column("seq", sa.Integer, primary_key=True),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("data", sa.JSON, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
    )
    op.create_table(
        "workflow_steps",
        sa.Column("workflow_run_id", sa.String(36), sa.ForeignKey("workflow_runs.id"),
                  primary_key=True),
        sa.Column("key", sa.String(1024), primary_key=True),
        sa.Column("step_id", sa.String(64), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("child_run_id", sa.String(36), nullable=True),
        sa.Column("data", sa.JSON, nullable=True),
        sa.Column("wake_at", UTCDateTime, nullable=True),
        sa.Column("started_at", UTCDateTime, nullable=False),
        sa.Column("finished_at", UTCDateTime, nullable=True),
    )
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("workflow_run_id", sa.String(36), nullable=True))
    op.create_index("ix_runs_workflow_run", "runs", ["workflow_run_id"])


def downgrade() -> None:
    op.drop_index("ix_runs_workflow_run", table_name="runs")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("workflow_run_id")
    op.drop_table("workflow_steps")
    op.drop_table("workflow_run_events")
    op.drop_index("ix_workflow_runs_workflow", table_name="workflow_runs")
    op.drop_index("ix_workflow_runs_status", table_name="workflow_runs")
    op.drop_index("ix_workflow_runs_account", table_name="workflow_runs")
    op.drop_table("workflow_runs")
    op.drop_table("workflow_versions")
    op.drop_index("ix_workflows_account", table_name="workflows")
    op.drop_table("workflows")
