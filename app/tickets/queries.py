"""Read-side queries for lists; one query each, relations loaded up front (no N+1)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Select, and_, func, or_, select
from sqlalchemy.orm import joinedload

from app.extensions import db
from app.models.people import Contact, User
from app.models.tickets import Ticket, TicketRead


@dataclass(frozen=True)
class InboxRow:
    ticket: Ticket
    unread: bool  # for the viewer, when they manage it
    manager_has_read: bool  # the global "envelope"


def _with_people(stmt: Select) -> Select:
    return stmt.options(
        joinedload(Ticket.contact), joinedload(Ticket.assignee), joinedload(Ticket.account)
    )


def inbox(viewer: User, *, page: int = 1, per_page: int = 50) -> tuple[list[InboxRow], int]:
    """Tickets with customer activity waiting, newest activity first, with read state."""
    viewer_read = TicketRead.__table__.alias("viewer_read")
    manager_read = TicketRead.__table__.alias("manager_read")
    base = select(Ticket).where(Ticket.in_inbox.is_(True))
    total = db.session.scalar(select(func.count()).select_from(base.subquery())) or 0
    stmt = (
        _with_people(base)
        .add_columns(viewer_read.c.read_at, manager_read.c.read_at)
        .outerjoin(
            viewer_read,
            and_(viewer_read.c.ticket_id == Ticket.id, viewer_read.c.user_id == viewer.id),
        )
        .outerjoin(
            manager_read,
            and_(
                manager_read.c.ticket_id == Ticket.id,
                manager_read.c.user_id == Ticket.assignee_id,
            ),
        )
        .order_by(Ticket.last_customer_activity_at.desc(), Ticket.id.desc())
        .limit(per_page)
        .offset((page - 1) * per_page)
    )
    rows = []
    for ticket, viewer_at, manager_at in db.session.execute(stmt).unique():
        activity = ticket.last_customer_activity_at
        rows.append(
            InboxRow(
                ticket=ticket,
                unread=ticket.assignee_id == viewer.id
                and (viewer_at is None or (activity is not None and viewer_at < activity)),
                manager_has_read=manager_at is not None
                and (activity is None or manager_at >= activity),
            )
        )
    return rows, total


def customer_tickets(user: User) -> list[Ticket]:
    """What a portal user may see: their own tickets, or their account's when allowed."""
    contact = db.session.scalar(select(Contact).where(Contact.user_id == user.id))
    if contact is None:
        return []
    mine = Ticket.contact_id == contact.id
    condition = (
        or_(mine, Ticket.account_id == contact.account_id)
        if contact.sees_account_tickets and contact.account_id is not None
        else mine
    )
    stmt = _with_people(select(Ticket).where(condition)).order_by(Ticket.updated_at.desc())
    return list(db.session.scalars(stmt).unique())
