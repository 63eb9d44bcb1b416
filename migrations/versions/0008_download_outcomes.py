"""download audit: interrupted, challenged and verified outcomes

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 10:00:00

A download cut short (link revoked, expired or erased mid-stream, the client gone, a
corrupt chunk) is now recorded as ``interrupted``, not ``served``; mailed recipient codes
add ``challenged`` (code sent) and ``verified`` (right code). "interrupted" is longer
than the old column, so the column widens, and the CHECK constraint lists the new values.

Downgrading turns the new outcomes into ``refused`` (the old schema has no word for
them) and keeps their ``reason``.
"""
from alembic import op
import sqlalchemy as sa

# revision identifiers, used by Alembic.
revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

OLD = ("viewed", "granted", "served", "refused")
NEW = ("viewed", "challenged", "verified", "granted", "served", "interrupted", "refused")


def _check(values):
    return "outcome IN ({})".format(", ".join(f"'{value}'" for value in values))


def upgrade():
    with op.batch_alter_table('download_event', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_download_event_outcome_known'), type_='check')
        batch_op.alter_column(
            'outcome', existing_type=sa.String(length=10), type_=sa.String(length=16),
            existing_nullable=False,
        )
        batch_op.create_check_constraint(op.f('ck_download_event_outcome_known'), _check(NEW))


def downgrade():
    new_only = ", ".join(f"'{value}'" for value in NEW if value not in OLD)
    op.execute(f"UPDATE download_event SET outcome = 'refused' WHERE outcome IN ({new_only})")
    with op.batch_alter_table('download_event', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_download_event_outcome_known'), type_='check')
        batch_op.alter_column(
            'outcome', existing_type=sa.String(length=16), type_=sa.String(length=10),
            existing_nullable=False,
        )
        batch_op.create_check_constraint(op.f('ck_download_event_outcome_known'), _check(OLD))
