"""two_factor: TOTP second factor and recovery codes for staff sign-in

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03 10:00:00

Four nullable columns on ``user``: the TOTP secret sealed with the vault's key ring, the
last accepted time step (replay guard), when the user enrolled, and the hashes of the
unused recovery codes. No row changes: nobody has a second factor after the upgrade.
"""

from alembic import op
import sqlalchemy as sa
from app.models.types import UTCDateTime

# revision identifiers, used by Alembic.
revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("user", schema=None) as batch_op:
        batch_op.add_column(sa.Column("totp_secret_sealed", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("totp_last_step", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("two_factor_since", UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column("recovery_code_hashes", sa.Text(), nullable=True))


def downgrade():
    with op.batch_alter_table("user", schema=None) as batch_op:
        batch_op.drop_column("recovery_code_hashes")
        batch_op.drop_column("two_factor_since")
        batch_op.drop_column("totp_last_step")
        batch_op.drop_column("totp_secret_sealed")
