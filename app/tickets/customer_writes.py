"""What happens when a customer writes on a ticket, whatever the channel.

A portal reply, a mail answering a ticket, an API call on a customer's behalf: each goes
through ``customer_writes``, so the rules are the same everywhere:

- within ``REOPEN_DAYS`` of being solved or closed, the message lands on the ticket; a
  Pending, Resolved or Closed ticket becomes Open (``add_customer_message``), and a
  Pending ticket's follow-up reminder and auto-close are cancelled (``pending``);
- later, the old conversation is history: the message opens a new ticket, linked to the
  old one as related, so the old ticket's reports and SLA figures stay as they were;
- either way the ticket lands in the agents' inbox, unread for its manager
  (``stream.add_entry`` does that for every customer entry), and the files sent with the
  message are attached to its entry.

Like the rest of the domain this changes the session and never commits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from flask_babel import gettext as _

from app.actor import Actor
from app.errors import InvalidInput
from app.extensions import db
from app.models.files import VaultFile
from app.models.people import Contact
from app.models.tickets import Channel, EntryKind, LinkKind, Priority, Status, StreamEntry, Ticket
from app.models.types import utcnow
from app.notifications import NotificationKind, notify
from app.tickets.changes import add_customer_message, link_tickets
from app.tickets.creation import create_ticket
from app.tickets.pending import cancel_timers

ENTRY_KIND = {
    Channel.PORTAL: EntryKind.PORTAL_MESSAGE,
    Channel.MAIL: EntryKind.MAIL_IN,
    Channel.API: EntryKind.PORTAL_MESSAGE,
}


@dataclass(frozen=True)
class CustomerWrite:
    """Where a customer's message landed."""

    ticket: Ticket  # the same ticket, or the new one that follows it up
    entry: StreamEntry
    new_ticket: bool


def closed_since(ticket: Ticket) -> datetime | None:
    """When the ticket stopped being worked on, or None while it is active."""
    status = Status(ticket.status)
    if status is Status.CLOSED:
        return ticket.closed_at or ticket.resolved_at or ticket.updated_at
    if status is Status.RESOLVED:
        return ticket.resolved_at or ticket.updated_at
    return None


def reply_reopens(ticket: Ticket, now: datetime | None = None) -> bool:
    """False when a message would open a new ticket: closed longer than ``REOPEN_DAYS``."""
    since = closed_since(ticket)
    if since is None:
        return True
    window = timedelta(days=int(current_app.config["REOPEN_DAYS"]))
    return (now or utcnow()) - since <= window


def attach(files: Sequence[VaultFile], ticket: Ticket, entry: StreamEntry) -> None:
    """Files sent with a message belong to its entry (and so to its visibility)."""
    for file in files:
        file.ticket = ticket
        file.entry = entry


def _queue_reopen_notice(ticket: Ticket, entry: StreamEntry) -> None:
    """After the commit: tell the customer their message reopened the ticket
    (``app.mail.autoresponse.reopen_notice`` decides whether, and to whom)."""
    from app.jobs import enqueue_after_commit
    from app.jobs.mail import send_reopen_notice

    db.session.flush()
    enqueue_after_commit(send_reopen_notice, (ticket.id, entry.id))


def customer_writes(
    ticket: Ticket,
    actor: Actor,
    channel: Channel,
    *,
    body_text: str,
    body_html: str | None = None,
    files: Sequence[VaultFile] = (),
    contact: Contact | None = None,
    data: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> CustomerWrite:
    """The customer's message on ``ticket``, or on a new ticket that follows it up.

    ``contact``: who wrote, when known (a mail from a colleague of the ticket's contact);
    the follow-up ticket is theirs, else the old ticket's contact's. ``data`` is kept on
    the entry (mail headers, for instance).
    """
    if not body_text.strip() and not body_html:
        raise InvalidInput(_("Please write a message."))
    kind = ENTRY_KIND[Channel(channel)]
    if reply_reopens(ticket, now):
        was_done = closed_since(ticket) is not None
        entry = add_customer_message(
            ticket, actor, body_text, kind=kind, body_html=body_html, data=data or None
        )
        if ticket.pending_until is not None or ticket.pending_since is not None:
            cancel_timers(ticket)  # the customer answered: no follow-up reminder, no auto-close
        attach(files, ticket, entry)
        if was_done and closed_since(ticket) is None:
            _queue_reopen_notice(ticket, entry)
        notify(NotificationKind.CUSTOMER_WROTE, ticket, actor, text=body_text)
        return CustomerWrite(ticket, entry, new_ticket=False)
    writer = contact or ticket.contact
    follow_up = create_ticket(
        channel,
        actor,
        subject=ticket.subject,
        body_text=body_text,
        body_html=body_html,
        category=ticket.category,
        contact=writer,
        account=ticket.account if writer is ticket.contact else None,
        submitter_email=None if writer is not None else (actor.email or ticket.submitter_email),
        submitter_name=None if writer is not None else actor.name,
        priority=Priority(ticket.priority),
    )
    entry = follow_up.entries[0]
    if data:
        entry.data = {**(entry.data or {}), **data}
    link_tickets(follow_up, ticket, actor, LinkKind.RELATED)
    attach(files, follow_up, entry)
    notify(
        NotificationKind.CUSTOMER_WROTE, follow_up, actor, manager=ticket.assignee, text=body_text
    )
    return CustomerWrite(follow_up, entry, new_ticket=True)
