"""The ticket domain. Functions here change the session and never commit: the caller does.

That keeps "change + stream entry + audit row" one transaction even when a view or job
makes several changes at once (a reply that also sets Pending, a bulk action).
"""

from app.tickets import search  # noqa: F401  (registers the index upkeep on every session)
from app.tickets.assignment import assign
from app.tickets.changes import (
    add_customer_message,
    add_note,
    change_category,
    change_priority,
    change_status,
    link_tickets,
    linked_tickets,
    set_leads,
    set_tags,
    unlink_tickets,
)
from app.tickets.creation import create_ticket
from app.tickets.errors import InvalidTicketChange, TransitionNotAllowed
from app.tickets.workflow import TRANSITIONS, allowed_targets, check_transition

__all__ = [
    "TRANSITIONS",
    "InvalidTicketChange",
    "TransitionNotAllowed",
    "add_customer_message",
    "add_note",
    "allowed_targets",
    "assign",
    "change_category",
    "change_priority",
    "change_status",
    "check_transition",
    "create_ticket",
    "link_tickets",
    "linked_tickets",
    "set_leads",
    "set_tags",
    "unlink_tickets",
]
