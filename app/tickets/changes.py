"""Changing a ticket: status, priority, category, tags, links, messages and notes.

Each function changes the ticket, adds a stream entry and an audit row to the session and
returns; the caller commits once, so the three land together or not at all.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask_babel import gettext as _
from sqlalchemy import or_, select

from app import audit
from app.actor import Actor, ActorKind
from app.extensions import db
from app.models.people import Contact
from app.models.tickets import (
    Category,
    EntryKind,
    LinkKind,
    Priority,
    Status,
    StreamEntry,
    Ticket,
    TicketLink,
)
from app.models.types import utcnow
from app.sla.targets import recompute_due
from app.tickets.errors import InvalidTicketChange, TransitionNotAllowed
from app.tickets.stream import add_entry, insert_customer_entry, writable_at_once
from app.tickets.tags import apply_tags
from app.tickets.workflow import check_transition


def change_status(
    ticket: Ticket,
    target: Status,
    actor: Actor,
    *,
    pending_until: datetime | None = None,
    reason: str | None = None,
) -> StreamEntry:
    """Move the ticket along the status machine, or raise ``TransitionNotAllowed``."""
    current = Status(ticket.status)
    target = Status(target)
    check_transition(current, target, actor.kind)
    ticket.status = target.value
    now = utcnow()
    if target == Status.PENDING:
        ticket.pending_until = pending_until
        ticket.pending_since = now  # the auto-close clock (app.tickets.pending)
    else:
        ticket.pending_until = ticket.pending_since = None
    if target == Status.RESOLVED:
        ticket.resolved_at = now
    if target == Status.CLOSED:
        ticket.closed_at = now
    if current.is_closed and not target.is_closed:
        ticket.resolved_at = ticket.closed_at = None
    recompute_due(ticket, now)
    data = {"from": current.value, "to": target.value}
    if pending_until is not None:
        data["pending_until"] = pending_until.isoformat()
    entry = add_entry(
        ticket,
        EntryKind.STATUS_CHANGE,
        actor,
        body_text=f"Status changed from {current.label} to {target.label}."
        + (f" {reason}" if reason else ""),
        internal=True,
        data=data,
    )
    audit.record(actor, "ticket.status", "ticket", ticket.number, ticket_id=ticket.id, **data)
    return entry


def change_priority(ticket: Ticket, priority: Priority, actor: Actor) -> StreamEntry:
    try:
        target = Priority(priority)
    except ValueError:
        raise InvalidTicketChange(_("Unknown priority %(value)s.", value=repr(priority))) from None
    current = Priority(ticket.priority)
    if target == current:
        raise InvalidTicketChange(
            _("The priority is already %(priority)s.", priority=_(current.label))
        )
    ticket.priority = target.value
    recompute_due(ticket, utcnow())
    data = {"from": current.value, "to": target.value}
    entry = add_entry(
        ticket,
        EntryKind.PRIORITY_CHANGE,
        actor,
        body_text=f"Priority changed from {current.label} to {target.label}.",
        internal=True,
        data=data,
    )
    audit.record(actor, "ticket.priority", "ticket", ticket.number, ticket_id=ticket.id, **data)
    return entry


def change_category(ticket: Ticket, category: Category | None, actor: Actor) -> StreamEntry:
    before = ticket.category.name if ticket.category else None
    after = category.name if category else None
    if before == after:
        raise InvalidTicketChange(_("The category is unchanged."))
    ticket.category = category
    recompute_due(ticket, utcnow())
    data = {"from": before, "to": after}
    entry = add_entry(
        ticket,
        EntryKind.CATEGORY_CHANGE,
        actor,
        body_text=f"Category changed from {before or 'none'} to {after or 'none'}.",
        internal=True,
        data=data,
    )
    audit.record(actor, "ticket.category", "ticket", ticket.number, ticket_id=ticket.id, **data)
    return entry


def set_tags(ticket: Ticket, names: list[str], actor: Actor) -> StreamEntry | None:
    """Replace the tag set; no entry when nothing changed."""
    added, removed = apply_tags(ticket, names)
    return _record_membership(ticket, actor, EntryKind.TAGS, "Tags", "ticket.tags", added, removed)


def _record_membership(
    ticket: Ticket,
    actor: Actor,
    kind: EntryKind,
    noun: str,
    action: str,
    added: list[str],
    removed: list[str],
) -> StreamEntry | None:
    """The stream entry and audit row for a changed set (tags, leads); none if unchanged."""
    if not added and not removed:
        return None
    parts = ([f"added {', '.join(added)}"] if added else []) + (
        [f"removed {', '.join(removed)}"] if removed else []
    )
    data = {"added": added, "removed": removed}
    entry = add_entry(
        ticket,
        kind,
        actor,
        body_text=f"{noun} " + "; ".join(parts) + ".",
        internal=True,
        data=data,
    )
    audit.record(actor, action, "ticket", ticket.number, ticket_id=ticket.id, **data)
    return entry


def linked_tickets(ticket: Ticket) -> list[tuple[TicketLink, Ticket]]:
    """Links seen from this ticket, whichever end it is."""
    links = db.session.scalars(
        select(TicketLink).where(
            or_(TicketLink.source_id == ticket.id, TicketLink.target_id == ticket.id)
        )
    )
    return [(lk, lk.target if lk.source_id == ticket.id else lk.source) for lk in links]


def link_tickets(
    ticket: Ticket, other: Ticket, actor: Actor, kind: LinkKind = LinkKind.RELATED
) -> TicketLink:
    if ticket.id == other.id:
        raise InvalidTicketChange(_("A ticket cannot be linked to itself."))
    if any(o.id == other.id for _kind, o in linked_tickets(ticket)):
        raise InvalidTicketChange(
            _(
                "%(number)s and %(other)s are already linked.",
                number=ticket.number,
                other=other.number,
            )
        )
    link = TicketLink(
        source=ticket, target=other, kind=LinkKind(kind).value, created_by_id=actor.user_id
    )
    db.session.add(link)
    for here, there in ((ticket, other), (other, ticket)):
        add_entry(
            here,
            EntryKind.LINK,
            actor,
            body_text=f"Linked with {there.number} ({kind.value}).",
            internal=True,
            data={"linked": there.number, "kind": kind.value},
        )
    audit.record(
        actor,
        "ticket.link",
        "ticket",
        ticket.number,
        ticket_id=ticket.id,
        other=other.number,
        kind=kind.value,
    )
    return link


def unlink_tickets(ticket: Ticket, other: Ticket, actor: Actor) -> None:
    for link, there in linked_tickets(ticket):
        if there.id == other.id:
            db.session.delete(link)
            break
    else:
        raise InvalidTicketChange(
            _("%(number)s is not linked with %(other)s.", number=ticket.number, other=other.number)
        )
    for here, there in ((ticket, other), (other, ticket)):
        add_entry(
            here,
            EntryKind.LINK,
            actor,
            body_text=f"Link with {there.number} removed.",
            internal=True,
            data={"unlinked": there.number},
        )
    audit.record(
        actor, "ticket.unlink", "ticket", ticket.number, ticket_id=ticket.id, other=other.number
    )


def add_note(
    ticket: Ticket, actor: Actor, body_text: str, body_html: str | None = None
) -> StreamEntry:
    """An internal note: staff only, never shown to the customer."""
    if actor.kind is not ActorKind.STAFF:
        raise TransitionNotAllowed(_("Only staff can write internal notes."))
    if not body_text.strip() and not body_html:
        raise InvalidTicketChange(_("A note needs some text."))
    entry = add_entry(
        ticket, EntryKind.NOTE, actor, body_text=body_text, body_html=body_html, internal=True
    )
    audit.record(actor, "ticket.note", "ticket", ticket.number, ticket_id=ticket.id)
    return entry


def add_customer_message(
    ticket: Ticket,
    actor: Actor,
    body_text: str,
    *,
    kind: EntryKind = EntryKind.PORTAL_MESSAGE,
    body_html: str | None = None,
    data: dict[str, Any] | None = None,
) -> StreamEntry:
    """A customer writes (portal or mail): a Pending, Resolved or Closed ticket reopens.

    ``data`` is kept on the entry. On a ticket with nothing pending in the session (the
    common reply: no reopening) the entry and the ticket's touch are written as statements
    (``stream.insert_customer_entry``), the same rows as the unit of work would write.
    """
    if actor.kind is not ActorKind.CUSTOMER:
        raise InvalidTicketChange(_("Only a customer's own words are customer messages."))
    if not body_text.strip() and not body_html:
        raise InvalidTicketChange(_("The message is empty."))
    current = Status(ticket.status)
    if current in (Status.PENDING, Status.RESOLVED, Status.CLOSED):
        change_status(ticket, Status.OPEN, actor, reason="The customer replied.")
    if writable_at_once(ticket):
        entry = insert_customer_entry(
            ticket, kind, actor, body_text=body_text, body_html=body_html, data=data
        )
    else:
        entry = add_entry(ticket, kind, actor, body_text=body_text, body_html=body_html, data=data)
    audit.record(actor, "ticket.customer_message", "ticket", ticket.number, ticket_id=ticket.id)
    return entry


def set_leads(ticket: Ticket, leads: list[Contact], actor: Actor) -> StreamEntry | None:
    """Record the ticket's leads as exactly ``leads``; no entry when nothing changed.

    Who may be a lead (contacts of the ticket's account) is checked by
    ``app.tickets.leads.set_leads``, which callers use.
    """
    before = {lead.id: lead for lead in ticket.leads}
    after = {lead.id: lead for lead in leads}
    added = sorted(after[i].name for i in after.keys() - before.keys())
    removed = sorted(before[i].name for i in before.keys() - after.keys())
    if added or removed:
        ticket.leads = list(after.values())
    return _record_membership(
        ticket, actor, EntryKind.SYSTEM, "Leads", "ticket.leads", added, removed
    )
