"""Full-text search over tickets: the index, kept in step with the stream, and its queries.

One row per ticket in ``ticket_search``: the subject and the text of the ticket's messages
and notes (mail in and out, portal and staff messages, internal notes). Change entries
(status, assignment, tags, ...) are left out on purpose: their generated sentences ("Status
changed from New to Open") would make every common word match half the desk.

SQLite: an FTS5 virtual table ``ticket_search(subject, body)`` whose rowid is the ticket id,
ranked with bm25 (subject weighted 10:1). PostgreSQL: a table ``ticket_search(ticket_id,
document tsvector)`` with a GIN index, the subject weighted A and the body B, ranked with
ts_rank. Both use language-neutral tokenising (FTS5 ``unicode61``, tsearch ``simple``): the
desk answers in several European languages and a stemmer for one would mangle the others.

Why the application keeps the index and not SQL triggers: the row is a *concatenation* over
a ticket's entries, which triggers can only rebuild per inserted entry (one FTS delete and
insert per row, so bulk imports of a stream pay per entry), and the two dialects would need
two trigger languages. An ``after_flush`` listener sees every ticket whose subject changed
and every entry added, edited (GDPR erasure redacts ``body_text``) or deleted in the flush,
and rewrites those tickets' rows with two set-based statements, inside the same transaction:
the index commits or rolls back with the change. Writers that bypass the ORM (ticket creation,
bulk inserts in the benchmark, a data import) call ``reindex``/``rebuild`` themselves.

The index is deliberately not part of ``db.metadata``: it is dialect-specific (a virtual
table on SQLite) and created by migration 0005 only. ``include_name`` below is the hook
Alembic's autogenerate comparison needs to ignore it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from itertools import chain
from typing import Any

from sqlalchemy import (
    Column,
    ColumnElement,
    Connection,
    ForeignKey,
    Integer,
    MetaData,
    Select,
    Table,
    and_,
    bindparam,
    event,
    func,
    inspect,
    literal_column,
    or_,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import TSVECTOR
from sqlalchemy.orm import Session

from app.extensions import db
from app.models.people import Account, Contact
from app.models.tickets import EntryKind, StreamEntry, Ticket

SEARCH_TABLE = "ticket_search"

# Entries whose words are worth finding; see the module docstring.
INDEXED_KINDS: tuple[str, ...] = tuple(
    k.value
    for k in (
        EntryKind.MAIL_IN,
        EntryKind.MAIL_OUT,
        EntryKind.PORTAL_MESSAGE,
        EntryKind.MESSAGE,
        EntryKind.NOTE,
    )
)
_KINDS_SQL = ", ".join(f"'{k}'" for k in INDEXED_KINDS)  # constants, not user input
# PostgreSQL refuses a tsvector over 1 MB; a stream longer than this is cut for the index.
PG_BODY_LIMIT = 200_000

# A private MetaData: the PostgreSQL table for building queries, unseen by autogenerate.
_search_metadata = MetaData()
pg_search = Table(
    SEARCH_TABLE,
    _search_metadata,
    Column("ticket_id", Integer, ForeignKey("ticket.id", ondelete="CASCADE"), primary_key=True),
    Column("document", TSVECTOR, nullable=False),
)

_SQLITE_DELETE = text(f"DELETE FROM {SEARCH_TABLE} WHERE rowid IN :ids").bindparams(  # noqa: S608
    bindparam("ids", expanding=True)
)
_SQLITE_INSERT = text(
    f"INSERT INTO {SEARCH_TABLE} (rowid, subject, body) "  # noqa: S608
    "SELECT t.id, t.subject, coalesce((SELECT group_concat(e.body_text, char(10)) "
    "FROM stream_entry e WHERE e.ticket_id = t.id "
    f"AND e.kind IN ({_KINDS_SQL})), '') FROM ticket t WHERE t.id IN :ids"
).bindparams(bindparam("ids", expanding=True))
_PG_UPSERT = text(
    f"INSERT INTO {SEARCH_TABLE} (ticket_id, document) "  # noqa: S608
    "SELECT t.id, setweight(to_tsvector('simple', t.subject), 'A') || "
    "setweight(to_tsvector('simple', left(coalesce((SELECT string_agg(e.body_text, E'\\n') "
    "FROM stream_entry e WHERE e.ticket_id = t.id "
    f"AND e.kind IN ({_KINDS_SQL})), ''), {PG_BODY_LIMIT})), 'B') "
    "FROM ticket t WHERE t.id IN :ids "
    "ON CONFLICT (ticket_id) DO UPDATE SET document = EXCLUDED.document"
).bindparams(bindparam("ids", expanding=True))


def include_name(name: str | None, type_: str, parent_names: dict[str, Any]) -> bool:
    """Alembic ``include_name`` hook: the search index is not in the models, on purpose.

    Covers the FTS5 table and its shadow tables (``ticket_search_data``, ``_idx``, ...) on
    SQLite and the table with its GIN index on PostgreSQL.
    """
    if type_ == "table" and name is not None and name.startswith(SEARCH_TABLE):
        return False
    return True


def reindex(connection: Connection, ticket_ids: Iterable[int]) -> None:
    """Rewrite the index rows of ``ticket_ids`` from the tickets and their streams now.

    Inside ``deferred_reindex`` (on the session's own connection) the ids are only noted.
    """
    pending = _deferred_on(connection)
    if pending is not None:
        pending.update(int(i) for i in ticket_ids if i is not None)
        return
    ids = sorted({int(i) for i in ticket_ids if i is not None})
    if not ids:
        return
    # SQLite allows 32766 bound parameters; chunk so a rebuild of a large desk fits.
    for start in range(0, len(ids), 10_000):
        chunk = ids[start : start + 10_000]
        if connection.dialect.name == "postgresql":
            # Rows of deleted tickets go with them (ON DELETE CASCADE).
            connection.execute(_PG_UPSERT, {"ids": chunk})
        else:
            connection.execute(_SQLITE_DELETE, {"ids": chunk})
            connection.execute(_SQLITE_INSERT, {"ids": chunk})


# Mail ingestion files hundreds of messages per transaction, each touching one ticket: a
# DELETE and an INSERT per message was an eighth of its statements (``bench/mail_ingest.py``).
# Inside ``deferred_reindex`` the ids are collected on the session and their rows rewritten
# by one ``reindex`` when the block ends, and in any case before the session commits (the
# listener below): the index still commits with the change. Rewriting is idempotent, so
# an id whose savepoint rolled back costs nothing but its place in the IN list.
_DEFERRED = "vaultdesk_search_deferred"


def _deferred_on(connection: Connection) -> set[int] | None:
    session = db.session()
    pending: set[int] | None = session.info.get(_DEFERRED)
    if pending is None or session.connection() is not connection:
        return None
    return pending


@contextmanager
def deferred_reindex() -> Iterator[None]:
    """Collect the tickets to reindex in the block and rewrite their rows at its end."""
    session = db.session()
    if _DEFERRED in session.info:
        yield
        return
    session.info[_DEFERRED] = set()
    try:
        yield
        _write_deferred(session)
    finally:
        session.info.pop(_DEFERRED, None)


def _write_deferred(session: Session) -> None:
    pending: set[int] | None = session.info.get(_DEFERRED)
    if pending is None:
        return
    session.flush()  # whatever the last changes touched joins the set
    if pending:
        ids = set(pending)
        pending.clear()
        session.info.pop(_DEFERRED)
        try:
            reindex(session.connection(), ids)
        finally:
            session.info[_DEFERRED] = pending


@event.listens_for(Session, "before_commit")
def _write_before_commit(session: Session) -> None:
    if not session.in_nested_transaction():
        _write_deferred(session)


def rebuild(connection: Connection) -> None:
    """Index every ticket from scratch (after bulk loads that bypassed the ORM)."""
    connection.execute(text(f"DELETE FROM {SEARCH_TABLE}"))  # noqa: S608
    reindex(connection, connection.scalars(select(Ticket.id)).all())


def _changed_tickets(session: Session) -> set[int]:
    """Ids of tickets whose index row this flush made stale."""
    ids: set[int] = set()
    for obj in chain(session.new, session.dirty, session.deleted):
        if isinstance(obj, StreamEntry):
            state = inspect(obj)
            if obj in session.dirty and not (
                state.attrs.body_text.history.has_changes()
                or state.attrs.kind.history.has_changes()
            ):
                continue
            ids.add(obj.ticket_id if obj.ticket_id is not None else obj.ticket.id)
        elif isinstance(obj, Ticket):
            if obj in session.dirty and not inspect(obj).attrs.subject.history.has_changes():
                continue
            ids.add(obj.id)
    return ids


@event.listens_for(Session, "after_flush")
def _keep_index_in_step(session: Session, flush_context: Any) -> None:
    """Same transaction as the change: the index commits or rolls back with it."""
    ids = _changed_tickets(session)
    if ids:
        reindex(session.connection(), ids)


# --- queries -------------------------------------------------------------------------------

_TERM = re.compile(r"\w+", re.UNICODE)


def terms(query: str) -> list[str]:
    """The words of a user's query; FTS operators and punctuation are not words."""
    return _TERM.findall(query or "")[:20]


def fts5_match(query: str) -> str | None:
    """An FTS5 MATCH expression: every word quoted, prefix-matched and ANDed.

    Quoting (with ``"`` doubled) turns ``NEAR``, ``AND``, ``-``, ``*``, ``:`` and ``^`` into
    plain text, so no input can raise an FTS5 syntax error.
    """
    words = terms(query)
    if not words:
        return None
    return " ".join('"' + w.replace('"', '""') + '"*' for w in words)


def tsquery_text(query: str) -> str | None:
    """A ``to_tsquery('simple', ...)`` expression: quoted lexemes, prefix-matched, ANDed."""
    words = terms(query)
    if not words:
        return None
    return " & ".join("'" + w.lower().replace("'", "''") + "':*" for w in words)


# A search ranks at most this many tickets, the most relevant first; filters and sorting
# apply within them. Ranking tens of thousands of hits for a common word costs hundreds of
# milliseconds and no one pages through them: a person refines the search instead.
MAX_HITS = 1000
# Above this many matches a query is too broad for relevance to mean much, and ranking
# them all is what makes it slow (bm25 over 50,000 rows: ~85 ms here); such searches list
# the newest matches instead. Counting the matches first costs a few milliseconds.
RANK_AT_MOST = 5000


def matches(dialect: str, query: str) -> Select[Any] | None:
    """``(ticket_id, rank)`` of the ``MAX_HITS`` best matches; lower rank is more relevant.

    On SQLite a query with more than ``RANK_AT_MOST`` matches is ordered newest first
    instead of by relevance (one cheap count decides).
    """
    if dialect == "postgresql":
        expression = tsquery_text(query)
        if expression is None:
            return None
        tsq = func.to_tsquery(literal_column("'simple'"), expression)
        rank = (-func.ts_rank(pg_search.c.document, tsq)).label("rank")
        return (
            select(pg_search.c.ticket_id.label("ticket_id"), rank)
            .where(pg_search.c.document.op("@@")(tsq))
            .order_by(rank)
            .limit(MAX_HITS)
        )
    expression = fts5_match(query)
    if expression is None:
        return None
    fts = literal_column(SEARCH_TABLE)
    found = select(func.count()).select_from(text(SEARCH_TABLE)).where(fts.op("MATCH")(expression))
    if (db.session.scalar(found) or 0) > RANK_AT_MOST:
        rowid = literal_column("rowid")
        return (
            select(rowid.label("ticket_id"), (-rowid).label("rank"))
            .select_from(text(SEARCH_TABLE))
            .where(fts.op("MATCH")(expression))
            .order_by(rowid.desc())
            .limit(MAX_HITS)
        )
    rank = func.bm25(fts, 10.0, 1.0).label("rank")
    return (
        select(literal_column("rowid").label("ticket_id"), rank)
        .select_from(text(SEARCH_TABLE))
        .where(fts.op("MATCH")(expression))
        .order_by(rank)
        .limit(MAX_HITS)
    )


# --- numbers and people --------------------------------------------------------------------
#
# The full-text index holds subjects and messages, not the ticket's number nor who the
# customer is. Agents search for both all day ("T-104233" read out on the phone, "Schmidt",
# "acme.test", "Acme GmbH"), so a list search also takes, before the ranked text hits:
#
# - tickets whose number is a term of the query: ``T-104233``, ``#T-104233``, ``[#T-104233]``
#   or the bare digits ``104233`` (the configured prefix is put in front; a prefix typed by
#   the agent is honoured, so tickets numbered under an older prefix stay findable);
# - tickets whose contact (name or address), account (name) or submitter address matches
#   every other word of the query, as a case-insensitive substring.
#
# Both are index lookups or scans of the (small) contact and account tables, never a scan
# of the tickets, so they cost the same on SQLite and PostgreSQL.

# Shorter words ("a", "e" of "e-mail") would name half the customers.
MIN_PERSON_WORD = 2
_NUMBER = re.compile(r"^\W*(?:([A-Za-z]{1,10})-)?(\d{4,12})\W*$")


def number_terms(query: str, prefix: str) -> tuple[list[str], list[str]]:
    """The query split into ticket numbers (spelt as stored) and the remaining words."""
    numbers: list[str] = []
    words: list[str] = []
    for token in (query or "").split()[:20]:
        match = _NUMBER.match(token)
        if match is None:
            words.extend(terms(token))
            continue
        given, digits = match.groups()
        numbers.append(f"{(given or prefix).upper()}-{digits}")
    return numbers, words


def lone_number(query: str, prefix: str) -> tuple[str, bool] | None:
    """The ticket number when it is the whole query (what makes a search jump to it),
    and whether the agent typed its prefix."""
    tokens = (query or "").split()
    match = _NUMBER.match(tokens[0]) if len(tokens) == 1 else None
    if match is None:
        return None
    given, digits = match.groups()
    return f"{(given or prefix).upper()}-{digits}", given is not None


def _people_condition(words: list[str]) -> ColumnElement[bool] | None:
    """Tickets whose customer, account or submitter matches every word (None: no words)."""
    if not words:
        return None
    words = [w for w in words if len(w) >= MIN_PERSON_WORD]
    if not words:
        return None
    per_word = []
    for word in words:
        contacts = select(Contact.id).where(
            or_(
                Contact.name.icontains(word, autoescape=True),
                Contact.email.icontains(word, autoescape=True),
            )
        )
        accounts = select(Account.id).where(Account.name.icontains(word, autoescape=True))
        either = [Ticket.contact_id.in_(contacts), Ticket.account_id.in_(accounts)]
        if "@" in word:
            either.append(Ticket.submitter_email == word.lower())
        per_word.append(or_(*either))
    return and_(*per_word)


def direct_matches(query: str, prefix: str) -> Select[Any] | None:
    """Ids of tickets the query names by number or by customer/account (see above)."""
    numbers, words = number_terms(query, prefix)
    conditions: list[ColumnElement[bool]] = []
    if numbers:
        conditions.append(Ticket.number.in_(numbers))
    people = _people_condition(words)
    if people is not None:
        conditions.append(people)
    if not conditions:
        return None
    return (
        select(Ticket.id).where(or_(*conditions)).order_by(Ticket.updated_at.desc()).limit(MAX_HITS)
    )
