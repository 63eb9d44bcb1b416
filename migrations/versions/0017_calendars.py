"""calendars: work calendars, their shifts, closure days, assignments to teams and users, absences

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-02 16:45:00

A ``work_calendar`` holds a zone and a holiday country/region; ``work_shift`` its weekly
hours; ``closure_day`` company-wide (no calendar) or per-calendar closed days;
``calendar_assignment`` gives a calendar to one team or one user; ``absence`` is a person's
leave, sickness or other time away, in UTC, with who entered it.
"""
from alembic import op
import sqlalchemy as sa
from app.models.types import UTCDateTime

# revision identifiers, used by Alembic.
revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('work_calendar',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('zone', sa.String(length=64), nullable=False),
    sa.Column('country', sa.String(length=8), nullable=True),
    sa.Column('subdivision', sa.String(length=16), nullable=True),
    sa.Column('is_default', sa.Boolean(), nullable=False),
    sa.Column('created_at', UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_work_calendar')),
    sa.UniqueConstraint('name', name=op.f('uq_work_calendar_name'))
    )
    op.create_table('work_shift',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('calendar_id', sa.Integer(), nullable=False),
    sa.Column('weekday', sa.SmallInteger(), nullable=False),
    sa.Column('starts', sa.Time(), nullable=False),
    sa.Column('ends', sa.Time(), nullable=False),
    sa.CheckConstraint('weekday BETWEEN 0 AND 6', name=op.f('ck_work_shift_weekday_range')),
    sa.ForeignKeyConstraint(['calendar_id'], ['work_calendar.id'], name=op.f('fk_work_shift_calendar_id_work_calendar'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_work_shift'))
    )
    with op.batch_alter_table('work_shift', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_work_shift_calendar_id'), ['calendar_id'], unique=False)

    op.create_table('closure_day',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('calendar_id', sa.Integer(), nullable=True),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('note', sa.String(length=200), nullable=True),
    sa.ForeignKeyConstraint(['calendar_id'], ['work_calendar.id'], name=op.f('fk_closure_day_calendar_id_work_calendar'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_closure_day')),
    sa.UniqueConstraint('calendar_id', 'day', name='uq_closure_day')
    )
    with op.batch_alter_table('closure_day', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_closure_day_calendar_id'), ['calendar_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_closure_day_day'), ['day'], unique=False)

    op.create_table('calendar_assignment',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('calendar_id', sa.Integer(), nullable=False),
    sa.Column('team_id', sa.Integer(), nullable=True),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.CheckConstraint('(team_id IS NULL) <> (user_id IS NULL)', name=op.f('ck_calendar_assignment_team_or_user')),
    sa.ForeignKeyConstraint(['calendar_id'], ['work_calendar.id'], name=op.f('fk_calendar_assignment_calendar_id_work_calendar'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['team_id'], ['team.id'], name=op.f('fk_calendar_assignment_team_id_team'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['user.id'], name=op.f('fk_calendar_assignment_user_id_user'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_calendar_assignment')),
    sa.UniqueConstraint('team_id', name=op.f('uq_calendar_assignment_team_id')),
    sa.UniqueConstraint('user_id', name=op.f('uq_calendar_assignment_user_id'))
    )
    with op.batch_alter_table('calendar_assignment', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_calendar_assignment_calendar_id'), ['calendar_id'], unique=False)

    op.create_table('absence',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('starts_at', UTCDateTime(), nullable=False),
    sa.Column('ends_at', UTCDateTime(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('note', sa.String(length=200), nullable=True),
    sa.Column('entered_by_id', sa.Integer(), nullable=True),
    sa.Column('created_at', UTCDateTime(), nullable=False),
    sa.CheckConstraint("kind IN ('leave', 'sickness', 'other')", name=op.f('ck_absence_absence_kind_known')),
    sa.CheckConstraint('ends_at > starts_at', name=op.f('ck_absence_absence_ends_after_start')),
    sa.ForeignKeyConstraint(['entered_by_id'], ['user.id'], name=op.f('fk_absence_entered_by_id_user'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['user_id'], ['user.id'], name=op.f('fk_absence_user_id_user'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_absence'))
    )
    with op.batch_alter_table('absence', schema=None) as batch_op:
        batch_op.create_index('ix_absence_user_ends', ['user_id', 'ends_at'], unique=False)


def downgrade():
    with op.batch_alter_table('absence', schema=None) as batch_op:
        batch_op.drop_index('ix_absence_user_ends')
    op.drop_table('absence')
    with op.batch_alter_table('calendar_assignment', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_calendar_assignment_calendar_id'))
    op.drop_table('calendar_assignment')
    with op.batch_alter_table('closure_day', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_closure_day_day'))
        batch_op.drop_index(batch_op.f('ix_closure_day_calendar_id'))
    op.drop_table('closure_day')
    with op.batch_alter_table('work_shift', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_work_shift_calendar_id'))
    op.drop_table('work_shift')
    op.drop_table('work_calendar')
