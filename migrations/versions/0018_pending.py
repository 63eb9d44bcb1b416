"""pending: the auto-close clock of Pending tickets, and the follow-up notification kind

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-03 10:00:00

``ticket.pending_since`` is when the agent last set (or renewed) Pending; it is NULL
whenever a ticket is not Pending. Two indexes (status, then the timer) let the sweeps read
an index range of exactly the Pending tickets that are due (``app.tickets.pending``). Tickets already Pending when
this runs get their last change as the start of the wait, so none lingers forever.
The notification kinds gain ``follow_up_due`` (a Pending ticket reached its follow-up date).
"""
from alembic import op
import sqlalchemy as sa
from app.models.types import UTCDateTime

# revision identifiers, used by Alembic.
revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None

OLD_KINDS = ("new_ticket", "assigned", "customer_wrote", "mentioned", "task_due", "reply_failed")
NEW_KINDS = OLD_KINDS + ("follow_up_due",)


def _check(kinds):
    return "kind IN ({})".format(", ".join(f"'{k}'" for k in kinds))


def _kinds(kinds):
    for table in ("notification", "notification_preference"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_constraint(op.f(f'ck_{table}_kind_known'), type_='check')
            batch_op.create_check_constraint(op.f(f'ck_{table}_kind_known'), _check(kinds))


def upgrade():
    with op.batch_alter_table('ticket', schema=None) as batch_op:
        batch_op.add_column(sa.Column('pending_since', UTCDateTime(), nullable=True))
        batch_op.create_index('ix_ticket_pending_due', ['status', 'pending_until'], unique=False)
        batch_op.create_index('ix_ticket_pending_wait', ['status', 'pending_since'], unique=False)
    op.execute("UPDATE ticket SET pending_since = updated_at WHERE status = 'pending'")
    _kinds(NEW_KINDS)


def downgrade():
    for table in ("notification", "notification_preference"):
        op.execute(f"DELETE FROM {table} WHERE kind = 'follow_up_due'")
    _kinds(OLD_KINDS)
    with op.batch_alter_table('ticket', schema=None) as batch_op:
        batch_op.drop_index('ix_ticket_pending_wait')
        batch_op.drop_index('ix_ticket_pending_due')
        batch_op.drop_column('pending_since')
