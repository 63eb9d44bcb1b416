"""Pending: the agent answered and now waits for the customer; what time does to such a ticket.

An agent sets Pending with the composer's "reply sent, now waiting" box (or the status
field), optionally with a follow-up date (``Ticket.pending_until``). ``change_status``
starts the wait (``Ticket.pending_since``); both columns are NULL whenever a ticket is not
Pending, and a customer's message (``customer_writes``, any channel) moves the ticket back
to Open, which clears them: the timers are cancelled.

Two things can then happen, found by the periodic sweep (``app.jobs.pending``):

- **Follow-up date reached** (``remind``): the ticket goes back to Open, into the inbox and
  unread for its manager (their read mark is dropped), and the manager is told in the app
  and by mail (``NotificationKind.FOLLOW_UP_DUE``; their notification settings apply; no
  manager: the inbox alone tells the dispatchers). Open rather than "still Pending": the
  date was the agent's own "look at this again then", a ticket left Pending would hide
  from "my open tickets", and having no date any more it would fall under auto-close.
- **No follow-up date and no customer activity for ``PENDING_AUTO_CLOSE_DAYS``**
  (``auto_close``, default 7): the ticket is Closed and the customer gets the
  ``auto_close`` system mail, which says that a reply reopens it (within ``REOPEN_DAYS``,
  see ``customer_writes``) and gives the portal link. The days are **calendar days**
  (7 x 24 hours from the instant), as Zammad and FreeScout count them: a customer's silence
  does not pause for our weekends, and the customer's own calendar is unknown. The wait is
  measured from the later of the Pending change and the customer's last public message.

Both write a system entry in the stream and an audit row with the system actor, in the
same transaction as the change. Each ticket is *claimed* first by one conditional UPDATE
that clears the timer it acts on (``claim_reminder`` / ``claim_auto_close``): two sweeps
at once (two schedulers, a slow worker) act once, because the second UPDATE finds the
timer gone (SQLite serialises writers; PostgreSQL makes the second wait for the first's
row lock and re-checks the condition). The candidates come from an index range (``due_*``:
``pending_until <= now``, ``pending_since <= now - days``), never a scan of the ticket
table, and the range has no lower bound: a sweep that did not run for a while (worker
down) finds everything overdue the next time. Like the rest of the domain this changes
the session and never commits; the job commits after each ticket.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import ColumnElement, Select, delete, or_, select, update

from app import audit
from app.actor import Actor
from app.extensions import db
from app.mail import autoresponse, system_mail
from app.mail.outbound import _enqueue, _new_message, thread_headers
from app.models.mail import OutboxMessage, OutboxRecipient, SenderIdentity
from app.models.notifications import NotificationKind
from app.models.tickets import (
    EntryKind,
    RecipientKind,
    Status,
    StreamEntry,
    Ticket,
    TicketRead,
)
from app.models.types import utcnow
from app.notifications import notify
from app.tickets.stream import add_entry
from app.urls import public_url

log = logging.getLogger(__name__)

REMINDER = "pending_reminder"  # StreamEntry.data["notice"] of the reminder's system entry
AUTO_CLOSE = system_mail.Kind.AUTO_CLOSE.value  # ... and of the auto-close's
BATCH = 200


def close_after() -> timedelta:
    """How long a Pending ticket without a follow-up date waits (calendar days)."""
    return timedelta(days=max(1, int(current_app.config["PENDING_AUTO_CLOSE_DAYS"])))


def cancel_timers(ticket: Ticket) -> bool:
    """Forget the follow-up date and the auto-close clock; whether one was running.

    ``change_status`` does this for every status but Pending; ``customer_writes`` calls it
    too, so a customer's message cancels the timers whatever path the status took.
    """
    running = ticket.pending_until is not None or ticket.pending_since is not None
    ticket.pending_until = ticket.pending_since = None
    return running


# --- what is due: index ranges -------------------------------------------------------------


def reminders_query(now: datetime, limit: int | None = None) -> Select[tuple[int]]:
    """Pending tickets whose follow-up date has passed, oldest first.

    An index range on ``ix_ticket_pending_due`` (status, pending_until)."""
    return (
        select(Ticket.id)
        .where(Ticket.pending_until <= now, Ticket.status == Status.PENDING.value)
        .order_by(Ticket.pending_until, Ticket.id)
        .limit(limit or BATCH)
    )


def _silent_since(cutoff: datetime) -> list[ColumnElement[bool]]:
    """Pending without a date, waiting since before ``cutoff``, no customer word since."""
    return [
        Ticket.pending_since <= cutoff,
        Ticket.status == Status.PENDING.value,
        Ticket.pending_until.is_(None),
        or_(
            Ticket.last_customer_activity_at.is_(None),
            Ticket.last_customer_activity_at <= cutoff,
        ),
    ]


def auto_closes_query(now: datetime, limit: int | None = None) -> Select[tuple[int]]:
    """Tickets to close for the customer's silence, oldest first.

    An index range on ``ix_ticket_pending_wait`` (status, pending_since); the customer's
    last message is checked on the rows of that range only."""
    return (
        select(Ticket.id)
        .where(*_silent_since(now - close_after()))
        .order_by(Ticket.pending_since, Ticket.id)
        .limit(limit or BATCH)
    )


def due_reminders(now: datetime | None = None, limit: int | None = None) -> list[int]:
    """Ids of the tickets whose reminder is due (``reminders_query``)."""
    return list(db.session.scalars(reminders_query(now or utcnow(), limit)))


def due_auto_closes(now: datetime | None = None, limit: int | None = None) -> list[int]:
    """Ids of the tickets whose auto-close is due (``auto_closes_query``)."""
    return list(db.session.scalars(auto_closes_query(now or utcnow(), limit)))


# --- claims: one conditional UPDATE each -------------------------------------------------


def _claimed(statement: object) -> bool:
    result = db.session.execute(statement.execution_options(synchronize_session=False))  # type: ignore[attr-defined]
    return bool(result.rowcount)  # type: ignore[attr-defined]


def claim_reminder(ticket_id: int, now: datetime) -> datetime | None:
    """Take the reminder of ``ticket_id`` (clear its date); the date, or None if not ours."""
    due = db.session.scalar(select(Ticket.pending_until).where(Ticket.id == ticket_id))
    if due is None:
        return None
    taken = _claimed(
        update(Ticket)
        .where(
            Ticket.id == ticket_id,
            Ticket.status == Status.PENDING.value,
            Ticket.pending_until == due,
            Ticket.pending_until <= now,
        )
        .values(pending_until=None)
    )
    return due if taken else None


def claim_auto_close(ticket_id: int, now: datetime) -> datetime | None:
    """Take the auto-close of ``ticket_id`` (clear its clock); when it went Pending, or None."""
    since = db.session.scalar(select(Ticket.pending_since).where(Ticket.id == ticket_id))
    if since is None:
        return None
    taken = _claimed(
        update(Ticket)
        .where(
            Ticket.id == ticket_id,
            Ticket.pending_since == since,
            *_silent_since(now - close_after()),
        )
        .values(pending_since=None)
    )
    return since if taken else None


def _fresh(ticket_id: int) -> Ticket | None:
    """The ticket as the claim left it (the UPDATE bypassed the session's copy)."""
    return db.session.scalars(
        select(Ticket).where(Ticket.id == ticket_id).execution_options(populate_existing=True)
    ).first()


def _iso(value: datetime | None) -> str | None:
    return value.strftime("%Y-%m-%d %H:%M") if value is not None else None


# --- the follow-up reminder --------------------------------------------------------------


def remind(ticket_id: int, now: datetime | None = None) -> bool:
    """The follow-up date of ``ticket_id`` has come: back to Open, the inbox and its manager.

    Returns False when another sweep took it, or it is no longer due (answered, date moved).
    """
    from app.tickets.changes import change_status

    now = now or utcnow()
    due = claim_reminder(ticket_id, now)
    ticket = _fresh(ticket_id) if due is not None else None
    if ticket is None or due is None:
        return False
    since = ticket.pending_since
    system = Actor.system()
    change_status(ticket, Status.OPEN, system, reason="The follow-up date was reached.")
    ticket.in_inbox = True
    manager = ticket.assignee
    if manager is not None:  # unread for the manager: their read mark goes
        db.session.execute(
            delete(TicketRead).where(
                TicketRead.ticket_id == ticket.id, TicketRead.user_id == manager.id
            )
        )
    told = notify(
        NotificationKind.FOLLOW_UP_DUE,
        ticket,
        system,
        users=[manager] if manager is not None else [],
        follow_up=_iso(due),
        since=_iso(since),
    )
    if told:
        text = _(
            "Follow-up date %(due)s UTC reached: the ticket is back in the inbox and "
            "%(name)s was reminded.",
            due=_iso(due),
            name=", ".join(u.name or u.email for u in told),
        )
    else:
        text = _(
            "Follow-up date %(due)s UTC reached: the ticket is back in the inbox.", due=_iso(due)
        )
    add_entry(
        ticket,
        EntryKind.SYSTEM,
        system,
        body_text=text,
        internal=True,
        data={"notice": REMINDER, "pending_until": due.isoformat(), "told": [u.id for u in told]},
    )
    audit.record(
        system,
        "ticket.pending_reminder",
        "ticket",
        ticket.number,
        ticket_id=ticket.id,
        pending_until=due.isoformat(),
        told=[u.email for u in told],
    )
    return True


# --- the auto-close and the customer's notice --------------------------------------------


@dataclass(frozen=True)
class Recipient:
    address: str
    name: str | None
    identity: SenderIdentity
    language: str


def _reply_identity(ticket: Ticket) -> SenderIdentity | None:
    """The identity the agent last answered from (the address the customer knows), else the
    default identity."""
    for data in db.session.scalars(
        select(StreamEntry.data)
        .where(StreamEntry.ticket_id == ticket.id, StreamEntry.kind == EntryKind.MAIL_OUT.value)
        .order_by(StreamEntry.created_at.desc(), StreamEntry.id.desc())
        .limit(5)
    ):
        address = (data or {}).get("identity")
        if isinstance(address, str):
            identity = db.session.scalar(
                select(SenderIdentity).where(
                    SenderIdentity.address == address, SenderIdentity.active.is_(True)
                )
            )
            if identity is not None:
                return identity
    return system_mail.default_identity()


def notice_recipient(ticket: Ticket) -> Recipient | str:
    """Whom to tell about the auto-close, or why nobody (a sentence for the stream).

    The ticket's contact, else the address it came from. Never a server's, our own or a
    staff address, nor one that bounces (the autoresponse's rules); no per-period limit:
    each closed ticket is worth its own notice, and it answers no mail, so no loop.
    """
    address = (ticket.contact.email if ticket.contact is not None else None) or (
        ticket.submitter_email or autoresponse.sender_address(ticket)
    )
    address = (address or "").strip().lower()
    if "@" not in address:
        return _("there is no customer address")
    if address.partition("@")[0] in autoresponse.SERVER_LOCALPARTS:
        return _("the customer address is a mail server's")
    if address in autoresponse.own_addresses() or autoresponse._is_staff_address(address):
        return _("the customer address is one of ours")
    if autoresponse._bounced(address):
        return _("mail to the customer address bounces")
    identity = _reply_identity(ticket)
    if identity is None:
        return _("no sender identity is configured")
    contact = autoresponse._contact_for(ticket, address)
    name = (contact.name if contact is not None else None) or ticket.submitter_name
    language = autoresponse._language(contact, address, identity)
    return Recipient(address, name, identity, language)


def queue_notice(ticket: Ticket, to: Recipient, entry: StreamEntry) -> OutboxMessage:
    """The auto-close mail (``auto_close`` system template) as an outbox row for the relay."""
    values = {
        "ticket_number": ticket.number,
        "ticket_subject": ticket.subject,
        "customer_name": to.name or to.address,
        "portal_url": public_url("portal.ticket", number=ticket.number),
        "identity_name": to.identity.name,
        "reopen_days": int(current_app.config["REOPEN_DAYS"]),
    }
    rendered = system_mail.render(system_mail.Kind.AUTO_CLOSE, to.identity, to.language, values)
    message = _new_message(ticket, to.identity, from_name=to.identity.name, body_text=rendered.text)
    subject = rendered.subject
    if f"[#{ticket.number}]" not in subject:  # a reply must thread back to this ticket
        subject = f"[#{ticket.number}] {subject}"
    message.subject = subject[:400]
    message.body_html = rendered.html
    message.language = rendered.language
    message.system_kind = system_mail.Kind.AUTO_CLOSE.value
    message.auto_submitted = "auto-generated"
    message.entry = entry
    message.in_reply_to, message.references = thread_headers(ticket)
    message.recipients = {rk.value: [] for rk in RecipientKind}
    message.recipients[RecipientKind.TO.value] = [to.address]
    message.deliveries.append(
        OutboxRecipient(kind=RecipientKind.TO.value, address=to.address, name=to.name)
    )
    db.session.add(message)
    _enqueue(message)
    return message


def auto_close(ticket_id: int, now: datetime | None = None) -> bool:
    """Close ``ticket_id`` for the customer's silence and tell them how to reopen it.

    Returns False when another sweep took it, or it is no longer due (the customer wrote,
    an agent changed it).
    """
    from app.tickets.changes import change_status

    now = now or utcnow()
    since = claim_auto_close(ticket_id, now)
    ticket = _fresh(ticket_id) if since is not None else None
    if ticket is None or since is None:
        return False
    days = close_after().days
    system = Actor.system()
    change_status(
        ticket,
        Status.CLOSED,
        system,
        reason=f"No answer from the customer for {days} days.",
    )
    to = notice_recipient(ticket)
    if isinstance(to, Recipient):
        text = _(
            "Closed automatically: no answer from the customer for %(days)s days. "
            "The auto-close notice was queued to %(address)s.",
            days=days,
            address=to.address,
        )
    else:
        text = _(
            "Closed automatically: no answer from the customer for %(days)s days. "
            "No notice was sent: %(reason)s.",
            days=days,
            reason=to,
        )
    entry = add_entry(
        ticket,
        EntryKind.SYSTEM,
        system,
        body_text=text,
        internal=True,
        data={
            "notice": AUTO_CLOSE,
            "pending_since": since.isoformat(),
            "days": days,
            "to": to.address if isinstance(to, Recipient) else None,
        },
    )
    if isinstance(to, Recipient):
        queue_notice(ticket, to, entry)
    audit.record(
        system,
        "ticket.auto_close",
        "ticket",
        ticket.number,
        ticket_id=ticket.id,
        pending_since=since.isoformat(),
        days=days,
        notice_to=to.address if isinstance(to, Recipient) else None,
    )
    return True
