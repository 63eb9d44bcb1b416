"""Merging a duplicate ticket into the one that carries on.

What moves, and why (as Zammad and FreeScout merge):

- every stream entry of the duplicate, with its original ``created_at``, so the target's
  stream reads as one conversation in time order; vault files follow their entries (their
  ``ticket_id`` changes too, and so does that of their links, so per-ticket revocation and
  the compliance screens find them under the ticket that now shows them);
- open and done tasks, so nobody's task list keeps pointing at a closed duplicate;
- tags, external recipients and subscribed employees, without duplicates;
- customer activity: a duplicate waiting in the inbox puts the target there instead.

The duplicate keeps its number (old mail subjects still name it), gets a DUPLICATE link to
the target, a SYSTEM entry saying where it went, and is closed when the status machine
allows it. A ticket merged away cannot be merged again or receive another merge: its
stream is empty but for the notice, so either would only scatter history.

Nothing is committed here: the caller commits once, so the merge happens whole or not.
"""

from __future__ import annotations

from flask_babel import gettext as _
from sqlalchemy import select, update

from app import audit
from app.actor import Actor, ActorKind
from app.extensions import db
from app.models.files import VaultFile, VaultLink
from app.models.tickets import (
    EntryKind,
    LinkKind,
    Status,
    StreamEntry,
    Ticket,
    TicketRecipient,
)
from app.tickets.changes import change_status, link_tickets, linked_tickets
from app.tickets.errors import InvalidTicketChange, TransitionNotAllowed
from app.tickets.recipients import subscribe
from app.tickets.stream import add_entry


def merged_into(ticket: Ticket) -> str | None:
    """The number this ticket was merged into, or None; read from its merge notice."""
    notices = db.session.scalars(
        select(StreamEntry).where(
            StreamEntry.ticket_id == ticket.id, StreamEntry.kind == EntryKind.SYSTEM.value
        )
    )
    for entry in notices:
        if entry.data and entry.data.get("merged_into"):
            return str(entry.data["merged_into"])
    return None


def merge_ticket(duplicate: Ticket, target: Ticket, actor: Actor) -> int:
    """Move ``duplicate`` into ``target``; return how many stream entries moved."""
    if actor.kind is not ActorKind.STAFF:
        raise TransitionNotAllowed(_("Only staff can merge tickets."))
    if duplicate.id == target.id:
        raise InvalidTicketChange(_("A ticket cannot be merged into itself."))
    if (where := merged_into(target)) is not None:
        raise InvalidTicketChange(
            _(
                "%(number)s was itself merged into %(where)s; merge into %(where)s instead.",
                number=target.number,
                where=where,
            )
        )
    if (where := merged_into(duplicate)) is not None:
        raise InvalidTicketChange(
            _(
                "%(number)s was already merged into %(where)s.",
                number=duplicate.number,
                where=where,
            )
        )

    moved = _move_stream(duplicate, target)
    _move_tasks(duplicate, target)
    tags, recipients, subscribers = _merge_people_and_tags(duplicate, target)
    if duplicate.in_inbox:
        target.in_inbox = True
        duplicate.in_inbox = False
    if duplicate.last_customer_activity_at and (
        target.last_customer_activity_at is None
        or duplicate.last_customer_activity_at > target.last_customer_activity_at
    ):
        target.last_customer_activity_at = duplicate.last_customer_activity_at
    _link_as_duplicate(duplicate, target, actor)

    add_entry(
        duplicate,
        EntryKind.SYSTEM,
        actor,
        body_text=f"Merged into {target.number}.",
        internal=True,
        data={"merged_into": target.number, "entries": moved},
    )
    try:
        change_status(duplicate, Status.CLOSED, actor, reason=f"Merged into {target.number}.")
    except TransitionNotAllowed:
        pass  # already Closed: nothing to do, the merge notice says what happened
    add_entry(
        target,
        EntryKind.SYSTEM,
        actor,
        body_text=f"{duplicate.number} merged into this ticket ({moved} entries).",
        internal=True,
        data={
            "merged_from": duplicate.number,
            "entries": moved,
            "tags": tags,
            "recipients": recipients,
            "subscribers": subscribers,
        },
    )
    audit.record(
        actor,
        "ticket.merge",
        "ticket",
        duplicate.number,
        ticket_id=duplicate.id,
        into=target.number,
        into_ticket_id=target.id,
        entries=moved,
    )
    return moved


def _move_stream(duplicate: Ticket, target: Ticket) -> int:
    """Re-parent the entries (``created_at`` untouched) and the files attached to them."""
    entries = list(duplicate.entries)
    for entry in entries:
        entry.ticket = target  # the back-reference moves it between the two collections
    entry_ids = [e.id for e in entries]
    if entry_ids:
        db.session.flush()
        file_ids = select(VaultFile.id).where(VaultFile.entry_id.in_(entry_ids))
        db.session.execute(
            update(VaultLink)
            .where(VaultLink.file_id.in_(file_ids))
            .values(ticket_id=target.id)
            .execution_options(synchronize_session=False)
        )
        db.session.execute(
            update(VaultFile)
            .where(VaultFile.entry_id.in_(entry_ids))
            .values(ticket_id=target.id)
            .execution_options(synchronize_session=False)
        )
        # Loaded VaultFile/VaultLink objects would still show the old ticket.
        for obj in list(db.session.identity_map.values()):
            if isinstance(obj, VaultFile | VaultLink):
                db.session.expire(obj, ["ticket_id", "ticket"])
    return len(entries)


def _move_tasks(duplicate: Ticket, target: Ticket) -> None:
    for task in list(duplicate.tasks):
        task.ticket = target


def _merge_people_and_tags(
    duplicate: Ticket, target: Ticket
) -> tuple[list[str], list[str], list[str]]:
    """Union tags, recipients and subscribers into the target; return what was added."""
    have_tags = {t.name for t in target.tags}
    new_tags = [t for t in duplicate.tags if t.name not in have_tags]
    target.tags.extend(new_tags)

    have_addresses = {r.address for r in target.recipients}
    new_recipients = [r for r in duplicate.recipients if r.address not in have_addresses]
    for r in new_recipients:
        target.recipients.append(TicketRecipient(kind=r.kind, address=r.address, name=r.name))

    new_subscribers = [u for u in duplicate.subscribers if u not in target.subscribers]
    for user in new_subscribers:
        subscribe(target, user)
    return (
        [t.name for t in new_tags],
        [r.address for r in new_recipients],
        [u.email for u in new_subscribers],
    )


def _link_as_duplicate(duplicate: Ticket, target: Ticket, actor: Actor) -> None:
    """A DUPLICATE link from duplicate to target; an existing link between them is turned."""
    existing = next((lk for lk, other in linked_tickets(duplicate) if other.id == target.id), None)
    if existing is None:
        link_tickets(duplicate, target, actor, LinkKind.DUPLICATE)
        return
    existing.source_id, existing.target_id = duplicate.id, target.id
    existing.kind = LinkKind.DUPLICATE.value
    db.session.expire(existing, ["source", "target"])
