"""drafts: an agent's unsent reply or note per ticket, kept on the server as they type

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02 15:50:00

``ticket_draft`` holds one row per ticket, agent and kind (reply or note); the row goes when
the answer is sent, or with its ticket or author. Presence ("who has it open, who types")
lives in Redis with a short expiry and needs no table.
"""
from alembic import op
import sqlalchemy as sa
from app.models.types import UTCDateTime

# revision identifiers, used by Alembic.
revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('ticket_draft',
    sa.Column('ticket_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('identity_id', sa.Integer(), nullable=True),
    sa.Column('updated_at', UTCDateTime(), nullable=False),
    sa.CheckConstraint("kind IN ('reply', 'note')", name=op.f('ck_ticket_draft_kind_known')),
    sa.ForeignKeyConstraint(['identity_id'], ['sender_identity.id'], name=op.f('fk_ticket_draft_identity_id_sender_identity'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['ticket_id'], ['ticket.id'], name=op.f('fk_ticket_draft_ticket_id_ticket'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['user.id'], name=op.f('fk_ticket_draft_user_id_user'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('ticket_id', 'user_id', 'kind', name=op.f('pk_ticket_draft'))
    )
    with op.batch_alter_table('ticket_draft', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ticket_draft_user_id'), ['user_id'], unique=False)


def downgrade():
    with op.batch_alter_table('ticket_draft', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ticket_draft_user_id'))

    op.drop_table('ticket_draft')
