"""A ticket's leads: the contacts of its account who drive the matter.

Decision (issue 11, point 13): leads used to be sales prospects (``Lead``) picked from
every company's list, so an agent could name another customer's person on a ticket. A
lead is now a ``Contact`` of the ticket's own account, chosen with a searchable picker
that only ever offers that account's contacts; ``set_leads`` refuses anyone else, so a
forged form cannot cross to another customer. A ticket without an account has no
candidates (link it to an account first); leads it had stay removable. The ``Lead`` table
stays as the sales side's list of prospects, no longer attached to tickets.
"""

from __future__ import annotations

from flask_babel import gettext as _
from sqlalchemy import func, or_, select

from app.actor import Actor
from app.errors import InvalidInput
from app.extensions import db
from app.models.people import Contact
from app.models.tickets import StreamEntry, Ticket
from app.tickets.changes import set_leads as _record_leads

CANDIDATES = 8


def lead_candidates(ticket: Ticket, query: str = "", limit: int = CANDIDATES) -> list[Contact]:
    """Contacts of the ticket's account matching ``query`` (name or address), not yet leads."""
    if ticket.account_id is None:
        return []
    chosen = [c.id for c in ticket.leads]
    statement = select(Contact).where(Contact.account_id == ticket.account_id)
    if chosen:
        statement = statement.where(Contact.id.not_in(chosen))
    words = query.strip().lower()
    if words:
        like = f"%{words.replace('%', '').replace('_', '')}%"
        statement = statement.where(
            or_(func.lower(Contact.name).like(like), func.lower(Contact.email).like(like))
        )
    return list(db.session.scalars(statement.order_by(Contact.name).limit(limit)))


def set_leads(ticket: Ticket, contact_ids: list[int], actor: Actor) -> StreamEntry | None:
    """Make the ticket's leads exactly these contacts, all of its own account.

    A contact the ticket already names stays allowed even if it has since moved account,
    so unticking it works; a new one must belong to the ticket's account.
    """
    wanted = set(contact_ids)
    contacts = (
        list(db.session.scalars(select(Contact).where(Contact.id.in_(wanted)))) if wanted else []
    )
    if len(contacts) != len(wanted):
        raise InvalidInput(_("One of the chosen leads no longer exists; reload the page."))
    current = {c.id for c in ticket.leads}
    for contact in contacts:
        if contact.id in current:
            continue
        if ticket.account_id is None or contact.account_id != ticket.account_id:
            raise InvalidInput(
                _(
                    "%(name)s is not a contact of this ticket's account and cannot be a lead.",
                    name=contact.name,
                )
            )
    return _record_leads(ticket, contacts, actor)
