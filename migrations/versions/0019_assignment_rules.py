"""assignment rules: per-team rule, round robin turns, agent skills, unplaced tickets

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-03 10:00:00

``assignment_rule`` says how a team's new tickets without a manager find one (round robin or
least busy, skills, account manager first, whether it also takes tickets of no team);
``assignment_turn`` keeps each member's last turn so round robin survives restarts;
``agent_skill`` names the tags and categories an agent knows; ``unplaced_ticket`` records
tickets no rule could place and why (the dispatcher's "Unplaced" filter).
"""
from alembic import op
import sqlalchemy as sa
from app.models.types import UTCDateTime

# revision identifiers, used by Alembic.
revision = '0019'
down_revision = '0018'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('assignment_rule',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('team_id', sa.Integer(), nullable=False),
    sa.Column('mode', sa.String(length=16), nullable=False),
    sa.Column('match_skills', sa.Boolean(), nullable=False),
    sa.Column('prefer_account_manager', sa.Boolean(), nullable=False),
    sa.Column('takes_unteamed', sa.Boolean(), nullable=False),
    sa.Column('turn', sa.Integer(), nullable=False),
    sa.Column('updated_at', UTCDateTime(), nullable=False),
    sa.CheckConstraint("mode IN ('off', 'round_robin', 'least_busy')", name=op.f('ck_assignment_rule_assignment_mode_known')),
    sa.ForeignKeyConstraint(['team_id'], ['team.id'], name=op.f('fk_assignment_rule_team_id_team'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_assignment_rule')),
    sa.UniqueConstraint('team_id', name=op.f('uq_assignment_rule_team_id'))
    )
    op.create_table('assignment_turn',
    sa.Column('team_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('last_turn', sa.Integer(), nullable=False),
    sa.Column('last_assigned_at', UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['team_id'], ['team.id'], name=op.f('fk_assignment_turn_team_id_team'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['user.id'], name=op.f('fk_assignment_turn_user_id_user'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('team_id', 'user_id', name=op.f('pk_assignment_turn'))
    )
    op.create_table('agent_skill',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('tag_id', sa.Integer(), nullable=True),
    sa.Column('category_id', sa.Integer(), nullable=True),
    sa.CheckConstraint('(tag_id IS NULL) <> (category_id IS NULL)', name=op.f('ck_agent_skill_tag_or_category')),
    sa.ForeignKeyConstraint(['category_id'], ['category.id'], name=op.f('fk_agent_skill_category_id_category'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tag_id'], ['tag.id'], name=op.f('fk_agent_skill_tag_id_tag'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['user.id'], name=op.f('fk_agent_skill_user_id_user'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_agent_skill')),
    sa.UniqueConstraint('user_id', 'category_id', name='uq_agent_skill_category'),
    sa.UniqueConstraint('user_id', 'tag_id', name='uq_agent_skill_tag')
    )
    with op.batch_alter_table('agent_skill', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_agent_skill_user_id'), ['user_id'], unique=False)

    op.create_table('unplaced_ticket',
    sa.Column('ticket_id', sa.Integer(), nullable=False),
    sa.Column('team_id', sa.Integer(), nullable=True),
    sa.Column('reason', sa.String(length=20), nullable=False),
    sa.Column('at', UTCDateTime(), nullable=False),
    sa.CheckConstraint("reason IN ('no_members', 'nobody_working', 'no_skills')", name=op.f('ck_unplaced_ticket_unplaced_reason_known')),
    sa.ForeignKeyConstraint(['team_id'], ['team.id'], name=op.f('fk_unplaced_ticket_team_id_team'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['ticket_id'], ['ticket.id'], name=op.f('fk_unplaced_ticket_ticket_id_ticket'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('ticket_id', name=op.f('pk_unplaced_ticket'))
    )


def downgrade():
    op.drop_table('unplaced_ticket')
    with op.batch_alter_table('agent_skill', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_agent_skill_user_id'))
    op.drop_table('agent_skill')
    op.drop_table('assignment_turn')
    op.drop_table('assignment_rule')
