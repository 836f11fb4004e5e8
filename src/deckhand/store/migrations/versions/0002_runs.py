"""machines, runs, steps, events, ledger, webhook outbox

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

from deckhand.store.types import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('webhook_deliveries',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('account_id', sa.String(length=64), nullable=False),
    sa.Column('run_id', sa.String(length=36), nullable=True),
    sa.Column('url', sa.String(length=2048), nullable=False),
    sa.Column('event_type', sa.String(length=64), nullable=False),
    sa.Column('payload', sa.Text(), nullable=False),
    sa.Column('secret_sealed', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), server_default='0', nullable=False),
    sa.Column('next_attempt_at', UTCDateTime(), nullable=True),
    sa.Column('claimed_until', UTCDateTime(), nullable=True),
    sa.Column('last_status_code', sa.Integer(), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('created_at', UTCDateTime(), nullable=False),
    sa.Column('delivered_at', UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_webhook_due', 'webhook_deliveries', ['status', 'next_attempt_at'], unique=False)
    op.create_table('ledger_entries',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('account_id', sa.String(length=64), nullable=False),
    sa.Column('mode', sa.String(length=8), nullable=False),
    sa.Column('run_id', sa.String(length=36), nullable=True),
    sa.Column('step', sa.Integer(), nullable=True),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('credits', sa.BigInteger(), nullable=False),
    sa.Column('balance_after', sa.BigInteger(), nullable=True),
    sa.Column('created_at', UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('run_id', 'step', 'kind', name='uq_ledger_run_step')
    )
    op.create_index('ix_ledger_account', 'ledger_entries', ['account_id', 'created_at'], unique=False)
    op.create_table('machines',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('account_id', sa.String(length=64), nullable=False),
    sa.Column('mode', sa.String(length=8), nullable=False),
    sa.Column('display_name', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('os_type', sa.String(length=16), server_default='linux', nullable=False),
    sa.Column('desktop_enabled', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('cpu_cores', sa.Integer(), server_default='1', nullable=False),
    sa.Column('memory_gb', sa.Integer(), server_default='2', nullable=False),
    sa.Column('storage_gb', sa.Integer(), server_default='10', nullable=False),
    sa.Column('metadata', sa.JSON(), nullable=False),
    sa.Column('ttl_minutes', sa.Integer(), nullable=True),
    sa.Column('auto_destroy_at', UTCDateTime(), nullable=True),
    sa.Column('provider', sa.String(length=16), nullable=False),
    sa.Column('agent_url', sa.String(length=512), nullable=True),
    sa.Column('agent_token_sealed', sa.Text(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('created_at', UTCDateTime(), nullable=False),
    sa.Column('started_at', UTCDateTime(), nullable=True),
    sa.Column('terminated_at', UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_machines_account', 'machines', ['account_id', 'mode', 'created_at'], unique=False)
    op.create_table('runs',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('account_id', sa.String(length=64), nullable=False),
    sa.Column('mode', sa.String(length=8), nullable=False),
    sa.Column('machine_id', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('task', sa.Text(), nullable=False),
    sa.Column('cua_version', sa.String(length=4), nullable=False),
    sa.Column('instructions', sa.Text(), nullable=True),
    sa.Column('system_prompt', sa.Text(), nullable=True),
    sa.Column('model', sa.String(length=512), nullable=True),
    sa.Column('brain', sa.String(length=32), nullable=False),
    sa.Column('max_steps', sa.Integer(), nullable=False),
    sa.Column('deadline_seconds', sa.Integer(), nullable=True),
    sa.Column('deadline_at', UTCDateTime(), nullable=True),
    sa.Column('on_awaiting_human', sa.String(length=8), nullable=False),
    sa.Column('awaiting_human_timeout_seconds', sa.Integer(), nullable=True),
    sa.Column('awaiting_human_reason', sa.Text(), nullable=True),
    sa.Column('awaiting_human_since', UTCDateTime(), nullable=True),
    sa.Column('webhook_url', sa.String(length=2048), nullable=True),
    sa.Column('webhook_secret_sealed', sa.Text(), nullable=True),
    sa.Column('metadata', sa.JSON(), nullable=True),
    sa.Column('llm', sa.JSON(), nullable=True),
    sa.Column('steps_completed', sa.Integer(), server_default='0', nullable=False),
    sa.Column('credits_charged', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('cost_cents', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('input_tokens', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('output_tokens', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('result', sa.JSON(), nullable=True),
    sa.Column('error', sa.JSON(), nullable=True),
    sa.Column('request_id', sa.String(length=64), nullable=True),
    sa.Column('created_at', UTCDateTime(), nullable=False),
    sa.Column('started_at', UTCDateTime(), nullable=True),
    sa.Column('finished_at', UTCDateTime(), nullable=True),
    sa.Column('last_seq', sa.Integer(), server_default='0', nullable=False),
    sa.Column('claimed_by', sa.String(length=128), nullable=True),
    sa.Column('lease_expires_at', UTCDateTime(), nullable=True),
    sa.Column('cancel_requested', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('attempts', sa.Integer(), server_default='0', nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_runs_account', 'runs', ['account_id', 'mode', 'created_at'], unique=False)
    op.create_index('ix_runs_status', 'runs', ['status', 'lease_expires_at'], unique=False)
    op.create_table('webhook_attempts',
    sa.Column('delivery_id', sa.String(length=40), nullable=False),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('attempted_at', UTCDateTime(), nullable=False),
    sa.Column('status_code', sa.Integer(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('duration_ms', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['delivery_id'], ['webhook_deliveries.id'], ),
    sa.PrimaryKeyConstraint('delivery_id', 'attempt')
    )
    op.create_table('run_events',
    sa.Column('run_id', sa.String(length=36), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('type', sa.String(length=32), nullable=False),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.Column('created_at', UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], ),
    sa.PrimaryKeyConstraint('run_id', 'seq')
    )
    op.create_table('run_steps',
    sa.Column('run_id', sa.String(length=36), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('decision', sa.JSON(), nullable=False),
    sa.Column('results', sa.JSON(), nullable=False),
    sa.Column('human_note', sa.Text(), nullable=True),
    sa.Column('input_tokens', sa.Integer(), server_default='0', nullable=False),
    sa.Column('output_tokens', sa.Integer(), server_default='0', nullable=False),
    sa.Column('credits', sa.Integer(), server_default='0', nullable=False),
    sa.Column('started_at', UTCDateTime(), nullable=False),
    sa.Column('finished_at', UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], ),
    sa.PrimaryKeyConstraint('run_id', 'number')
    )


def downgrade() -> None:
    op.drop_table('run_steps')
    op.drop_table('run_events')
    op.drop_table('webhook_attempts')
    op.drop_index('ix_runs_status', table_name='runs')
    op.drop_index('ix_runs_account', table_name='runs')
    op.drop_table('runs')
    op.drop_index('ix_machines_account', table_name='machines')
    op.drop_table('machines')
    op.drop_index('ix_ledger_account', table_name='ledger_entries')
    op.drop_table('ledger_entries')
    op.drop_index('ix_webhook_due', table_name='webhook_deliveries')
    op.drop_table('webhook_deliveries')
