"""The status machine: one table of allowed transitions, and who may make each.

Read a row as "from -> to: by whom". Staff may move a ticket anywhere that makes sense
in a help desk; customers may only reopen (by replying to a Resolved/Closed ticket or to
a Pending one, which means they answered) and close their own ticket; the system closes
tickets that stayed Pending or Resolved too long and reopens on customer mail. No one
moves a ticket back to New: it is only the state of a ticket nobody has touched yet.
"""

from __future__ import annotations

from flask_babel import gettext as _

from app.actor import ActorKind
from app.models.tickets import Status
from app.tickets.errors import TransitionNotAllowed

S = ActorKind.STAFF
C = ActorKind.CUSTOMER
Y = ActorKind.SYSTEM

_WORKING = (Status.OPEN, Status.IN_PROGRESS, Status.PENDING, Status.WAITING_THIRD_PARTY)

TRANSITIONS: dict[tuple[Status, Status], frozenset[ActorKind]] = {
    # New: first touch by an agent, or the customer withdraws it.
    **{(Status.NEW, to): frozenset({S}) for to in _WORKING},
    (Status.NEW, Status.OPEN): frozenset({S, Y}),
    (Status.NEW, Status.RESOLVED): frozenset({S}),
    (Status.NEW, Status.CLOSED): frozenset({S, C}),
    # Working states move freely among themselves for staff.
    **{(a, b): frozenset({S}) for a in _WORKING for b in _WORKING if a != b},
    # A customer answering a Pending ticket hands it back to the agent.
    (Status.PENDING, Status.OPEN): frozenset({S, C, Y}),
    **{(a, Status.RESOLVED): frozenset({S}) for a in _WORKING},
    **{(a, Status.CLOSED): frozenset({S, C}) for a in _WORKING},
    # Pending for 7 days without an answer: the auto-close sweep.
    (Status.PENDING, Status.CLOSED): frozenset({S, C, Y}),
    # Resolved: confirmed closed, or reopened by anyone with reason to.
    (Status.RESOLVED, Status.CLOSED): frozenset({S, C, Y}),
    (Status.RESOLVED, Status.OPEN): frozenset({S, C, Y}),
    (Status.RESOLVED, Status.IN_PROGRESS): frozenset({S}),
    # Closed: reopened by an agent, or by a customer reply.
    (Status.CLOSED, Status.OPEN): frozenset({S, C, Y}),
}


def allowed_targets(current: Status, actor: ActorKind) -> list[Status]:
    """Statuses ``actor`` may move a ticket in ``current`` to, in display order."""
    return [to for to in Status if actor in TRANSITIONS.get((current, to), frozenset())]


def check_transition(current: Status, target: Status, actor: ActorKind) -> None:
    """Raise ``TransitionNotAllowed`` with a sentence a person understands.

    The sentence is in the reader's language (``gettext``; English outside a request), the
    status names too: a German agent reads "In Bearbeitung", not "In Progress". Each kind
    of actor has a sentence of its own because languages inflect "a customer" differently.
    """
    if current == target:
        raise TransitionNotAllowed(_("The ticket is already %(status)s.", status=_(target.label)))
    old, new = _(current.label), _(target.label)
    allowed = TRANSITIONS.get((current, target))
    if not allowed:
        raise TransitionNotAllowed(
            _("A ticket cannot go from %(old)s to %(new)s.", old=old, new=new)
        )
    if actor not in allowed:
        if actor is ActorKind.CUSTOMER:
            message = _(
                "A customer cannot move a ticket from %(old)s to %(new)s.", old=old, new=new
            )
        elif actor is ActorKind.SYSTEM:
            message = _("A system cannot move a ticket from %(old)s to %(new)s.", old=old, new=new)
        else:
            message = _("A staff cannot move a ticket from %(old)s to %(new)s.", old=old, new=new)
        raise TransitionNotAllowed(message)
