"""a run's downloads: files the browser saved, kept as run artifacts with
their file name (kind "download-<i>", i counting a step's downloads)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("run_artifacts") as batch:
        batch.add_column(sa.Column("name", sa.String(255), nullable=True))
        batch.add_column(sa.Column("source_url", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("run_artifacts") as batch:
        batch.drop_column("source_url")
        batch.drop_column("name")
