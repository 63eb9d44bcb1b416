"""gdpr requests: data-subject requests as records, with their action log

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-02 17:35:00

``gdpr_request`` holds one row per data-subject request (type, subject, verification,
received date, legal deadline and its one extension, status, outcome), ``gdpr_action`` what
was done about it. ``uq_gdpr_request_open_per_user`` is a partial unique index: one open
request per portal user and type, so a double submit cannot make two.
"""
from alembic import op
import sqlalchemy as sa
from app.models.types import UTCDateTime

# revision identifiers, used by Alembic.
revision = '0022'
down_revision = '0021'
branch_labels = None
depends_on = None

OPEN_SQL = "subject_user_id IS NOT NULL AND status IN ('received', 'verifying', 'in_progress')"


def upgrade():
    op.create_table('gdpr_request',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('subject_contact_id', sa.Integer(), nullable=True),
    sa.Column('subject_user_id', sa.Integer(), nullable=True),
    sa.Column('subject_email', sa.String(length=254), nullable=False),
    sa.Column('subject_name', sa.String(length=200), nullable=True),
    sa.Column('ticket_id', sa.Integer(), nullable=True),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('received_at', UTCDateTime(), nullable=False),
    sa.Column('deadline_at', UTCDateTime(), nullable=False),
    sa.Column('extended_at', UTCDateTime(), nullable=True),
    sa.Column('extension_reason', sa.Text(), nullable=True),
    sa.Column('verification', sa.Text(), nullable=True),
    sa.Column('verified_at', UTCDateTime(), nullable=True),
    sa.Column('verified_by_id', sa.Integer(), nullable=True),
    sa.Column('verified_by_label', sa.String(length=200), nullable=True),
    sa.Column('outcome_note', sa.Text(), nullable=True),
    sa.Column('closed_at', UTCDateTime(), nullable=True),
    sa.CheckConstraint("kind IN ('access', 'erasure', 'rectification', 'restriction', 'objection')", name=op.f('ck_gdpr_request_kind_known')),
    sa.CheckConstraint("status IN ('received', 'verifying', 'in_progress', 'done', 'refused')", name=op.f('ck_gdpr_request_status_known')),
    sa.ForeignKeyConstraint(['subject_contact_id'], ['contact.id'], name=op.f('fk_gdpr_request_subject_contact_id_contact'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['subject_user_id'], ['user.id'], name=op.f('fk_gdpr_request_subject_user_id_user'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['ticket_id'], ['ticket.id'], name=op.f('fk_gdpr_request_ticket_id_ticket'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['verified_by_id'], ['user.id'], name=op.f('fk_gdpr_request_verified_by_id_user'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_gdpr_request'))
    )
    with op.batch_alter_table('gdpr_request', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_gdpr_request_subject_contact_id'), ['subject_contact_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_gdpr_request_subject_user_id'), ['subject_user_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_gdpr_request_subject_email'), ['subject_email'], unique=False)
        batch_op.create_index(batch_op.f('ix_gdpr_request_ticket_id'), ['ticket_id'], unique=False)
        batch_op.create_index('ix_gdpr_request_status_deadline', ['status', 'deadline_at'], unique=False)
        batch_op.create_index('uq_gdpr_request_open_per_user', ['subject_user_id', 'kind'], unique=True, sqlite_where=sa.text(OPEN_SQL), postgresql_where=sa.text(OPEN_SQL))

    op.create_table('gdpr_action',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('request_id', sa.Integer(), nullable=False),
    sa.Column('at', UTCDateTime(), nullable=False),
    sa.Column('actor_id', sa.Integer(), nullable=True),
    sa.Column('actor_label', sa.String(length=200), nullable=False),
    sa.Column('action', sa.String(length=32), nullable=False),
    sa.Column('note', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['actor_id'], ['user.id'], name=op.f('fk_gdpr_action_actor_id_user'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['request_id'], ['gdpr_request.id'], name=op.f('fk_gdpr_action_request_id_gdpr_request'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_gdpr_action'))
    )
    with op.batch_alter_table('gdpr_action', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_gdpr_action_request_id'), ['request_id'], unique=False)


def downgrade():
    op.drop_table('gdpr_action')
    op.drop_table('gdpr_request')
