"""Who hears about a ticket: external To/Cc/Bcc and subscribed employees.

Initial rules (as Zammad and Znuny do): the customer (contact address, else the sender's
address) is the To; the manager, the account's manager on our side and every agent who
chose to receive all mail are subscribed. A new manager is subscribed on assignment.
"""

from __future__ import annotations

from flask_babel import gettext as _
from sqlalchemy import Integer, and_, bindparam, insert, or_, select

from app import audit
from app.actor import Actor
from app.errors import NotFound
from app.extensions import db
from app.mail.addresses import normalise_address
from app.models.people import STAFF_ROLES, Account, User, UserRole
from app.models.tickets import (
    EntryKind,
    RecipientKind,
    Ticket,
    TicketRecipient,
    ticket_subscribers,
)
from app.tickets.errors import InvalidTicketChange
from app.tickets.stream import add_entry

_INSERT_RECIPIENT = insert(TicketRecipient)
# The manager, the account's manager and every active agent who chose all mail, each once.
_SUBSCRIBE_AT_CREATION = insert(ticket_subscribers).from_select(
    ["ticket_id", "user_id"],
    select(bindparam("ticket_id", type_=Integer), User.id).where(
        or_(
            User.id == bindparam("assignee_id", type_=Integer),
            User.id
            == select(Account.account_manager_id)
            .where(Account.id == bindparam("account_id", type_=Integer))
            .scalar_subquery(),
            and_(User.receives_all_mail.is_(True), User.active.is_(True)),
        )
    ),
)


def initialise(ticket: Ticket) -> None:
    """Give a ticket just inserted its To address and subscribers (the rules: see above).

    Two INSERT statements rather than loading users and appending them to the ticket's
    collections: this runs for every ticket mail ingestion opens, and loading the account
    manager and the staff, then flushing the collections, cost more than the rest of ticket
    creation together. The ticket must have no recipients or subscribers yet; both
    collections are expired, so the object shows the new rows on next access.
    """
    db.session.flush()  # the account manager and staff flags as the caller left them
    connection = db.session.connection()
    contact = ticket.contact
    address = contact.email if contact is not None else ticket.submitter_email
    name = contact.name if contact is not None else ticket.submitter_name
    if address:
        connection.execute(
            _INSERT_RECIPIENT,
            {
                "ticket_id": ticket.id,
                "kind": RecipientKind.TO.value,
                "address": address.lower(),
                "name": name,
            },
        )
    connection.execute(
        _SUBSCRIBE_AT_CREATION,
        {
            "ticket_id": ticket.id,
            "assignee_id": ticket.assignee_id,
            "account_id": ticket.account_id,
        },
    )
    db.session.expire(ticket, ["recipients", "subscribers"])


def subscribe(ticket: Ticket, user: User) -> None:
    if user not in ticket.subscribers:
        ticket.subscribers.append(user)


def unsubscribe(ticket: Ticket, user: User) -> None:
    if user in ticket.subscribers:
        ticket.subscribers.remove(user)


# --- Changes made by people -------------------------------------------------------------
#
# ``initialise``/``subscribe``/``unsubscribe`` above are silent: they run inside ticket
# creation and assignment, which write their own entries. What follows is an agent editing
# the Recipients tab, so each change leaves an internal SYSTEM entry and an audit row.

NAME_MAX = 200


def _clean_name(name: str | None) -> str | None:
    cleaned = " ".join((name or "").split())  # also drops CR/LF: the name goes into headers
    if len(cleaned) > NAME_MAX:
        raise InvalidTicketChange(_("A name has at most %(n)d characters.", n=NAME_MAX))
    return cleaned or None


def add_recipient(
    ticket: Ticket,
    actor: Actor,
    kind: RecipientKind | str,
    address: str,
    name: str | None = None,
) -> TicketRecipient:
    """Add an external To/Cc/Bcc address; one address appears once, whatever its kind."""
    try:
        kind = RecipientKind(kind)
    except ValueError:
        raise InvalidTicketChange(_("Choose To, Cc or Bcc.")) from None
    address = normalise_address(address)
    name = _clean_name(name)
    existing = next((r for r in ticket.recipients if r.address == address), None)
    if existing is not None:
        raise InvalidTicketChange(
            _(
                "%(address)s is already a recipient (%(kind)s).",
                address=address,
                kind=RecipientKind(existing.kind).value.title(),
            )
        )
    recipient = TicketRecipient(kind=kind.value, address=address, name=name)
    ticket.recipients.append(recipient)
    label = f"{name} <{address}>" if name else address
    add_entry(
        ticket,
        EntryKind.SYSTEM,
        actor,
        body_text=f"Recipient added: {label} ({kind.value.title()}).",
        internal=True,
        data={"recipient_added": address, "kind": kind.value},
    )
    audit.record(
        actor,
        "ticket.recipient_add",
        "ticket",
        ticket.number,
        ticket_id=ticket.id,
        address=address,
        kind=kind.value,
    )
    return recipient


def recipient_of(ticket: Ticket, recipient_id: int) -> TicketRecipient:
    recipient = next((r for r in ticket.recipients if r.id == recipient_id), None)
    if recipient is None:
        raise NotFound(_("There is no such recipient on this ticket."))
    return recipient


def remove_recipient(ticket: Ticket, actor: Actor, recipient: TicketRecipient) -> None:
    """Remove an external address; the ticket may end up with none (internal-only work)."""
    ticket.recipients.remove(recipient)  # delete-orphan removes the row
    add_entry(
        ticket,
        EntryKind.SYSTEM,
        actor,
        body_text=f"Recipient removed: {recipient.address} ({recipient.kind.title()}).",
        internal=True,
        data={"recipient_removed": recipient.address, "kind": recipient.kind},
    )
    audit.record(
        actor,
        "ticket.recipient_remove",
        "ticket",
        ticket.number,
        ticket_id=ticket.id,
        address=recipient.address,
        kind=recipient.kind,
    )


def add_subscriber(ticket: Ticket, actor: Actor, user: User | None) -> None:
    """Subscribe an employee (oneself or a colleague) so they hear about the ticket."""
    if user is None or not user.active or not user.is_staff:
        raise InvalidTicketChange(_("Only active staff can be subscribed to a ticket."))
    if user in ticket.subscribers:
        raise InvalidTicketChange(_("%(name)s is already subscribed.", name=user.name))
    subscribe(ticket, user)
    who = "subscribed" if user.id == actor.user_id else f"subscribed {user.name}"
    add_entry(
        ticket,
        EntryKind.SYSTEM,
        actor,
        body_text=f"{actor.name or 'Someone'} {who}.",
        internal=True,
        data={"subscribed": user.email},
    )
    audit.record(
        actor, "ticket.subscribe", "ticket", ticket.number, ticket_id=ticket.id, user=user.email
    )


def remove_subscriber(ticket: Ticket, actor: Actor, user: User | None) -> None:
    if user is None or user not in ticket.subscribers:
        raise InvalidTicketChange(_("That person is not subscribed."))
    unsubscribe(ticket, user)
    who = "unsubscribed" if user.id == actor.user_id else f"unsubscribed {user.name}"
    add_entry(
        ticket,
        EntryKind.SYSTEM,
        actor,
        body_text=f"{actor.name or 'Someone'} {who}.",
        internal=True,
        data={"unsubscribed": user.email},
    )
    audit.record(
        actor, "ticket.unsubscribe", "ticket", ticket.number, ticket_id=ticket.id, user=user.email
    )


def subscribable_staff(ticket: Ticket) -> list[User]:
    """Active staff not yet subscribed, for the "add a colleague" picker."""
    subscribed = {u.id for u in ticket.subscribers}
    staff = db.session.scalars(
        select(User)
        .join(User.role_rows)
        .where(User.active.is_(True), UserRole.role.in_([r.value for r in STAFF_ROLES]))
        .order_by(User.name)
        .distinct()
    )
    return [u for u in staff if u.id not in subscribed]
