"""Adding entries to a ticket's stream."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import nh3
from sqlalchemy import bindparam, func, insert, inspect, update
from sqlalchemy.orm import make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value

from app.actor import Actor, ActorKind
from app.extensions import db
from app.mail.content import sanitise_stored_mail_html
from app.models.tickets import EntryKind, StreamEntry, Ticket, Visibility
from app.models.types import utcnow


def sanitise_html(html: str) -> str:
    """Keep formatting, drop scripts, handlers and remote-loading attributes (nh3/ammonia)."""
    return nh3.clean(html, url_schemes={"http", "https", "mailto"}, link_rel="noopener noreferrer")


def _stored_html(kind: EntryKind, html: str) -> str:
    """Received mail comes sanitised by ``mail.content`` with image markers this keeps."""
    if kind == EntryKind.MAIL_IN:
        return sanitise_stored_mail_html(html)
    return sanitise_html(html)


def entry_row(
    kind: EntryKind,
    actor: Actor,
    *,
    body_text: str = "",
    body_html: str | None = None,
    internal: bool = False,
    data: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> dict[str, Any]:
    """Column values of a new entry, apart from its ticket.

    Shared by ``add_entry`` and ticket creation, which inserts its first entry as a row:
    one place decides visibility, authorship and that HTML is sanitised before it is stored.
    """
    return {
        "kind": kind.value,
        "visibility": (Visibility.INTERNAL if internal else Visibility.EXTERNAL).value,
        "author_id": actor.user_id,
        "author_name": actor.name,
        "author_email": actor.email,
        "body_text": body_text,
        "body_html": _stored_html(kind, body_html) if body_html else None,
        "data": data,
        "created_at": at or utcnow(),
    }


def is_customer_activity(actor: Actor, internal: bool) -> bool:
    """A customer's public words put the ticket in the inbox as unread."""
    return actor.kind is ActorKind.CUSTOMER and not internal


def add_entry(
    ticket: Ticket,
    kind: EntryKind,
    actor: Actor,
    *,
    body_text: str = "",
    body_html: str | None = None,
    internal: bool = False,
    data: dict[str, Any] | None = None,
) -> StreamEntry:
    """Append one event; a customer's words put the ticket in the inbox as unread."""
    entry = StreamEntry(
        ticket=ticket,
        **entry_row(
            kind,
            actor,
            body_text=body_text,
            body_html=body_html,
            internal=internal,
            data=data,
        ),
    )
    db.session.add(entry)
    touch(ticket)
    if is_customer_activity(actor, internal):
        ticket.in_inbox = True
        ticket.last_customer_activity_at = entry.created_at
    return entry


def touch(ticket: Ticket) -> None:
    """Record that the ticket changed: lists sort by it, polling compares ``version``."""
    ticket.updated_at = utcnow()
    ticket.version = (ticket.version or 0) + 1


_ENTRY_COLUMNS = tuple(StreamEntry.__table__.columns)
_INSERT_ENTRY = insert(StreamEntry).returning(*_ENTRY_COLUMNS)
_TICKETS = Ticket.__table__
_TOUCH_FROM_CUSTOMER = (
    update(_TICKETS)
    .where(_TICKETS.c.id == bindparam("b_id"))
    .values(
        version=func.coalesce(_TICKETS.c.version, 0) + 1,
        updated_at=bindparam("b_updated_at"),
        in_inbox=True,
        last_customer_activity_at=bindparam("b_at"),
    )
    .returning(_TICKETS.c.version)
)


def writable_at_once(ticket: Ticket) -> bool:
    """Whether ``insert_customer_entry`` may write on ``ticket``: persistent, nothing pending.

    A pending change of the ticket (its status, its timers) is written by the next flush
    with the values the object holds; an UPDATE beside it would be overwritten, so such a
    ticket takes the unit of work (``add_entry``) instead.
    """
    state = inspect(ticket)
    return state.persistent and not state.modified


def insert_customer_entry(
    ticket: Ticket,
    kind: EntryKind,
    actor: Actor,
    *,
    body_text: str = "",
    body_html: str | None = None,
    data: dict[str, Any] | None = None,
) -> StreamEntry:
    """``add_entry`` for a customer's public entry, as two statements, not a unit of work.

    Mail ingestion appends hundreds of customer replies a second; the ORM flush of the
    entry and of the ticket's touch cost more than the SQL itself (``bench/mail_ingest.py``).
    The outcome is ``add_entry``'s: the same row (``entry_row``), the ticket touched and
    in the inbox as unread; the search index is rewritten as a flush would
    (``search.reindex``, deferred in a batch). Only for a ticket ``writable_at_once`` and a
    customer's own words (anything else raises ``ValueError``). The
    entry comes back as a persistent object, the ticket's attributes are set as written,
    and its ``entries`` collection is expired so it shows the new one.
    """
    from app.tickets import search

    if not is_customer_activity(actor, internal=False):
        raise ValueError("insert_customer_entry is for a customer's own words")
    row = entry_row(kind, actor, body_text=body_text, body_html=body_html, data=data)
    connection = db.session.connection()
    values = connection.execute(_INSERT_ENTRY, {"ticket_id": ticket.id, **row}).one()
    mapper = inspect(StreamEntry)
    keys = (mapper.get_property_by_column(column).key for column in _ENTRY_COLUMNS)
    entry = StreamEntry(**dict(zip(keys, values, strict=True)))
    make_transient_to_detached(entry)
    db.session.add(entry)
    at, updated_at = row["created_at"], utcnow()
    version = connection.execute(
        _TOUCH_FROM_CUSTOMER, {"b_id": ticket.id, "b_updated_at": updated_at, "b_at": at}
    ).scalar_one()
    written = {
        "updated_at": updated_at,
        "version": version,
        "in_inbox": True,
        "last_customer_activity_at": at,
    }
    for key, value in written.items():
        set_committed_value(ticket, key, value)
    if "entries" not in inspect(ticket).unloaded:
        db.session.expire(ticket, ["entries"])
    search.reindex(connection, [ticket.id])
    return entry
