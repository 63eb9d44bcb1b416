"""Composer drafts: saved as the agent types, restored on any device, gone once sent.

Decisions, so the views and the page script stay simple:

- A draft belongs to one ticket, one agent and one kind (public reply or internal note).
  Every function takes the agent as a ``User`` the caller got from the session; nothing
  here accepts a user id from a form, so no colleague can read or overwrite my draft.
- Saving blank text removes the draft: an emptied composer leaves nothing to restore.
- The composer has one text box and a reply/note switch, so switching the kind moves the
  text: ``save(..., replaces=old_kind)`` writes the new kind and drops the old one in the
  same transaction, and a reload never offers the same text twice.
- Sending discards the draft of the kind sent, in the answer's own transaction
  (``app.tickets.replies.answer`` calls ``discard``): a refused answer keeps it.
- Drafts are not audited: they are an agent's unsent work, private to them, saved every
  few seconds; what is sent is audited as the reply or note it becomes. Nor do they bump
  the ticket's version, so a colleague's live view does not redraw as someone types.
- Last save wins between two devices of the same agent; the page restores a stored
  draft unless it has edits of its own not yet saved (see ``app/static/drafts.js``).
"""

from __future__ import annotations

from flask_babel import gettext as _
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from app.errors import InvalidInput
from app.extensions import db
from app.models.drafts import DraftKind, TicketDraft
from app.models.mail import SenderIdentity
from app.models.people import User
from app.models.tickets import Ticket
from app.models.types import utcnow

# Longer than any real answer; stops a runaway script from filling the table.
MAX_BODY = 100_000


def drafts_of(ticket: Ticket, user: User) -> list[TicketDraft]:
    """This agent's drafts on the ticket, newest first (the page restores the newest)."""
    return list(
        db.session.scalars(
            select(TicketDraft)
            .where(TicketDraft.ticket_id == ticket.id, TicketDraft.user_id == user.id)
            .order_by(TicketDraft.updated_at.desc())
        )
    )


def draft_of(ticket: Ticket, user: User, kind: DraftKind) -> TicketDraft | None:
    return db.session.get(TicketDraft, (ticket.id, user.id, kind.value))


def save(
    ticket: Ticket,
    user: User,
    kind: DraftKind,
    body: str,
    *,
    identity: SenderIdentity | None = None,
    replaces: DraftKind | None = None,
) -> TicketDraft | None:
    """Store what the agent has typed; blank text removes the draft and returns None."""
    if len(body) > MAX_BODY:
        raise InvalidInput(_("The draft is too long to keep; shorten it or send it in parts."))
    if replaces is not None and replaces is not kind:
        discard(ticket, user, replaces)
    if not body.strip():
        discard(ticket, user, kind)
        return None
    identity_id = identity.id if identity is not None and kind is DraftKind.REPLY else None
    draft = draft_of(ticket, user, kind)
    if draft is None:
        draft = TicketDraft(ticket_id=ticket.id, user_id=user.id, kind=kind.value)
        try:
            # Two tabs of one agent can both insert first; the loser updates instead.
            with db.session.begin_nested():
                draft.body, draft.identity_id, draft.updated_at = body, identity_id, utcnow()
                db.session.add(draft)
        except IntegrityError:
            draft = draft_of(ticket, user, kind)
            if draft is None:  # pragma: no cover - deleted in between: nothing to keep
                raise
    draft.body = body
    draft.identity_id = identity_id
    draft.updated_at = utcnow()
    db.session.flush()
    return draft


def discard(ticket: Ticket, user: User | None, kind: DraftKind | None = None) -> None:
    """Drop the agent's draft of ``kind`` (all their drafts on the ticket when None)."""
    if user is None:
        return
    statement = delete(TicketDraft).where(
        TicketDraft.ticket_id == ticket.id, TicketDraft.user_id == user.id
    )
    if kind is not None:
        statement = statement.where(TicketDraft.kind == kind.value)
    db.session.execute(statement)
