"""Assignment and dispatch: who manages a ticket, and which team it sits with."""

from __future__ import annotations

from flask_babel import gettext as _

from app import audit
from app.actor import Actor, ActorKind
from app.models.people import Team, User
from app.models.tickets import EntryKind, Status, StreamEntry, Ticket
from app.models.types import utcnow
from app.notifications import NotificationKind, notify
from app.sla.targets import recompute_due
from app.tickets import recipients
from app.tickets.changes import change_status
from app.tickets.errors import InvalidTicketChange, TransitionNotAllowed
from app.tickets.stream import add_entry


def assign(
    ticket: Ticket,
    actor: Actor,
    *,
    assignee: User | None,
    team: Team | None = None,
    note: str | None = None,
) -> StreamEntry:
    """Give the ticket a manager (and team); ``assignee=None`` sends it back to dispatch."""
    if actor.kind is ActorKind.CUSTOMER:
        raise TransitionNotAllowed(_("Customers cannot assign tickets."))
    if assignee is not None and not assignee.is_staff:
        raise InvalidTicketChange(_("%(name)s is not a member of staff.", name=assignee.name))
    if assignee is not None and not assignee.active:
        raise InvalidTicketChange(_("%(name)s is deactivated.", name=assignee.name))
    new_team = team or (assignee.team if assignee is not None else ticket.team)
    if ticket.assignee_id == (assignee.id if assignee else None) and ticket.team == new_team:
        raise InvalidTicketChange(_("The ticket already sits with them."))
    before = ticket.assignee.name if ticket.assignee else None
    ticket.assignee = assignee
    ticket.team = new_team
    ticket.waiting_for_dispatch = assignee is None
    recompute_due(ticket, utcnow())
    if assignee is not None:
        recipients.subscribe(ticket, assignee)
    after = assignee.name if assignee else None
    text = f"Assigned to {after}" if after else "Sent back for dispatch"
    if new_team is not None:
        text += f" (team {new_team.name})"
    data = {
        "from": before,
        "to": after,
        "team": new_team.name if new_team else None,
        "note": note or None,
    }
    entry = add_entry(
        ticket,
        EntryKind.ASSIGNMENT,
        actor,
        body_text=text + "." + (f" {note}" if note else ""),
        internal=True,
        data=data,
    )
    audit.record(
        actor,
        "ticket.assign",
        "ticket",
        ticket.number,
        ticket_id=ticket.id,
        assignee_id=assignee.id if assignee else None,
        team_id=new_team.id if new_team else None,
    )
    notify(NotificationKind.ASSIGNED, ticket, actor, note=note)
    if assignee is not None and Status(ticket.status) == Status.NEW:
        # Taking a ticket is the first touch; "New" means nobody has.
        change_status(ticket, Status.OPEN, Actor.system(), reason="It has a manager now.")
    return entry
