"""Answering a ticket: the public reply (mailed) and the internal note, with files.

One function for the composer, so "reply, attach, set Pending with a follow-up" is one
transaction: the entry, the files, the outbox row, the status change and their audit rows
land together or not at all.
"""

from __future__ import annotations

from datetime import datetime

from app import audit
from app.actor import Actor, ActorKind
from app.errors import InvalidInput
from app.mail.outbound import queue_reply
from app.models.drafts import DraftKind
from app.models.files import VaultFile
from app.models.mail import SenderIdentity
from app.models.tickets import EntryKind, Status, StreamEntry, Ticket
from app.models.types import utcnow
from app.notifications import NotificationKind, notify
from app.tickets import drafts
from app.tickets.changes import add_note, change_status
from app.tickets.errors import TransitionNotAllowed
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
) -> StreamEntry:
    """A public reply (queued for mail) or an internal note, then optionally Pending."""
    if actor.kind is not ActorKind.STAFF:
        raise TransitionNotAllowed("Only staff answer tickets here.")
    files = files or []
    body = body.strip()
    if not body and not files:
        raise InvalidInput("Write something or attach a file.")
    if not body:
        body = "Attached " + ", ".join(f.display_name for f in files)
    if pending_until is not None and pending_until <= utcnow():
        raise InvalidInput("The follow-up date must be in the future.")
    if internal:
        entry = add_note(ticket, actor, body)
        notify(NotificationKind.MENTIONED, ticket, actor, text=body)
    else:
        if identity is None or not identity.active:
            raise InvalidInput("Choose the address to answer from.")
        entry = add_entry(
            ticket,
            EntryKind.MAIL_OUT,
            actor,
            body_text=body,
            data={"identity": identity.address},
        )
        if ticket.first_responded_at is None:
            ticket.first_responded_at = entry.created_at
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
    if set_pending and Status(ticket.status) != Status.PENDING:
        change_status(ticket, Status.PENDING, actor, pending_until=pending_until)
    elif set_pending:
        ticket.pending_until = pending_until
    # Sent: the agent's draft of this kind goes in the same transaction (kept if refused).
    drafts.discard(ticket, actor.user, DraftKind.of(internal))
    return entry
