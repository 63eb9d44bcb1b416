"""sysmail: system mail templates per identity and language; outbox rows know their kind

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 12:40:00

``system_template`` holds an admin's version of one system mail (autoresponse, reopen
notice, portal sign-in link, ...) for one sender identity and language; without a row the
default shipped in ``app/mail/system_templates/`` is used. ``outbox_message`` learns which
system mail a row is (``system_kind``, so one autoresponse per sender and period can be
counted) and the HTML part its template rendered (``body_html``).
"""
from alembic import op
import sqlalchemy as sa
from app.models.types import UTCDateTime

# revision identifiers, used by Alembic.
revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('system_template',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('identity_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=30), nullable=False),
    sa.Column('language', sa.String(length=8), nullable=False),
    sa.Column('subject', sa.Text(), nullable=False),
    sa.Column('body_text', sa.Text(), nullable=False),
    sa.Column('body_html', sa.Text(), nullable=True),
    sa.Column('updated_at', UTCDateTime(), nullable=False),
    sa.Column('updated_by_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['identity_id'], ['sender_identity.id'], name=op.f('fk_system_template_identity_id_sender_identity'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['updated_by_id'], ['user.id'], name=op.f('fk_system_template_updated_by_id_user'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_system_template')),
    sa.UniqueConstraint('identity_id', 'kind', 'language', name='uq_system_template_key')
    )
    with op.batch_alter_table('system_template', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_system_template_identity_id'), ['identity_id'], unique=False)

    with op.batch_alter_table('outbox_message', schema=None) as batch_op:
        batch_op.add_column(sa.Column('system_kind', sa.String(length=30), nullable=True))
        batch_op.add_column(sa.Column('body_html', sa.Text(), nullable=True))


def downgrade():
    with op.batch_alter_table('outbox_message', schema=None) as batch_op:
        batch_op.drop_column('body_html')
        batch_op.drop_column('system_kind')

    with op.batch_alter_table('system_template', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_system_template_identity_id'))

    op.drop_table('system_template')
