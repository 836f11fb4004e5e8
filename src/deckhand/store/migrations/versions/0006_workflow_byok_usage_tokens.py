"""workflow runs' BYOK echo and key snapshot; tokens in the usage counters

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

from deckhand.store.types import UTCDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("workflow_runs") as batch:
        batch.add_column(sa.Column("llm", sa.JSON(), nullable=True))
    op.create_table(
        "workflow_run_llm_keys",
        sa.Column("workflow_run_id", sa.String(length=36), nullable=False),
        sa.Column("key_sealed", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["workflow_run_id"], ["workflow_runs.id"]),
        sa.PrimaryKeyConstraint("workflow_run_id"),
    )
    with op.batch_alter_table("usage_counters") as batch:
        batch.add_column(sa.Column("input_tokens", sa.BigInteger(), server_default="0",
                                   nullable=False))
        batch.add_column(sa.Column("output_tokens", sa.BigInteger(), server_default="0",
                                   nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("usage_counters") as batch:
        batch.drop_column("output_tokens")
        batch.drop_column("input_tokens")
    op.drop_table("workflow_run_llm_keys")
    with op.batch_alter_table("workflow_runs") as batch:
        batch.drop_column("llm")
