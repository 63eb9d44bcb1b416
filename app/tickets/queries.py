"""Read-side entry points other modules use; the list machinery is in ``listing``."""

from __future__ import annotations

from app.models.people import User
from app.tickets.listing import ListQuery, ListRow, list_tickets


def inbox(viewer: User, *, page: int = 1, per_page: int = 50) -> tuple[list[ListRow], int]:
    """Tickets with customer activity waiting, newest activity first, with read state."""
    result = list_tickets(ListQuery(view="inbox", page=page), viewer, per_page=per_page)
    return result.rows, result.total
