"""Opening a ticket, whatever the channel."""

from __future__ import annotations

from flask import current_app

from app import audit
from app.actor import Actor
from app.extensions import db
from app.models.people import Account, Contact, Team, User
from app.models.tickets import (
    Category,
    Channel,
    EntryKind,
    Priority,
    Status,
    Ticket,
    TicketType,
)
from app.tickets import recipients
from app.tickets.errors import InvalidTicketChange
from app.tickets.numbering import next_number
from app.tickets.stream import add_entry
from app.tickets.tags import apply_tags

FIRST_ENTRY_KIND = {
    Channel.MAIL: EntryKind.MAIL_IN,
    Channel.PORTAL: EntryKind.PORTAL_MESSAGE,
    Channel.AGENT: EntryKind.MESSAGE,
    Channel.API: EntryKind.MESSAGE,
}


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
) -> Ticket:
    """Create a ticket with its number, first stream entry, recipients and audit row.

    Nothing is committed: the caller commits, so a mail that fails later in ingestion
    leaves no half-made ticket behind.
    """
    subject = " ".join(subject.split())
    if not subject:
        raise InvalidTicketChange("A ticket needs a subject.")
    if contact is None and not submitter_email:
        raise InvalidTicketChange("A ticket needs a contact or a submitter address.")
    if account is None and contact is not None:
        account = contact.account
    ticket = Ticket(
        number=next_number(current_app.config["TICKET_PREFIX"]),
        subject=subject[:300],
        status=Status.NEW.value,
        priority=Priority(priority).value,
        type=TicketType(ticket_type).value,
        channel=Channel(channel).value,
        category=category,
        contact=contact,
        account=account,
        submitter_name=submitter_name or (contact.name if contact else None),
        submitter_email=(submitter_email or (contact.email if contact else "")).lower() or None,
        submitter_company=submitter_company,
        assignee=assignee,
        team=team or (assignee.team if assignee else None),
        created_by=actor.user,
        waiting_for_dispatch=assignee is None,
        tags=[],
        version=1,
    )
    # Tags and recipients query tags and users, and every query autoflushes. While the
    # ticket is not in the session yet those flushes write only what the caller left
    # pending (usually nothing), so the ticket, its entry, recipients and subscribers go
    # to the database in the one flush below instead of in three or four partial ones.
    if tags:
        apply_tags(ticket, tags)
    recipients.initialise(ticket)
    db.session.add(ticket)
    add_entry(
        ticket,
        FIRST_ENTRY_KIND[Channel(channel)],
        actor,
        body_text=body_text,
        body_html=body_html,
        data={"channel": Channel(channel).value},
    )
    db.session.flush()
    audit.record(
        actor,
        "ticket.create",
        "ticket",
        ticket.number,
        ticket_id=ticket.id,
        channel=Channel(channel).value,
        priority=ticket.priority,
    )
    return ticket
