"""The autoresponse: one acknowledgement for a new ticket, to the person who opened it;
and its sibling, the reopen notice, for a customer whose message reopened a solved or
closed ticket (``customer_writes`` enqueues ``mail.send_reopen_notice``). Both follow the
same rules below, each counted apart in the period.

Mail-in enqueues ``mail.send_autoresponse(ticket_id)`` for every new ticket from a
person, and so does the portal for a ticket opened there. The job calls ``respond``,
which decides and, when it answers, writes an outbox row (the relay sends it):

- **To whom**: the sender of the ticket's first message (the customer's address on a
  portal ticket).
- **Never** to robots, whatever mail-in decided: the first message's ``InboundMail.robot``
  or its entry's ``robot`` data (bounces, auto-replies, mailing lists, our own mail); to a
  server's address (MAILER-DAEMON, postmaster, no-reply ...); to one of our own addresses
  (identities, mailboxes, ``MAIL_FROM``) or a staff user's; to an address whose mail
  bounced. RFC 3834 asks exactly this of automatic responders, and it is what keeps two
  autoresponders from answering each other forever.
- **At most one per sender and period** (``MAIL_AUTORESPONSE_PERIOD_HOURS``): counted in
  the outbox (rows of ``system_kind`` "autoresponse" to that address). Someone who opens
  five tickets in an hour gets one acknowledgement, not five. The job holds a Redis lock
  per address around the count, the insert and the commit, so two workers answering two
  new tickets of one sender at once cannot both see "none yet".
- **What**: the ``autoresponse`` system template (``app.mail.system_mail``) with the
  ticket number, the portal link, the assigned agent when there is one, and the honest
  expectation (``expected_answer``: "You will hear from Anna on Monday, 24 November,
  before 11:00", from ``app.sla.targets.expected_answer``: the first-response due time of
  the ticket's SLA policy in its manager's calendar, or the team's; the agent is named only
  if they work before then, else "our team"; written in the customer's language and time
  zone, their portal account's, else the company's; empty without an SLA target); in the
  contact's language (their portal account's, else the identity's); from the identity of
  the mailbox the mail came in on, else the default identity; ``Auto-Submitted:
  auto-replied``; In-Reply-To the customer's mail, so it threads under it.
- **Recorded**: an internal system entry on the ticket says that an autoresponse was
  queued, to whom, or why not (``data["notice"] == "autoresponse"``). That entry is also
  what makes the job idempotent: a retried job finds it and does nothing.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import timedelta
from email.utils import parseaddr

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import func, select

from app.accounts.signin import find_user
from app.actor import Actor
from app.extensions import db
from app.mail import system_mail
from app.mail.outbound import _bracketed, _enqueue, _new_message
from app.models.inbound import InboundMail, Mailbox
from app.models.mail import OutboxMessage, OutboxRecipient, SenderIdentity
from app.models.people import Contact, Role, User, UserRole
from app.models.tickets import EntryKind, RecipientKind, StreamEntry, Ticket
from app.models.types import utcnow
from app.sla import targets
from app.tickets.stream import add_entry
from app.urls import public_url

NOTICE = "autoresponse"  # StreamEntry.data["notice"] of the entry that records the decision
SYSTEM_KIND = system_mail.Kind.AUTORESPONSE.value
REOPEN = system_mail.Kind.REOPEN_NOTICE
# Local parts only servers send from (RFC 3834 5.1 and common practice): never answered.
SERVER_LOCALPARTS = frozenset(
    {
        "mailer-daemon",
        "mailer_daemon",
        "mailerdaemon",
        "postmaster",
        "bounce",
        "bounces",
        "no-reply",
        "noreply",
        "do-not-reply",
        "donotreply",
        "listserv",
        "majordomo",
    }
)


class Outcome(enum.StrEnum):
    QUEUED = "queued"
    ALREADY = "already decided"
    GONE = "gone"
    ROBOT = "robot"
    NO_ADDRESS = "no address"
    SERVER = "server address"
    OWN = "own address"
    STAFF = "staff address"
    BOUNCED = "bounced"
    LIMIT = "period limit"
    NO_IDENTITY = "no identity"


@dataclass(frozen=True)
class Target:
    """Who gets the autoresponse, from which identity, in which language."""

    address: str
    name: str | None
    identity: SenderIdentity
    language: str
    in_reply_to: str | None


def period() -> timedelta:
    return timedelta(hours=max(0, int(current_app.config["MAIL_AUTORESPONSE_PERIOD_HOURS"])))


def _first_entry(ticket: Ticket) -> StreamEntry | None:
    return db.session.scalar(
        select(StreamEntry)
        .where(StreamEntry.ticket_id == ticket.id)
        .order_by(StreamEntry.created_at, StreamEntry.id)
        .limit(1)
    )


def _inbound_of(entry: StreamEntry | None) -> InboundMail | None:
    if entry is None or entry.kind != EntryKind.MAIL_IN.value:
        return None
    return db.session.scalar(select(InboundMail).where(InboundMail.entry_id == entry.id).limit(1))


def sender_address(ticket: Ticket, entry: StreamEntry | None = None) -> str | None:
    """The address ``entry`` (default: the ticket's first message) came from, lower case."""
    first = entry if entry is not None else _first_entry(ticket)
    inbound = _inbound_of(first)
    data = (first.data or {}) if first is not None else {}
    candidates = [
        inbound.from_address if inbound is not None else None,
        data.get("from") if isinstance(data.get("from"), str) else None,
        first.author_email if first is not None else None,
        ticket.contact.email if ticket.contact is not None else None,
        ticket.submitter_email,
    ]
    for candidate in candidates:
        address = parseaddr(candidate or "")[1].strip().lower()
        if "@" in address:
            return address
    return None


def own_addresses() -> set[str]:
    """Every address mail from the desk comes from: identities, mailboxes, ``MAIL_FROM``."""
    own = {a.lower() for a in db.session.scalars(select(SenderIdentity.address))}
    own |= {a.lower() for a in db.session.scalars(select(Mailbox.address))}
    mail_from = parseaddr(current_app.config.get("MAIL_FROM") or "")[1].lower()
    if mail_from:
        own.add(mail_from)
    return own


def _is_staff_address(address: str) -> bool:
    staff = [r.value for r in Role if r is not Role.CUSTOMER]
    return (
        db.session.scalar(
            select(User.id)
            .join(UserRole, UserRole.user_id == User.id)
            .where(func.lower(User.email) == address, UserRole.role.in_(staff))
            .limit(1)
        )
        is not None
    )


def _bounced(address: str) -> bool:
    return (
        db.session.scalar(
            select(Contact.id)
            .where(func.lower(Contact.email) == address, Contact.mail_bounced_at.is_not(None))
            .limit(1)
        )
        is not None
    )


def answered_within(
    address: str, since_hours: timedelta, kind: system_mail.Kind = system_mail.Kind.AUTORESPONSE
) -> int:
    """Mails of ``kind`` queued to ``address`` within the period (counted in the outbox)."""
    return (
        db.session.scalar(
            select(func.count(OutboxMessage.id))
            .join(OutboxRecipient, OutboxRecipient.message_id == OutboxMessage.id)
            .where(
                OutboxMessage.system_kind == kind.value,
                OutboxRecipient.address == address,
                OutboxMessage.created_at >= utcnow() - since_hours,
            )
        )
        or 0
    )


def _identity_for(inbound: InboundMail | None) -> SenderIdentity | None:
    mailbox = inbound.mailbox if inbound is not None else None
    if mailbox is not None and mailbox.identity is not None and mailbox.identity.active:
        return mailbox.identity
    return system_mail.default_identity()


def _contact_for(ticket: Ticket, address: str) -> Contact | None:
    if ticket.contact is not None and ticket.contact.email.lower() == address:
        return ticket.contact
    return db.session.scalar(
        select(Contact).where(func.lower(Contact.email) == address).order_by(Contact.id).limit(1)
    )


def _language(contact: Contact | None, address: str, identity: SenderIdentity) -> str:
    """The contact's portal account's language, else the identity's."""
    user = contact.user if contact is not None else None
    if user is None:
        found = find_user(address)
        user = found if found is not None and found.has_role(Role.CUSTOMER) else None
    if user is not None and user.language:
        return user.language
    return identity.language or "en"


def decide(
    ticket: Ticket,
    entry: StreamEntry | None = None,
    kind: system_mail.Kind = system_mail.Kind.AUTORESPONSE,
) -> Target | Outcome:
    """Whom to answer about ``entry`` (default: the ticket's first message), or the reason
    not to (see the module docstring for each rule)."""
    first = entry if entry is not None else _first_entry(ticket)
    inbound = _inbound_of(first)
    data = (first.data or {}) if first is not None else {}
    if (inbound is not None and inbound.robot) or data.get("robot"):
        return Outcome.ROBOT
    address = sender_address(ticket, first)
    if address is None:
        return Outcome.NO_ADDRESS
    if address.partition("@")[0] in SERVER_LOCALPARTS:
        return Outcome.SERVER
    if address in own_addresses():
        return Outcome.OWN
    if _is_staff_address(address):
        return Outcome.STAFF
    if _bounced(address):
        return Outcome.BOUNCED
    if answered_within(address, period(), kind) > 0:
        return Outcome.LIMIT
    identity = _identity_for(inbound)
    if identity is None:
        return Outcome.NO_IDENTITY
    contact = _contact_for(ticket, address)
    name = contact.name if contact is not None else (first.author_name if first else None)
    message_id = data.get("message_id") if isinstance(data.get("message_id"), str) else None
    return Target(
        address=address,
        name=name,
        identity=identity,
        language=_language(contact, address, identity),
        in_reply_to=_bracketed(message_id),
    )


def _already_decided(ticket: Ticket, notice: str, entry_id: int | None = None) -> bool:
    query = select(StreamEntry.id).where(
        StreamEntry.ticket_id == ticket.id,
        StreamEntry.kind == EntryKind.SYSTEM.value,
        StreamEntry.data["notice"].as_string() == notice,
    )
    if entry_id is not None:
        query = query.where(StreamEntry.data["about"].as_integer() == entry_id)
    return db.session.execute(query).first() is not None


REASONS = {
    Outcome.ROBOT: "the first message was automatic (bounce, auto-reply, list or our own mail)",
    Outcome.NO_ADDRESS: "there is no sender address",
    Outcome.SERVER: "the sender is a mail server's address",
    Outcome.OWN: "the sender is one of our own addresses",
    Outcome.STAFF: "the sender is a staff member",
    Outcome.BOUNCED: "mail to the sender's address bounces",
    Outcome.LIMIT: "the sender got one within the period already",
    Outcome.NO_IDENTITY: "no sender identity is configured",
}


def _note(ticket: Ticket, text: str, notice: str = NOTICE, **data: object) -> StreamEntry:
    return add_entry(
        ticket,
        EntryKind.SYSTEM,
        Actor.system(),
        body_text=text,
        internal=True,
        data={"notice": notice, **data},
    )


def respond(ticket_id: int) -> Outcome:
    """Decide and, if so, queue the autoresponse for a new ticket; never commits.

    The caller (``app.jobs.mail.send_autoresponse``) holds the per-sender lock and commits.
    """
    ticket = db.session.get(Ticket, ticket_id)
    if ticket is None:
        return Outcome.GONE
    if _already_decided(ticket, NOTICE):
        return Outcome.ALREADY
    decision = decide(ticket)
    if isinstance(decision, Outcome):
        _note(
            ticket,
            _("No autoresponse was sent: %(reason)s.", reason=REASONS[decision]),
            outcome=decision.value,
        )
        return decision
    queue(ticket, decision)
    return Outcome.QUEUED


def reopen_notice(ticket_id: int, entry_id: int) -> Outcome:
    """Tell the customer whose message (``entry_id``) reopened the ticket; never commits.

    The same rules as the autoresponse, counted apart; one decision per message.
    """
    ticket = db.session.get(Ticket, ticket_id)
    entry = db.session.get(StreamEntry, entry_id)
    if ticket is None or entry is None or entry.ticket_id != ticket.id:
        return Outcome.GONE
    if _already_decided(ticket, REOPEN.value, entry.id):
        return Outcome.ALREADY
    decision = decide(ticket, entry, REOPEN)
    if isinstance(decision, Outcome):
        _note(
            ticket,
            _("No reopen notice was sent: %(reason)s.", reason=REASONS[decision]),
            notice=REOPEN.value,
            outcome=decision.value,
            about=entry.id,
        )
        return decision
    queue(ticket, decision, REOPEN, about=entry.id)
    return Outcome.QUEUED


def values_for(ticket: Ticket, target: Target) -> dict[str, object]:
    """The documented variables of the autoresponse and reopen templates for this ticket."""
    return {
        "ticket_number": ticket.number,
        "ticket_subject": ticket.subject,
        "customer_name": target.name or target.address,
        "portal_url": public_url("portal.ticket", number=ticket.number),
        "identity_name": target.identity.name,
        "agent_name": ticket.assignee.name if ticket.assignee is not None else "",
        "expected_answer": expected_answer_for(ticket, target),
    }


def expected_answer_for(ticket: Ticket, target: Target) -> str:
    """The expectation sentence in the customer's language and zone; "" without a target."""
    expectation = targets.expected_answer(ticket, utcnow())
    if expectation is None:
        return ""
    contact = _contact_for(ticket, target.address)
    reader = contact.user if contact is not None else None
    language = system_mail.language_of(target.language)
    return targets.expectation_text(expectation, language, targets.customer_zone(reader))


def queue(
    ticket: Ticket,
    target: Target,
    kind: system_mail.Kind = system_mail.Kind.AUTORESPONSE,
    *,
    about: int | None = None,
) -> OutboxMessage:
    """The outbox row (one To copy) and the entry saying it was queued."""
    identity = target.identity
    rendered = system_mail.render(kind, identity, target.language, values_for(ticket, target))
    if kind is REOPEN:
        said = _("Reopen notice queued to %(address)s.", address=target.address)
    else:
        said = _("Autoresponse queued to %(address)s.", address=target.address)
    extra: dict[str, object] = {"about": about} if about is not None else {}
    note = _note(
        ticket,
        said + (_(" Its template failed; the default was used.") if rendered.fell_back else ""),
        notice=NOTICE if kind is system_mail.Kind.AUTORESPONSE else kind.value,
        outcome=Outcome.QUEUED.value,
        to=target.address,
        language=rendered.language,
        **extra,
    )
    message = _new_message(ticket, identity, from_name=identity.name, body_text=rendered.text)
    subject = rendered.subject
    if f"[#{ticket.number}]" not in subject:  # threading needs the number, whatever was typed
        subject = f"[#{ticket.number}] {subject}"
    message.subject = subject[:400]
    message.body_html = rendered.html
    message.language = rendered.language
    message.system_kind = kind.value
    message.auto_submitted = "auto-replied"
    message.entry = note
    message.in_reply_to = target.in_reply_to
    message.references = target.in_reply_to
    message.recipients = {rk.value: [] for rk in RecipientKind}
    message.recipients[RecipientKind.TO.value] = [target.address]
    message.deliveries.append(
        OutboxRecipient(kind=RecipientKind.TO.value, address=target.address, name=target.name)
    )
    db.session.add(message)
    _enqueue(message)
    return message
