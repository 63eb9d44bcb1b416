"""ticket full-text search index

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24 20:00:00

SQLite: an FTS5 virtual table keyed by ticket id (rowid). PostgreSQL: a table of tsvectors
with a GIN index. Neither is in the models (see ``app/tickets/search.py``); the application
keeps the rows in step, this revision only creates the index and fills it once.
"""
from alembic import op

# revision identifiers, used by Alembic.
revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

# Kept literal here (not imported from the app) so the revision never changes under us.
KINDS = "'mail_in', 'mail_out', 'portal_message', 'message', 'note'"


def upgrade():
    if op.get_bind().dialect.name == 'postgresql':
        op.execute(
            "CREATE TABLE ticket_search ("
            " ticket_id INTEGER PRIMARY KEY REFERENCES ticket (id) ON DELETE CASCADE,"
            " document TSVECTOR NOT NULL)"
        )
        op.execute("CREATE INDEX ix_ticket_search_document ON ticket_search USING gin (document)")
        op.execute(
            "INSERT INTO ticket_search (ticket_id, document) "
            "SELECT t.id, setweight(to_tsvector('simple', t.subject), 'A') || "
            "setweight(to_tsvector('simple', left(coalesce((SELECT string_agg(e.body_text, E'\\n') "
            f"FROM stream_entry e WHERE e.ticket_id = t.id AND e.kind IN ({KINDS})), ''), 200000)), 'B') "
            "FROM ticket t"
        )
    else:
        op.execute(
            "CREATE VIRTUAL TABLE ticket_search USING fts5("
            "subject, body, tokenize = 'unicode61 remove_diacritics 2')"
        )
        op.execute(
            "INSERT INTO ticket_search (rowid, subject, body) "
            "SELECT t.id, t.subject, coalesce((SELECT group_concat(e.body_text, char(10)) "
            f"FROM stream_entry e WHERE e.ticket_id = t.id AND e.kind IN ({KINDS})), '') "
            "FROM ticket t"
        )


def downgrade():
    op.execute("DROP TABLE ticket_search")
