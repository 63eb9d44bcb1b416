"""The customer card on the agent's ticket page: who wrote, their company, their history.

An agent answering a ticket wants to know at a glance whether this customer has other
open matters and what they asked recently, without leaving the ticket; the card shows
the contact's (or, with no contact, the submitter address's) other tickets, open ones
first, and whether the contact can use the portal.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import case, select

from app.extensions import db
from app.models.tickets import Status, Ticket

RECENT = 5
CLOSED = (Status.RESOLVED.value, Status.CLOSED.value)


@dataclass(frozen=True)
class CustomerCard:
    open_tickets: list[Ticket]
    recent_tickets: list[Ticket]
    portal: str  # "active" (has a password), "invited" (login, no password yet) or "none"


def customer_card(ticket: Ticket) -> CustomerCard:
    """The contact's other tickets (open ones, then recently closed) and portal access."""
    if ticket.contact_id is not None:
        mine = Ticket.contact_id == ticket.contact_id
    elif ticket.submitter_email:
        mine = Ticket.submitter_email == ticket.submitter_email
    else:
        return CustomerCard([], [], "none")
    rows = list(
        db.session.scalars(
            select(Ticket)
            .where(mine, Ticket.id != ticket.id)
            .order_by(case((Ticket.status.in_(CLOSED), 1), else_=0), Ticket.updated_at.desc())
            .limit(RECENT * 2)
        )
    )
    open_rows = [t for t in rows if t.status not in CLOSED][:RECENT]
    recent = [t for t in rows if t.status in CLOSED][: max(RECENT - len(open_rows), 2)]
    portal = "none"
    contact = ticket.contact
    if contact is not None and contact.user is not None:
        portal = "active" if contact.user.password_hash and contact.user.active else "invited"
    return CustomerCard(open_rows, recent, portal)
