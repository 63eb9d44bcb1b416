"""Read-side queries for lists; one query each, relations loaded up front (no N+1)."""

from __future__ import annotations

from sqlalchemy import Select, or_, select
from sqlalchemy.orm import joinedload

from app.extensions import db
from app.models.people import Contact, User
from app.models.tickets import Ticket
from app.tickets.listing import ListQuery, ListRow, list_tickets

# The inbox is one of the agent lists; its rows are the lists' rows (read state, overdue).
InboxRow = ListRow


def _with_people(stmt: Select) -> Select:
    return stmt.options(
        joinedload(Ticket.contact), joinedload(Ticket.assignee), joinedload(Ticket.account)
    )


def inbox(viewer: User, *, page: int = 1, per_page: int = 50) -> tuple[list[ListRow], int]:
    """Tickets with customer activity waiting, newest activity first, with read state."""
    result = list_tickets(ListQuery(view="inbox", page=page), viewer, per_page=per_page)
    return result.rows, result.total


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
