"""audit log is append-only, enforced by the database

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 19:20:00

The ORM already refuses to change audit rows; these triggers refuse it for every other
client (a psql session, a script). The one change allowed is the foreign keys'
ON DELETE SET NULL, so that deleting a user or ticket keeps its audit history.
"""
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

FROZEN = "id, at, actor_label, action, object_type, object_id, client_address, details"
REPOINTED = (
    "(NEW.actor_id IS NOT NULL AND NEW.actor_id IS DISTINCT FROM OLD.actor_id) "
    "OR (NEW.ticket_id IS NOT NULL AND NEW.ticket_id IS DISTINCT FROM OLD.ticket_id)"
)


def upgrade():
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        raise_ = "SELECT RAISE(ABORT, 'audit_log is append-only');"
        op.execute(f"CREATE TRIGGER audit_log_frozen BEFORE UPDATE OF {FROZEN} ON audit_log "
                   f"BEGIN {raise_} END")
        op.execute("CREATE TRIGGER audit_log_repointed BEFORE UPDATE OF actor_id, ticket_id "
                   f"ON audit_log WHEN {REPOINTED.replace('IS DISTINCT FROM', 'IS NOT')} "
                   f"BEGIN {raise_} END")
        op.execute(f"CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log "
                   f"BEGIN {raise_} END")
    elif dialect == "postgresql":
        op.execute(
            "CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'audit_log is append-only'; END $$"
        )
        op.execute(f"CREATE TRIGGER audit_log_frozen BEFORE UPDATE OF {FROZEN} ON audit_log "
                   "FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()")
        op.execute("CREATE TRIGGER audit_log_repointed BEFORE UPDATE OF actor_id, ticket_id "
                   f"ON audit_log FOR EACH ROW WHEN ({REPOINTED}) "
                   "EXECUTE FUNCTION audit_log_append_only()")
        op.execute("CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log "
                   "FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()")


def downgrade():
    dialect = op.get_bind().dialect.name
    for name in ("audit_log_frozen", "audit_log_repointed", "audit_log_no_delete"):
        if dialect == "postgresql":
            op.execute(f"DROP TRIGGER IF EXISTS {name} ON audit_log")
        else:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    if dialect == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS audit_log_append_only()")
