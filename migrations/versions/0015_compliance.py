"""compliance: mark the tickets that data-subject requests open

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-02 16:00:00

``ticket.data_subject_request`` says what a data-subject request asks for ("access": a copy
of the personal data, GDPR Art. 15). It is set once, by the portal's request that opens the
ticket, and decides which tickets compliance officers may read; tags and the ticket type
stay the agents' to change.
"""
from alembic import op
import sqlalchemy as sa

# revision identifiers, used by Alembic.
revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('ticket', schema=None) as batch_op:
        batch_op.add_column(sa.Column('data_subject_request', sa.String(length=16), nullable=True))
        batch_op.create_index(batch_op.f('ix_ticket_data_subject_request'), ['data_subject_request'], unique=False)
        batch_op.create_check_constraint(
            'data_subject_request_known', "data_subject_request IN ('access')"
        )


def downgrade():
    with op.batch_alter_table('ticket', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('ck_ticket_data_subject_request_known'), type_='check')
        batch_op.drop_index(batch_op.f('ix_ticket_data_subject_request'))
        batch_op.drop_column('data_subject_request')
