"""Acknowledging a ticket opened by mail (the autoresponse).

The templates and the sending come with the mail-out issue. Until then the job that
mail-in enqueues for every new ticket says on the ticket that no acknowledgement was sent,
so agents know the customer heard nothing yet (and a test can see the job ran).
"""

from __future__ import annotations

from sqlalchemy import select

from app.actor import Actor
from app.extensions import db
from app.models.tickets import EntryKind, StreamEntry, Ticket
from app.tickets.stream import add_entry

NOT_CONFIGURED = "not configured"
_MARK = "autoresponse"


def note_not_configured(ticket_id: int) -> str:
    """Add an internal notice once per ticket; never commits (the job does)."""
    ticket = db.session.get(Ticket, ticket_id)
    if ticket is None:
        return "gone"
    already = db.session.execute(
        select(StreamEntry.id).where(
            StreamEntry.ticket_id == ticket.id,
            StreamEntry.kind == EntryKind.SYSTEM.value,
            StreamEntry.data["notice"].as_string() == _MARK,
        )
    ).first()
    if already is None:
        add_entry(
            ticket,
            EntryKind.SYSTEM,
            Actor.system(),
            body_text="No acknowledgement was mailed: autoresponses are not configured yet.",
            internal=True,
            data={"notice": _MARK},
        )
    return NOT_CONFIGURED
