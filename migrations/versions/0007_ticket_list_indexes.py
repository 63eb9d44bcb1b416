"""ticket list indexes end in updated_at; no lone indexes on priority and dispatch flag

Without statistics SQLite's planner takes an equality on any indexed column to match
about ten rows. ix_ticket_priority (four values) and ix_ticket_waiting_for_dispatch (two)
then won over reading ix_ticket_updated_at in order: a priority filter read and sorted a
quarter of the desk, the filtered list counted through it, the dispatcher list sorted a
fifth. Each replacement leads with the filtered column and ends in updated_at, so a list
page comes off the index in order whatever the statistics say.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 03:00:00

"""
from alembic import op

# revision identifiers, used by Alembic.
revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('ticket', schema=None) as batch_op:
        batch_op.drop_index('ix_ticket_assignee_status')
        batch_op.drop_index(batch_op.f('ix_ticket_priority'))
        batch_op.drop_index(batch_op.f('ix_ticket_waiting_for_dispatch'))
        batch_op.create_index(
            'ix_ticket_assignee_status_updated', ['assignee_id', 'status', 'updated_at'], unique=False
        )
        batch_op.create_index('ix_ticket_priority_updated', ['priority', 'updated_at'], unique=False)
        batch_op.create_index(
            'ix_ticket_dispatch_updated', ['waiting_for_dispatch', 'updated_at'], unique=False
        )


def downgrade():
    with op.batch_alter_table('ticket', schema=None) as batch_op:
        batch_op.drop_index('ix_ticket_dispatch_updated')
        batch_op.drop_index('ix_ticket_priority_updated')
        batch_op.drop_index('ix_ticket_assignee_status_updated')
        batch_op.create_index(
            batch_op.f('ix_ticket_waiting_for_dispatch'), ['waiting_for_dispatch'], unique=False
        )
        batch_op.create_index(batch_op.f('ix_ticket_priority'), ['priority'], unique=False)
        batch_op.create_index('ix_ticket_assignee_status', ['assignee_id', 'status'], unique=False)
