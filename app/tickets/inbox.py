"""The global inbox and personal read state.

Customer activity puts a ticket in the inbox (see ``stream.add_entry``); reading it clears
the reader's personal "unread"; moving it in or out of the inbox acts for everyone and is
itself a stream entry, so the team can see who cleared what.
"""

from __future__ import annotations

from flask_babel import gettext as _
from sqlalchemy import select

from app import audit
from app.actor import Actor
from app.errors import Conflict
from app.extensions import db
from app.models.people import User
from app.models.tickets import EntryKind, Ticket, TicketRead
from app.models.types import utcnow
from app.tickets.errors import InvalidTicketChange
from app.tickets.stream import add_entry


def mark_read(ticket: Ticket, user: User) -> None:
    """Remember that ``user`` has seen everything up to now (no stream entry: personal)."""
    mark_many_read([ticket], user)


def mark_many_read(tickets: list[Ticket], user: User) -> None:
    """Upsert the user's read marks: one SELECT and the writes, whatever the batch size.

    Staff and customers share the table: an agent's mark clears the inbox's unread, a
    customer's clears the portal's "new answer".
    """
    now = utcnow()
    existing = {
        row.ticket_id: row
        for row in db.session.scalars(
            select(TicketRead).where(
                TicketRead.user_id == user.id, TicketRead.ticket_id.in_([t.id for t in tickets])
            )
        )
    }
    for ticket in tickets:
        row = existing.get(ticket.id)
        if row is None:
            db.session.add(TicketRead(ticket_id=ticket.id, user_id=user.id, read_at=now))
        else:
            row.read_at = now


def is_unread(ticket: Ticket, user: User) -> bool:
    activity = ticket.last_customer_activity_at
    if activity is None:
        return False
    read_at = db.session.scalar(
        select(TicketRead.read_at).where(
            TicketRead.ticket_id == ticket.id, TicketRead.user_id == user.id
        )
    )
    return read_at is None or read_at < activity


def set_in_inbox(ticket: Ticket, actor: Actor, in_inbox: bool) -> None:
    if ticket.in_inbox == in_inbox:
        if in_inbox:
            raise InvalidTicketChange(_("The ticket is already in the inbox."))
        raise InvalidTicketChange(_("The ticket is already out of the inbox."))
    ticket.in_inbox = in_inbox
    text = "Moved to the inbox." if in_inbox else "Removed from the inbox."
    add_entry(
        ticket, EntryKind.INBOX, actor, body_text=text, internal=True, data={"in_inbox": in_inbox}
    )
    audit.record(
        actor, "ticket.inbox", "ticket", ticket.number, ticket_id=ticket.id, in_inbox=in_inbox
    )


def check_version(ticket: Ticket, seen_version: int | None) -> None:
    """Refuse an edit made on a stale page instead of silently overwriting a colleague."""
    if seen_version is not None and seen_version != ticket.version:
        raise Conflict(
            _(
                "Someone else changed this ticket while you were editing it. "
                "The page now shows their change; check it and try again."
            )
        )
