"""Who hears about a ticket: external To/Cc/Bcc and subscribed employees.

Initial rules (as Zammad and Znuny do): the customer (contact address, else the sender's
address) is the To; the manager, the account's manager on our side and every agent who
chose to receive all mail are subscribed. A new manager is subscribed on assignment.
"""

from __future__ import annotations

from sqlalchemy import select

from app.extensions import db
from app.models.people import User
from app.models.tickets import RecipientKind, Ticket, TicketRecipient


def initialise(ticket: Ticket) -> None:
    address = ticket.contact.email if ticket.contact is not None else ticket.submitter_email
    name = ticket.contact.name if ticket.contact is not None else ticket.submitter_name
    if address and not any(r.address == address.lower() for r in ticket.recipients):
        ticket.recipients.append(
            TicketRecipient(kind=RecipientKind.TO.value, address=address.lower(), name=name)
        )
    if ticket.assignee is not None:
        subscribe(ticket, ticket.assignee)
    if ticket.account is not None and ticket.account.account_manager is not None:
        subscribe(ticket, ticket.account.account_manager)
    everyone = db.session.scalars(
        select(User).where(User.receives_all_mail.is_(True), User.active.is_(True))
    )
    for user in everyone:
        subscribe(ticket, user)


def subscribe(ticket: Ticket, user: User) -> None:
    if user not in ticket.subscribers:
        ticket.subscribers.append(user)


def unsubscribe(ticket: Ticket, user: User) -> None:
    if user in ticket.subscribers:
        ticket.subscribers.remove(user)
