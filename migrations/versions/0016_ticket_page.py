"""ticket page: a ticket's leads are contacts of its account

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-02 16:00:00

Leads used to be sales prospects (``lead``) from any company; a ticket now names as leads
the contacts of its own account who drive the matter (see ``app/tickets/leads.py``).
``ticket_lead_contact`` replaces ``ticket_lead``. An old lead carries over where a contact
of the ticket's account has the lead's address; any other old pairing cannot be expressed
any more and is dropped (the ``lead`` rows themselves stay, as the sales side's list).
"""
from alembic import op
import sqlalchemy as sa

# revision identifiers, used by Alembic.
revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('ticket_lead_contact',
    sa.Column('ticket_id', sa.Integer(), nullable=False),
    sa.Column('contact_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['contact_id'], ['contact.id'], name=op.f('fk_ticket_lead_contact_contact_id_contact'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['ticket_id'], ['ticket.id'], name=op.f('fk_ticket_lead_contact_ticket_id_ticket'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('ticket_id', 'contact_id', name=op.f('pk_ticket_lead_contact'))
    )
    with op.batch_alter_table('ticket_lead_contact', schema=None) as batch_op:
        batch_op.create_index('ix_ticket_lead_contact_contact_id', ['contact_id'], unique=False)
    op.execute(
        "INSERT INTO ticket_lead_contact (ticket_id, contact_id) "
        "SELECT DISTINCT tl.ticket_id, c.id FROM ticket_lead tl "
        "JOIN lead l ON l.id = tl.lead_id "
        "JOIN ticket t ON t.id = tl.ticket_id "
        "JOIN contact c ON c.account_id = t.account_id AND lower(c.email) = lower(l.email)"
    )
    op.drop_table('ticket_lead')


def downgrade():
    op.create_table('ticket_lead',
    sa.Column('ticket_id', sa.Integer(), nullable=False),
    sa.Column('lead_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['lead_id'], ['lead.id'], name=op.f('fk_ticket_lead_lead_id_lead'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['ticket_id'], ['ticket.id'], name=op.f('fk_ticket_lead_ticket_id_ticket'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('ticket_id', 'lead_id', name=op.f('pk_ticket_lead'))
    )
    with op.batch_alter_table('ticket_lead_contact', schema=None) as batch_op:
        batch_op.drop_index('ix_ticket_lead_contact_contact_id')
    op.drop_table('ticket_lead_contact')
