"""Answering a ticket: the public reply (mailed) and the internal note, with files.

One function for the composer, so "reply, attach, set Pending with a follow-up" is one
transaction: the entry, the files, the outbox row, the status change and their audit rows
land together or not at all.

Answering takes the ticket: a public reply on a ticket nobody manages makes the replying
agent its manager (through ``assign``, so it is audited and in the stream), as Zammad and
FreeScout do: whoever answered the customer is who the customer will write back to. The
composer offers "keep unassigned" for the agent who only helps out (``take_ownership``).
An internal note never takes a ticket. Answering also counts as having read the ticket,
so the answering agent's unread mark clears with the same transaction.
"""

from __future__ import annotations

from datetime import datetime

from flask_babel import gettext as _

from app import audit
from app.actor import Actor, ActorKind
from app.errors import InvalidInput
from app.extensions import db
from app.mail.outbound import queue_reply
from app.models.drafts import DraftKind
from app.models.files import VaultFile
from app.models.mail import SenderIdentity
from app.models.people import User
from app.models.tickets import EntryKind, Status, StreamEntry, Ticket
from app.models.types import utcnow
from app.notifications import NotificationKind, notify
from app.sla.targets import recompute_due
from app.tickets import drafts
from app.tickets.assignment import assign
from app.tickets.changes import add_note, change_status
from app.tickets.errors import TransitionNotAllowed
from app.tickets.inbox import mark_read
from app.tickets.stream import add_entry


def answer(
    ticket: Ticket,
    actor: Actor,
    body: str,
    *,
    internal: bool,
    identity: SenderIdentity | None = None,
    files: list[VaultFile] | None = None,
    set_pending: bool = False,
    pending_until: datetime | None = None,
    take_ownership: bool = True,
) -> StreamEntry:
    """A public reply (queued for mail) or an internal note, then optionally Pending.

    ``take_ownership=False`` is the composer's "keep unassigned": without it a public reply
    on a ticket with no manager makes the replying agent its manager.
    """
    if actor.kind is not ActorKind.STAFF:
        raise TransitionNotAllowed(_("Only staff answer tickets here."))
    files = files or []
    body = body.strip()
    if not body and not files:
        raise InvalidInput(_("Write something or attach a file."))
    if not body:
        body = "Attached " + ", ".join(f.display_name for f in files)
    if pending_until is not None and pending_until <= utcnow():
        raise InvalidInput(_("The follow-up date must be in the future."))
    if internal:
        entry = add_note(ticket, actor, body)
        notify(NotificationKind.MENTIONED, ticket, actor, text=body)
    else:
        if identity is None or not identity.active:
            raise InvalidInput(_("Choose the address to answer from."))
        entry = add_entry(
            ticket,
            EntryKind.MAIL_OUT,
            actor,
            body_text=body,
            data={"identity": identity.address},
        )
        if ticket.first_responded_at is None:
            ticket.first_responded_at = entry.created_at
            recompute_due(ticket, utcnow())
    for file in files:
        file.entry = entry
    if identity is not None and not internal:
        queue_reply(ticket, entry, identity, actor, files)
        audit.record(
            actor,
            "ticket.reply",
            "ticket",
            ticket.number,
            ticket_id=ticket.id,
            identity=identity.address,
            files=len(files),
        )
    me = db.session.get(User, actor.user_id) if actor.user_id is not None else None
    if me is not None and not internal and take_ownership and ticket.assignee_id is None:
        if me.is_staff and me.active:
            assign(ticket, actor, assignee=me, team=ticket.team)
    if me is not None:
        mark_read(ticket, me)
    if set_pending and Status(ticket.status) != Status.PENDING:
        change_status(ticket, Status.PENDING, actor, pending_until=pending_until)
    elif set_pending:  # answered again, still waiting: the wait starts over
        ticket.pending_until, ticket.pending_since = pending_until, utcnow()
    # Sent: the agent's draft of this kind goes in the same transaction (kept if refused).
    drafts.discard(ticket, actor.user, DraftKind.of(internal))
    return entry
