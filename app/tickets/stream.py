"""Adding entries to a ticket's stream."""

from __future__ import annotations

from typing import Any

import nh3

from app.actor import Actor, ActorKind
from app.extensions import db
from app.models.tickets import EntryKind, StreamEntry, Ticket, Visibility
from app.models.types import utcnow


def sanitise_html(html: str) -> str:
    """Keep formatting, drop scripts, handlers and remote-loading attributes (nh3/ammonia)."""
    return nh3.clean(html, url_schemes={"http", "https", "mailto"}, link_rel="noopener noreferrer")


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
        kind=kind.value,
        visibility=(Visibility.INTERNAL if internal else Visibility.EXTERNAL).value,
        author_id=actor.user_id,
        author_name=actor.name,
        author_email=actor.email,
        body_text=body_text,
        body_html=sanitise_html(body_html) if body_html else None,
        data=data,
        created_at=utcnow(),
    )
    db.session.add(entry)
    touch(ticket)
    if actor.kind is ActorKind.CUSTOMER and not internal:
        ticket.in_inbox = True
        ticket.last_customer_activity_at = entry.created_at
    return entry


def touch(ticket: Ticket) -> None:
    """Record that the ticket changed: lists sort by it, polling compares ``version``."""
    ticket.updated_at = utcnow()
    ticket.version = (ticket.version or 0) + 1
