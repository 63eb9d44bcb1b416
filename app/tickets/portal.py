"""The customer's side of tickets: what a portal user may see, and what they may do.

Every lookup goes through ``visible_condition``: a customer sees their own tickets, and an
account-manager contact (``Contact.sees_account_tickets``) also their account's; nothing
else, ever. Anything outside that answers ``NotFound`` with the same message whether the
ticket exists or not, so numbers cannot be probed.

Like the rest of the domain these functions change the session and never commit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from flask_babel import gettext as _
from sqlalchemy import ColumnElement, ScalarSelect, false, func, or_, select
from sqlalchemy.orm import selectinload

from app import audit
from app.actor import Actor
from app.errors import Conflict, InvalidInput, NotFound
from app.extensions import db
from app.models.files import FileKind, VaultFile
from app.models.people import Contact, User
from app.models.tickets import (
    Category,
    Channel,
    EntryKind,
    Priority,
    Status,
    StreamEntry,
    Ticket,
    TicketRating,
    TicketRead,
    Visibility,
)
from app.models.types import utcnow
from app.pagination import clamp_page, page_count
from app.tickets.changes import change_status
from app.tickets.creation import create_ticket
from app.tickets.customer_writes import CustomerWrite, attach, customer_writes

State = Literal["open", "closed", "all"]
STATES: tuple[State, ...] = ("open", "closed", "all")
PER_PAGE = 25
CLOSED_STATUSES = (Status.RESOLVED.value, Status.CLOSED.value)
# The conversation: what was said to or by the customer. Status, assignment, link and
# inbox entries are bookkeeping for the desk, even when not marked internal.
CONVERSATION_KINDS = (
    EntryKind.MAIL_IN.value,
    EntryKind.MAIL_OUT.value,
    EntryKind.PORTAL_MESSAGE.value,
    EntryKind.MESSAGE.value,
)
# What the desk says to the customer: only these make a ticket unread in the portal.
STAFF_KINDS = (EntryKind.MAIL_OUT.value, EntryKind.MESSAGE.value)
CUSTOMER_KINDS = (EntryKind.MAIL_IN.value, EntryKind.PORTAL_MESSAGE.value)


def status_words(status: Status | str) -> str:
    """The status as a customer understands it, not the desk's workflow vocabulary."""
    words = {
        Status.NEW: _("We received your request"),
        Status.OPEN: _("We are working on it"),
        Status.IN_PROGRESS: _("We are working on it"),
        Status.PENDING: _("Waiting for your reply"),
        Status.WAITING_THIRD_PARTY: _("Waiting for a third party"),
        Status.RESOLVED: _("Solved"),
        Status.CLOSED: _("Closed"),
    }
    return words[Status(status)]


def contact_of(user: User) -> Contact | None:
    return db.session.scalar(select(Contact).where(Contact.user_id == user.id))


def visible_condition(user: User) -> ColumnElement[bool]:
    """The one rule of portal visibility, as a WHERE clause."""
    contact = contact_of(user)
    if contact is None or user.is_staff:
        return false()
    mine = Ticket.contact_id == contact.id
    if contact.sees_account_tickets and contact.account_id is not None:
        return or_(mine, Ticket.account_id == contact.account_id)
    return mine


def _not_found() -> NotFound:
    return NotFound(_("There is no such ticket in your portal."))


@dataclass(frozen=True)
class PortalRow:
    ticket: Ticket
    unread: bool


@dataclass(frozen=True)
class PortalPage:
    rows: list[PortalRow]
    total: int
    page: int
    pages: int
    state: State
    text: str


def _latest_staff_reply() -> ScalarSelect[datetime]:
    """When the desk last wrote to the customer on the enclosing query's ticket.

    Correlated to one ticket and ordered like ``ix_stream_entry_ticket_created``, so the
    database walks that ticket's entries from the newest and stops at the first staff
    message: the cost follows the ticket, never the number of entries on the desk.
    """
    return (
        select(StreamEntry.created_at)
        .where(
            StreamEntry.ticket_id == Ticket.id,
            StreamEntry.visibility == Visibility.EXTERNAL.value,
            StreamEntry.kind.in_(STAFF_KINDS),
        )
        .order_by(StreamEntry.created_at.desc())
        .limit(1)
        .correlate(Ticket)
        .scalar_subquery()
    )


def visible_tickets(
    user: User, *, state: str = "open", text: str = "", page: int = 1
) -> PortalPage:
    """The user's tickets (or their account's), filtered, newest change first, paged.

    The page's ticket ids are chosen first (an index search from the customer or account),
    and the unread flag is worked out for those 25 only: an account with thousands of
    tickets costs one page of look-ups, not one per ticket.
    """
    state_ = state if state in STATES else "open"
    text = " ".join(text.split())[:200]
    conditions = [visible_condition(user)]
    if state_ == "open":
        conditions.append(Ticket.status.not_in(CLOSED_STATUSES))
    elif state_ == "closed":
        conditions.append(Ticket.status.in_(CLOSED_STATUSES))
    if text:
        escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        conditions.append(Ticket.subject.ilike(f"%{escaped}%", escape="\\"))
    total = db.session.scalar(select(func.count(Ticket.id)).where(*conditions)) or 0
    pages = page_count(total, PER_PAGE)
    page = clamp_page(page, total, PER_PAGE)
    newest_first = (Ticket.updated_at.desc(), Ticket.id.desc())
    on_page = (
        select(Ticket.id)
        .where(*conditions)
        .order_by(*newest_first)
        .limit(PER_PAGE)
        .offset((page - 1) * PER_PAGE)
        .subquery("on_page")
    )
    stmt = (
        select(Ticket, _latest_staff_reply(), TicketRead.read_at)
        .join(on_page, on_page.c.id == Ticket.id)
        .outerjoin(
            TicketRead, (TicketRead.ticket_id == Ticket.id) & (TicketRead.user_id == user.id)
        )
        .order_by(*newest_first)
    )
    rows = [
        PortalRow(ticket, _is_unread(latest_staff, read_at))
        for ticket, latest_staff, read_at in db.session.execute(stmt)
    ]
    return PortalPage(rows, total, page, pages, state_, text)


def _is_unread(latest_staff: datetime | None, read_at: datetime | None) -> bool:
    if latest_staff is None:
        return False
    return read_at is None or latest_staff > read_at


def ticket_for(user: User, number: str) -> Ticket:
    """The ticket if this user may see it; ``NotFound`` alike for missing and not theirs."""
    ticket = db.session.scalar(
        select(Ticket).where(Ticket.number == number.strip(), visible_condition(user))
    )
    if ticket is None:
        raise _not_found()
    return ticket


def public_entries(ticket: Ticket) -> list[StreamEntry]:
    """The conversation, oldest first: external messages only, never notes or bookkeeping."""
    return list(
        db.session.scalars(
            select(StreamEntry)
            .where(
                StreamEntry.ticket_id == ticket.id,
                StreamEntry.visibility == Visibility.EXTERNAL.value,
                StreamEntry.kind.in_(CONVERSATION_KINDS),
            )
            .options(selectinload(StreamEntry.attachments))
            .order_by(StreamEntry.created_at, StreamEntry.id)
        )
    )


def is_from_customer(entry: StreamEntry) -> bool:
    """Which side of the chat an entry belongs on."""
    return entry.kind in CUSTOMER_KINDS


def public_file(ticket: Ticket, public_id: str) -> VaultFile:
    """A file attached to a public message of ``ticket``; anything else is ``NotFound``."""
    file = db.session.scalar(
        select(VaultFile)
        .join(StreamEntry, VaultFile.entry_id == StreamEntry.id)
        .where(
            VaultFile.public_id == public_id,
            # Inline images have their own route; a mail's original is for agents only.
            VaultFile.kind == FileKind.ATTACHMENT.value,
            VaultFile.erased_at.is_(None),
            StreamEntry.ticket_id == ticket.id,
            StreamEntry.visibility == Visibility.EXTERNAL.value,
            StreamEntry.kind.in_(CONVERSATION_KINDS),
        )
    )
    if file is None:
        raise NotFound(_("There is no such file on this ticket."))
    return file


def is_unread(user: User, ticket: Ticket) -> bool:
    latest = db.session.scalar(
        select(func.max(StreamEntry.created_at)).where(
            StreamEntry.ticket_id == ticket.id,
            StreamEntry.visibility == Visibility.EXTERNAL.value,
            StreamEntry.kind.in_(STAFF_KINDS),
        )
    )
    read = db.session.get(TicketRead, (ticket.id, user.id))
    return _is_unread(latest, read.read_at if read else None)


def active_categories() -> list[Category]:
    return list(db.session.scalars(select(Category).where(Category.active).order_by(Category.name)))


def open_ticket(
    user: User,
    *,
    subject: str,
    description: str,
    category: Category | None,
    priority: Priority | None,
    files: list[VaultFile],
    client_address: str | None = None,
) -> Ticket:
    """A new request from the portal; it lands in the agents' inbox like any other."""
    contact = contact_of(user)
    if contact is None:
        raise Conflict(_("Your portal account is not linked to a contact; ask support."))
    if not description.strip():
        raise InvalidInput(_("Please describe your request."))
    actor = Actor.customer(user, client_address=client_address)
    ticket = create_ticket(
        Channel.PORTAL,
        actor,
        subject=subject,
        body_text=description,
        category=category,
        contact=contact,
        priority=priority or Priority.NORMAL,
    )
    attach(files, ticket, ticket.entries[0])
    # The same acknowledgement as a ticket opened by mail (``app.mail.autoresponse``).
    from app.jobs import enqueue_after_commit
    from app.jobs.mail import send_autoresponse

    enqueue_after_commit(send_autoresponse, (ticket.id,))
    return ticket


def reply(
    user: User,
    ticket: Ticket,
    text: str,
    files: list[VaultFile],
    *,
    client_address: str | None = None,
) -> CustomerWrite:
    """The customer answers from the portal (the rules: ``customer_writes``)."""
    return customer_writes(
        ticket,
        Actor.customer(user, client_address=client_address),
        Channel.PORTAL,
        body_text=text,
        files=files,
        contact=contact_of(user),
    )


def can_close(ticket: Ticket) -> bool:
    return Status(ticket.status) is not Status.CLOSED


def close(user: User, ticket: Ticket, *, client_address: str | None = None) -> None:
    """The customer needs nothing more: Closed through the status machine (audited)."""
    if not can_close(ticket):
        raise Conflict(_("This ticket is already closed."))
    change_status(
        ticket,
        Status.CLOSED,
        Actor.customer(user, client_address=client_address),
        reason="Closed by the customer in the portal.",
    )


def can_rate(ticket: Ticket) -> bool:
    return Status(ticket.status).is_closed


def rating_of(ticket: Ticket) -> TicketRating | None:
    return db.session.scalar(select(TicketRating).where(TicketRating.ticket_id == ticket.id))


def rate(
    user: User,
    ticket: Ticket,
    score: int,
    comment: str = "",
    *,
    client_address: str | None = None,
) -> TicketRating:
    """Rate the answer once the ticket is Resolved or Closed; rating again changes it."""
    if not can_rate(ticket):
        raise Conflict(_("You can rate a ticket once it is solved or closed."))
    if score not in range(1, 6):
        raise InvalidInput(_("Choose between 1 and 5 stars."))
    comment = comment.strip()[:5000] or None  # type: ignore[assignment]
    contact = contact_of(user)
    rating = rating_of(ticket)
    now = utcnow()
    if rating is None:
        rating = TicketRating(ticket=ticket, created_at=now)
        db.session.add(rating)
    rating.score = score
    rating.comment = comment
    rating.contact_id = contact.id if contact else None
    rating.updated_at = now
    audit.record(
        Actor.customer(user, client_address=client_address),
        "ticket.rating",
        "ticket",
        ticket.number,
        ticket_id=ticket.id,
        score=score,
    )
    return rating
