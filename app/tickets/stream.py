"""Adding entries to a ticket's stream."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import nh3

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
