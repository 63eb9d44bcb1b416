"""escalation: SLA escalation records, partial indexes on the open tickets' due columns, and
the notification kind ``sla_escalation``

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-02 17:00:00

``sla_escalation`` holds one row per ticket, target (first response, resolution) and level
(0 warning, 1 supervisor, 2 one level up); its unique constraint makes each level happen
once, however many sweeps run. ``ix_ticket_sla_first_response_open`` and
``ix_ticket_sla_resolution_open`` are partial indexes over the tickets whose clock runs, so
the sweep reads an index range of what is due. The notification kind checks gain
``sla_escalation``.
"""
from alembic import op
import sqlalchemy as sa
from app.models.types import UTCDateTime

# revision identifiers, used by Alembic.
revision = '0021'
down_revision = '0020'
branch_labels = None
depends_on = None

TICKET_OPEN_SQL = "status NOT IN ('resolved', 'closed')"
FIRST_RESPONSE_OPEN_SQL = f"first_responded_at IS NULL AND {TICKET_OPEN_SQL}"

OLD_KINDS = (
    "new_ticket",
    "assigned",
    "customer_wrote",
    "mentioned",
    "task_due",
    "reply_failed",
    "follow_up_due",
)
NEW_KINDS = OLD_KINDS + ("sla_escalation",)


def _kind_check(kinds):
    return "kind IN ({})".format(", ".join(f"'{k}'" for k in kinds))


def _set_kinds(kinds):
    for table in ('notification', 'notification_preference'):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_constraint(op.f(f'ck_{table}_kind_known'), type_='check')
            batch_op.create_check_constraint('kind_known', _kind_check(kinds))


def upgrade():
    op.create_table('sla_escalation',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('ticket_id', sa.Integer(), nullable=False),
    sa.Column('target', sa.String(length=16), nullable=False),
    sa.Column('level', sa.Integer(), nullable=False),
    sa.Column('due_at', UTCDateTime(), nullable=False),
    sa.Column('detected_at', UTCDateTime(), nullable=False),
    sa.Column('notify_at', UTCDateTime(), nullable=False),
    sa.Column('at_once', sa.Boolean(), nullable=False),
    sa.Column('recipient_id', sa.Integer(), nullable=True),
    sa.Column('recipient_address', sa.String(length=254), nullable=True),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('done_at', UTCDateTime(), nullable=True),
    sa.Column('next_level_at', UTCDateTime(), nullable=True),
    sa.CheckConstraint("target IN ('first_response', 'resolution')", name=op.f('ck_sla_escalation_sla_escalation_target_known')),
    sa.CheckConstraint("status IN ('pending', 'sent', 'skipped', 'unrouted')", name=op.f('ck_sla_escalation_sla_escalation_status_known')),
    sa.CheckConstraint('level BETWEEN 0 AND 2', name=op.f('ck_sla_escalation_sla_escalation_level_range')),
    sa.ForeignKeyConstraint(['recipient_id'], ['user.id'], name=op.f('fk_sla_escalation_recipient_id_user'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['ticket_id'], ['ticket.id'], name=op.f('fk_sla_escalation_ticket_id_ticket'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sla_escalation')),
    sa.UniqueConstraint('ticket_id', 'target', 'level', name='uq_sla_escalation_level')
    )
    with op.batch_alter_table('sla_escalation', schema=None) as batch_op:
        batch_op.create_index('ix_sla_escalation_status_notify', ['status', 'notify_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_sla_escalation_next_level_at'), ['next_level_at'], unique=False)

    with op.batch_alter_table('ticket', schema=None) as batch_op:
        batch_op.create_index('ix_ticket_sla_first_response_open', ['first_response_due_at'], unique=False,
                              sqlite_where=sa.text(FIRST_RESPONSE_OPEN_SQL),
                              postgresql_where=sa.text(FIRST_RESPONSE_OPEN_SQL))
        batch_op.create_index('ix_ticket_sla_resolution_open', ['resolution_due_at'], unique=False,
                              sqlite_where=sa.text(TICKET_OPEN_SQL),
                              postgresql_where=sa.text(TICKET_OPEN_SQL))

    _set_kinds(NEW_KINDS)


def downgrade():
    op.execute("DELETE FROM notification WHERE kind = 'sla_escalation'")
    op.execute("DELETE FROM notification_preference WHERE kind = 'sla_escalation'")
    _set_kinds(OLD_KINDS)
    with op.batch_alter_table('ticket', schema=None) as batch_op:
        batch_op.drop_index('ix_ticket_sla_resolution_open')
        batch_op.drop_index('ix_ticket_sla_first_response_open')
    with op.batch_alter_table('sla_escalation', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sla_escalation_next_level_at'))
        batch_op.drop_index('ix_sla_escalation_status_notify')
    op.drop_table('sla_escalation')
