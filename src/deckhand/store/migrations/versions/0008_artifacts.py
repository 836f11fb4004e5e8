"""run_artifacts: every step's screens, pointing at the artifact store

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

from deckhand.store.types import UTCDateTime

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "run_artifacts",
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("content_type", sa.String(length=64), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("width", sa.Integer(), nullable=True),
        sa.Column("height", sa.Integer(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"]),
        sa.PrimaryKeyConstraint("run_id", "step", "kind"),
    )
    op.create_index("ix_run_artifacts_sha256", "run_artifacts", ["sha256"])
    op.create_index("ix_run_artifacts_created", "run_artifacts", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_run_artifacts_created", table_name="run_artifacts")
    op.drop_index("ix_run_artifacts_sha256", table_name="run_artifacts")
    op.drop_table("run_artifacts")
