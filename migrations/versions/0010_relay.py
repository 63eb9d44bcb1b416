"""relay: outbox claims with a lease, the server's answer, one row per recipient, bounced

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 12:05:00

The outbox is sent by workers now. A worker claims a row with a conditional UPDATE that
sets ``claim_token`` and ``claimed_until`` (the lease); the server's last answer is kept;
``auto_submitted`` says whether a mail is automatic (RFC 3834) and ``language`` which
language its fixed words are in. ``outbox_recipient`` holds each recipient's copy (its
own vault links, its own status and server answer), so a retry sends only what is still
owed. ``bounced`` joins the outbox statuses.

Rows already in the outbox get one recipient row per address they list, pending unless
the message was sent; their file links stay in ``body_text`` as before.

Downgrading turns ``bounced`` rows into ``sent`` (they were accepted once).
"""
from alembic import op
import sqlalchemy as sa
from app.models.types import UTCDateTime

# revision identifiers, used by Alembic.
revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

OLD = ("queued", "sending", "sent", "failed")
NEW = ("queued", "sending", "sent", "failed", "bounced")
RECIPIENT = ("pending", "sent", "refused", "bounced")


def _check(column, values):
    return "{} IN ({})".format(column, ", ".join(f"'{value}'" for value in values))


def upgrade():
    with op.batch_alter_table('outbox_message', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_outbox_message_status_known'), type_='check')
        batch_op.add_column(sa.Column('claim_token', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('claimed_until', UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('server_answer', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('signature', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('auto_submitted', sa.String(length=20), nullable=True))
        batch_op.add_column(
            sa.Column('language', sa.String(length=8), nullable=False, server_default='en')
        )
        batch_op.create_check_constraint(
            op.f('ck_outbox_message_status_known'), _check('status', NEW)
        )
    with op.batch_alter_table('outbox_message', schema=None) as batch_op:
        batch_op.alter_column('language', server_default=None)

    op.create_table('outbox_recipient',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('message_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=3), nullable=False),
    sa.Column('address', sa.String(length=254), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=True),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('links', sa.JSON(), nullable=False),
    sa.Column('answer', sa.Text(), nullable=True),
    sa.Column('sent_at', UTCDateTime(), nullable=True),
    sa.CheckConstraint(_check('status', RECIPIENT), name=op.f('ck_outbox_recipient_status_known')),
    sa.ForeignKeyConstraint(['message_id'], ['outbox_message.id'], name=op.f('fk_outbox_recipient_message_id_outbox_message'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_outbox_recipient')),
    sa.UniqueConstraint('message_id', 'address', name='uq_outbox_recipient_address')
    )
    with op.batch_alter_table('outbox_recipient', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_outbox_recipient_address'), ['address'], unique=False)
        batch_op.create_index(batch_op.f('ix_outbox_recipient_message_id'), ['message_id'], unique=False)

    # Existing rows: one recipient row per listed address, so the relay can send them.
    connection = op.get_bind()
    rows = connection.execute(sa.text("SELECT id, recipients, status FROM outbox_message"))
    insert = sa.text(
        "INSERT INTO outbox_recipient (message_id, kind, address, status, links) "
        "VALUES (:m, :k, :a, :s, '[]')"
    )
    import json
    for message_id, recipients, status in rows.fetchall():
        grouped = json.loads(recipients) if isinstance(recipients, str) else (recipients or {})
        seen = set()
        for kind in ("to", "cc", "bcc"):
            for address in grouped.get(kind) or []:
                if address in seen:
                    continue
                seen.add(address)
                connection.execute(insert, {
                    "m": message_id, "k": kind, "a": address,
                    "s": "sent" if status == "sent" else "pending",
                })


def downgrade():
    with op.batch_alter_table('outbox_recipient', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_outbox_recipient_message_id'))
        batch_op.drop_index(batch_op.f('ix_outbox_recipient_address'))
    op.drop_table('outbox_recipient')
    op.execute("UPDATE outbox_message SET status = 'sent' WHERE status = 'bounced'")
    with op.batch_alter_table('outbox_message', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_outbox_message_status_known'), type_='check')
        batch_op.drop_column('language')
        batch_op.drop_column('auto_submitted')
        batch_op.drop_column('server_answer')
        batch_op.drop_column('signature')
        batch_op.drop_column('claimed_until')
        batch_op.drop_column('claim_token')
        batch_op.create_check_constraint(
            op.f('ck_outbox_message_status_known'), _check('status', OLD)
        )
