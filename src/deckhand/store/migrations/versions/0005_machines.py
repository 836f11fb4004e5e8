"""machines: kinds, lifecycle times, runtime metering, snapshots

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

from deckhand.store.types import UTCDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("machines") as batch:
        batch.add_column(sa.Column("kind", sa.String(length=16), server_default="terminal",
                                   nullable=False))
        batch.add_column(sa.Column("stopped_at", UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("last_active_at", UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("billing_since", UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("billing_carry", sa.BigInteger(), server_default="0",
                                   nullable=False))
        batch.add_column(sa.Column("billing_segments", sa.Integer(), server_default="0",
                                   nullable=False))
        batch.add_column(sa.Column("credits_billed", sa.BigInteger(), server_default="0",
                                   nullable=False))
        batch.add_column(sa.Column("suspended_for_billing", sa.Boolean(),
                                   server_default=sa.false(), nullable=False))
    op.create_table(
        "machine_snapshots",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("mode", sa.String(length=8), nullable=False),
        sa.Column("machine_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("credits_charged", sa.Integer(), server_default="0", nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_machine_snapshots_account", "machine_snapshots",
                    ["account_id", "mode", "created_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_machine_snapshots_account", table_name="machine_snapshots")
    op.drop_table("machine_snapshots")
    with op.batch_alter_table("machines") as batch:
        for name in ("suspended_for_billing", "credits_billed", "billing_segments",
                     "billing_carry", "billing_since", "last_active_at", "stopped_at", "kind"):
            batch.drop_column(name)
