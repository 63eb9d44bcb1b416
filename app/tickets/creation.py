"""Opening a ticket, whatever the channel."""

from __future__ import annotations

import enum
from typing import Any

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import Row, insert, inspect
from sqlalchemy.orm import make_transient_to_detached

from app import audit
from app.actor import Actor, ActorKind
from app.errors import InvalidInput
from app.extensions import db
from app.models.files import VaultFile
from app.models.people import Account, Contact, Team, User
from app.models.tickets import (
    Category,
    Channel,
    EntryKind,
    Priority,
    Status,
    StreamEntry,
    Ticket,
    TicketType,
)
from app.models.types import utcnow
from app.notifications import NotificationKind, notify
from app.sla import assignment_rules
from app.sla.targets import recompute_due
from app.tickets import recipients, search
from app.tickets.errors import InvalidTicketChange, TransitionNotAllowed
from app.tickets.numbering import next_number
from app.tickets.stream import entry_row, is_customer_activity
from app.tickets.tags import apply_tags

FIRST_ENTRY_KIND = {
    Channel.MAIL: EntryKind.MAIL_IN,
    Channel.PORTAL: EntryKind.PORTAL_MESSAGE,
    Channel.AGENT: EntryKind.MESSAGE,
    Channel.API: EntryKind.MESSAGE,
}

_TICKET_COLUMNS = tuple(Ticket.__table__.columns)
_INSERT_TICKET = insert(Ticket).returning(*_TICKET_COLUMNS)
_INSERT_ENTRY = insert(StreamEntry)


def _attach(row: Row[Any]) -> Ticket:
    """The ticket object for a row just inserted, in the session as if loaded by a query.

    Cheaper than an ORM insert with RETURNING, which builds the same object through the
    loading machinery; relationships are left unloaded and load on first access.
    """
    mapper = inspect(Ticket)
    keys = (mapper.get_property_by_column(column).key for column in _TICKET_COLUMNS)
    ticket = Ticket(**dict(zip(keys, row, strict=True)))
    make_transient_to_detached(ticket)
    db.session.add(ticket)
    return ticket


def create_ticket(
    channel: Channel,
    actor: Actor,
    *,
    subject: str,
    body_text: str = "",
    body_html: str | None = None,
    priority: Priority = Priority.NORMAL,
    ticket_type: TicketType = TicketType.QUESTION,
    category: Category | None = None,
    contact: Contact | None = None,
    account: Account | None = None,
    submitter_name: str | None = None,
    submitter_email: str | None = None,
    submitter_company: str | None = None,
    assignee: User | None = None,
    team: Team | None = None,
    tags: list[str] | None = None,
    entry_data: dict[str, Any] | None = None,
) -> Ticket:
    """Create a ticket with its number, first stream entry, recipients and audit row.

    Nothing is committed: the caller commits, so a mail that fails later in ingestion
    leaves no half-made ticket behind.

    The rows are written with INSERT statements, not built as objects for a flush: mail
    ingestion opens hundreds of tickets a second, and the unit of work for a ticket with a
    dozen relationships cost several times the SQL itself (``bench/ticket_create.py``). The
    ticket comes back as a persistent object whose collections load on first access.

    ``entry_data`` adds keys to the first entry's data (``open_for_customer``: how the
    customer reached the agent, and whose words the entry holds).
    """
    subject = " ".join(subject.split())
    if not subject:
        raise InvalidTicketChange("A ticket needs a subject.")
    if contact is None and not submitter_email:
        raise InvalidTicketChange("A ticket needs a contact or a submitter address.")
    channel = Channel(channel)
    # The rows below refer to these objects by id, and the caller may have just made them
    # (or changed a contact's account): after the flush their ids and foreign keys are set.
    db.session.flush()
    if account is not None:
        account_id = account.id
    else:
        account_id = contact.account_id if contact is not None else None
    if team is not None:
        team_id = team.id
    else:
        team_id = assignee.team_id if assignee is not None else None
    now = utcnow()
    entry = entry_row(
        FIRST_ENTRY_KIND[channel],
        actor,
        body_text=body_text,
        body_html=body_html,
        data={"channel": channel.value, **(entry_data or {})},
        at=now,
    )
    from_customer = is_customer_activity(actor, internal=False)
    values = {
        "number": next_number(current_app.config["TICKET_PREFIX"]),
        "subject": subject[:300],
        "status": Status.NEW.value,
        "priority": Priority(priority).value,
        "type": TicketType(ticket_type).value,
        "channel": channel.value,
        "category_id": category.id if category is not None else None,
        "contact_id": contact.id if contact is not None else None,
        "account_id": account_id,
        "submitter_name": submitter_name or (contact.name if contact else None),
        "submitter_email": (submitter_email or (contact.email if contact else "")).lower() or None,
        "submitter_company": submitter_company,
        "assignee_id": assignee.id if assignee is not None else None,
        "team_id": team_id,
        "created_by_id": actor.user_id,
        "waiting_for_dispatch": assignee is None,
        "in_inbox": from_customer,
        "last_customer_activity_at": now if from_customer else None,
        "created_at": now,
        "updated_at": now,
        "version": 2,  # created, then touched by its first entry, as add_entry counts
    }
    connection = db.session.connection()
    ticket = _attach(connection.execute(_INSERT_TICKET, values).one())
    connection.execute(_INSERT_ENTRY, {"ticket_id": ticket.id, **entry})
    recipients.initialise(ticket)
    recompute_due(ticket, now)
    search.reindex(connection, [ticket.id])  # rows written without a flush: see search
    if tags:
        apply_tags(ticket, tags)
    audit.record_now(
        actor,
        "ticket.create",
        "ticket",
        ticket.number,
        ticket_id=ticket.id,
        channel=channel.value,
        priority=ticket.priority,
    )
    notify(NotificationKind.NEW_TICKET, ticket, actor, text=subject)
    assignment_rules.after_creation(ticket)  # a team's rule places it after the commit
    return ticket


class Intake(enum.StrEnum):
    """How a customer reached the agent who opens a ticket for them.

    The ticket's ``channel`` stays ``agent`` (an agent opened it): widening the channel's
    CHECK constraint would mean rebuilding the ticket table on SQLite, whose implicit
    DELETE with foreign keys on would cascade into every stream. The intake is a fact of
    the first entry (``data["via"]``) and of the audit row, where the ticket page and
    reports read it.
    """

    PHONE = "phone"
    WALK_IN = "walk_in"
    MAIL = "mail"  # a mail that reached someone outside the desk's mailboxes
    OTHER = "other"


def open_for_customer(
    actor: Actor,
    *,
    contact: Contact,
    via: Intake,
    subject: str,
    body: str,
    files: list[VaultFile] | None = None,
    priority: Priority = Priority.NORMAL,
    category: Category | None = None,
    assignee: User | None = None,
    confirm: bool = False,
) -> Ticket:
    """An agent opens a ticket on a customer's behalf (phone call, walk-in, forwarded mail).

    The first entry is a public message in the agent's name that holds the customer's
    request as the agent took it down; ``data["from"]`` names the customer, which is who
    the optional confirmation (the autoresponse, ``app.mail.autoresponse``, with all its
    rules: never to robots or staff, once per period) answers. Files must be this agent's
    own uploads not yet attached anywhere: anything else is refused, so no request can
    move someone else's file onto a new ticket. Audited (``ticket.create`` and
    ``ticket.open_for_customer``); nothing is committed.
    """
    if actor.kind is not ActorKind.STAFF or actor.user is None:
        raise TransitionNotAllowed(_("Only staff open tickets for customers."))
    files = files or []
    for file in files:
        if file.uploaded_by_id != actor.user_id or file.ticket_id is not None:
            raise InvalidInput(_("Only files you uploaded with this form can be attached."))
    body = body.strip()
    if not body:
        raise InvalidTicketChange(_("Write down what the customer asked for."))
    ticket = create_ticket(
        Channel.AGENT,
        actor,
        subject=subject,
        body_text=body,
        priority=priority,
        category=category,
        contact=contact,
        assignee=assignee,
        entry_data={"via": Intake(via).value, "from": contact.email},
    )
    first = ticket.entries[0]
    for file in files:
        file.ticket = ticket
        file.entry = first
    audit.record_now(
        actor,
        "ticket.open_for_customer",
        "ticket",
        ticket.number,
        ticket_id=ticket.id,
        via=Intake(via).value,
        contact_id=contact.id,
        files=len(files),
        confirmation=confirm,
    )
    if confirm:
        from app.jobs import enqueue_after_commit
        from app.jobs.mail import send_autoresponse

        enqueue_after_commit(send_autoresponse, (ticket.id,))
    return ticket
