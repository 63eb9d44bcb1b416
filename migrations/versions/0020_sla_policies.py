"""sla policies: targets per priority (account, category), and the tickets' SLA clocks

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-03 10:00:00

``sla_policy`` holds first-response and resolution targets in business minutes per
priority, optionally narrowed to one account and/or one category, with the pause rule, the
"notify at once" flag and the near-breach threshold. The ticket gets the policy it runs
under (a plain id), the near-breach instants of both targets and the resolution clock's
pause (since when, minutes paused before). The ticket columns are added with plain
``ALTER TABLE ... ADD COLUMN`` (no constraint), so SQLite does not rebuild the table.
"""
from alembic import op
import sqlalchemy as sa
from app.models.types import UTCDateTime

# revision identifiers, used by Alembic.
revision = '0020'
down_revision = '0019'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('sla_policy',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('priority', sa.String(length=10), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=True),
    sa.Column('category_id', sa.Integer(), nullable=True),
    sa.Column('first_response_minutes', sa.Integer(), nullable=False),
    sa.Column('resolution_minutes', sa.Integer(), nullable=False),
    sa.Column('pause_when_waiting', sa.Boolean(), nullable=False),
    sa.Column('notify_at_once', sa.Boolean(), nullable=False),
    sa.Column('warn_percent', sa.SmallInteger(), nullable=False),
    sa.Column('warn_minutes', sa.Integer(), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', UTCDateTime(), nullable=False),
    sa.Column('updated_at', UTCDateTime(), nullable=False),
    sa.CheckConstraint("priority IN ('low', 'normal', 'high', 'urgent')", name=op.f('ck_sla_policy_priority_known')),
    sa.CheckConstraint('first_response_minutes >= 0 AND resolution_minutes >= 0', name=op.f('ck_sla_policy_sla_targets_positive')),
    sa.CheckConstraint('warn_percent BETWEEN 1 AND 99', name=op.f('ck_sla_policy_sla_warn_percent_range')),
    sa.CheckConstraint('warn_minutes IS NULL OR warn_minutes >= 0', name=op.f('ck_sla_policy_sla_warn_minutes_positive')),
    sa.ForeignKeyConstraint(['account_id'], ['account.id'], name=op.f('fk_sla_policy_account_id_account'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['category_id'], ['category.id'], name=op.f('fk_sla_policy_category_id_category'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sla_policy'))
    )
    with op.batch_alter_table('sla_policy', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sla_policy_account_id'), ['account_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_sla_policy_category_id'), ['category_id'], unique=False)
        batch_op.create_index('ix_sla_policy_priority', ['priority', 'active'], unique=False)

    op.add_column('ticket', sa.Column('sla_policy_id', sa.Integer(), nullable=True))
    op.add_column('ticket', sa.Column('first_response_warn_at', UTCDateTime(), nullable=True))
    op.add_column('ticket', sa.Column('resolution_warn_at', UTCDateTime(), nullable=True))
    op.add_column('ticket', sa.Column('sla_paused_at', UTCDateTime(), nullable=True))
    op.add_column('ticket', sa.Column('sla_paused_minutes', sa.Integer(), server_default='0', nullable=False))


def downgrade():
    with op.batch_alter_table('ticket', schema=None) as batch_op:
        batch_op.drop_column('sla_paused_minutes')
        batch_op.drop_column('sla_paused_at')
        batch_op.drop_column('resolution_warn_at')
        batch_op.drop_column('first_response_warn_at')
        batch_op.drop_column('sla_policy_id')
    with op.batch_alter_table('sla_policy', schema=None) as batch_op:
        batch_op.drop_index('ix_sla_policy_priority')
        batch_op.drop_index(batch_op.f('ix_sla_policy_category_id'))
        batch_op.drop_index(batch_op.f('ix_sla_policy_account_id'))
    op.drop_table('sla_policy')
