"""Turning a public reply into an outbox row, in the reply's own transaction.

Who gets a reply (the seed's rules, as Zammad and Znuny do it): the ticket's external
To/Cc/Bcc addresses, and the subscribed employees in Bcc, except the one who wrote it.
Addresses whose contact bounced are skipped and a warning says so on the ticket. A
customer's incoming mail that is passed on to employees (``queue_distribution``) goes to
the manager in To and the other subscribers in Cc. Internal notes never get here.

Every recipient gets a copy of their own (``OutboxRecipient``) with a vault link per file
bound to their address, so each person's downloads are audited and revocable apart.

Everything a header needs is fixed now, in the transaction: the Message-ID (in the
identity's domain, reused by every retry), the sender name (``MAIL_FROM_NAME_FORMAT``:
"Agent via Identity"), In-Reply-To (the customer's last mail) and References (the
ticket's earlier mails). The send job is enqueued after the commit (``app.jobs.mail``);
if Redis is down then, the periodic sweep enqueues it later.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from email.utils import make_msgid

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import func, select

from app.actor import Actor
from app.errors import InvalidInput
from app.extensions import db
from app.files import vault_links
from app.mail.addresses import domain_of
from app.models.files import VaultFile
from app.models.mail import OutboxMessage, OutboxRecipient, OutboxStatus, SenderIdentity
from app.models.people import Contact
from app.models.tickets import EntryKind, RecipientKind, StreamEntry, Ticket
from app.models.types import utcnow
from app.tickets.stream import add_entry
from app.urls import public_url

REFERENCES_KEPT = 20  # the first mail of the thread and the latest ones (RFC 5322 3.6.4)


def subject_for(ticket: Ticket) -> str:
    return f"[#{ticket.number}] {ticket.subject}"


@dataclass(frozen=True)
class Planned:
    """One recipient of a mail about to be queued."""

    kind: str  # RecipientKind value
    address: str
    name: str | None = None


@dataclass(frozen=True)
class Skipped:
    """An address left out because mail to it bounced."""

    address: str
    bounced_at: str
    reason: str | None


def bounced_addresses(addresses: list[str]) -> dict[str, Contact]:
    """Contacts flagged as bouncing, by lower-case address, among ``addresses``."""
    wanted = {a.lower() for a in addresses}
    if not wanted:
        return {}
    rows = db.session.scalars(
        select(Contact).where(
            func.lower(Contact.email).in_(wanted), Contact.mail_bounced_at.is_not(None)
        )
    )
    return {c.email.lower(): c for c in rows}


def reply_recipients(ticket: Ticket, actor: Actor) -> tuple[list[Planned], list[Skipped]]:
    """External To/Cc/Bcc, then subscribed staff in Bcc (not the author); bounced skipped."""
    order = {RecipientKind.TO.value: 0, RecipientKind.CC.value: 1, RecipientKind.BCC.value: 2}
    external = sorted(ticket.recipients, key=lambda r: (order.get(r.kind, 3), r.id or 0))
    bounced = bounced_addresses([r.address for r in external])
    planned: list[Planned] = []
    skipped: list[Skipped] = []
    seen: set[str] = set()
    for recipient in external:
        address = recipient.address.lower()
        if address in seen:
            continue
        seen.add(address)
        contact = bounced.get(address)
        if contact is not None and contact.mail_bounced_at is not None:
            skipped.append(
                Skipped(
                    address,
                    contact.mail_bounced_at.strftime("%Y-%m-%d"),
                    contact.mail_bounce_reason,
                )
            )
            continue
        planned.append(Planned(recipient.kind, address, recipient.name))
    for user in sorted(ticket.subscribers, key=lambda u: u.id):
        address = user.email.lower()
        if user.id == actor.user_id or not user.active or not user.is_staff or address in seen:
            continue
        seen.add(address)
        planned.append(Planned(RecipientKind.BCC.value, address, user.name))
    return planned, skipped


def distribution_recipients(ticket: Ticket) -> list[Planned]:
    """For a customer's mail passed on to employees: the manager in To, the others in Cc."""
    manager = ticket.assignee
    planned: list[Planned] = []
    seen: set[str] = set()
    if manager is not None and manager.active and manager.is_staff:
        planned.append(Planned(RecipientKind.TO.value, manager.email.lower(), manager.name))
        seen.add(manager.email.lower())
    for user in sorted(ticket.subscribers, key=lambda u: u.id):
        address = user.email.lower()
        if address in seen or not user.active or not user.is_staff:
            continue
        seen.add(address)
        planned.append(Planned(RecipientKind.CC.value, address, user.name))
    return planned


def sender_name(agent: str | None, identity: SenderIdentity) -> str:
    """ "Agent via Identity" by ``MAIL_FROM_NAME_FORMAT``; the identity's name alone if no agent."""
    if not agent:
        return identity.name
    form = current_app.config.get("MAIL_FROM_NAME_FORMAT") or "{agent} via {identity}"
    try:
        return form.format(agent=agent, identity=identity.name)
    except (KeyError, IndexError, ValueError):
        return f"{agent} via {identity.name}"


def _bracketed(message_id: str | None) -> str | None:
    cleaned = (message_id or "").strip()
    if not cleaned:
        return None
    return cleaned if cleaned.startswith("<") else f"<{cleaned}>"


def thread_headers(ticket: Ticket) -> tuple[str | None, str | None]:
    """(In-Reply-To, References): the customer's last mail, and the ticket's mails so far.

    Mail-in keeps each received message's id in ``StreamEntry.data["message_id"]``; our own
    earlier mails are outbox rows. Both are merged in time order.
    """
    received = db.session.execute(
        select(StreamEntry.created_at, StreamEntry.id, StreamEntry.data)
        .where(StreamEntry.ticket_id == ticket.id, StreamEntry.kind == EntryKind.MAIL_IN.value)
        .order_by(StreamEntry.created_at, StreamEntry.id)
    ).all()
    sent = db.session.execute(
        select(OutboxMessage.created_at, OutboxMessage.id, OutboxMessage.message_id)
        .where(OutboxMessage.ticket_id == ticket.id, OutboxMessage.auto_submitted.is_(None))
        .order_by(OutboxMessage.created_at, OutboxMessage.id)
    ).all()
    timeline: list[tuple[object, str]] = []
    last_customer: str | None = None
    for at, _id, data in received:
        mid = _bracketed((data or {}).get("message_id") if isinstance(data, dict) else None)
        if mid:
            timeline.append((at, mid))
            last_customer = mid
    timeline.extend((at, mid) for at, _id, mid in sent if mid)
    timeline.sort(key=lambda pair: pair[0])  # type: ignore[arg-type,return-value]
    ids: list[str] = []
    for _at, mid in timeline:
        if mid not in ids:
            ids.append(mid)
    if len(ids) > REFERENCES_KEPT:
        ids = [ids[0], *ids[-(REFERENCES_KEPT - 1) :]]
    return last_customer, (" ".join(ids) or None)


def _new_message(
    ticket: Ticket, identity: SenderIdentity, *, from_name: str, body_text: str
) -> OutboxMessage:
    return OutboxMessage(
        ticket=ticket,
        identity=identity,
        message_id=make_msgid(idstring=secrets.token_hex(4), domain=domain_of(identity.address)),
        from_address=identity.address,
        from_name=from_name,
        reply_to=identity.address,
        subject=subject_for(ticket),
        body_text=body_text,
        signature=identity.signature or None,
        language=identity.language or "en",
        status=OutboxStatus.QUEUED.value,
        attempts=0,
        next_attempt_at=utcnow(),
        created_at=utcnow(),
    )


def _group(planned: list[Planned]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {kind.value: [] for kind in RecipientKind}
    for p in planned:
        grouped[p.kind].append(p.address)
    return grouped


def _enqueue(message: OutboxMessage) -> None:
    from app.jobs.mail import enqueue_send

    db.session.flush()
    enqueue_send(message.id, message.attempts)


def queue_reply(
    ticket: Ticket,
    entry: StreamEntry,
    identity: SenderIdentity,
    actor: Actor,
    files: list[VaultFile],
) -> OutboxMessage:
    """Write the outbox row and its recipients for ``entry``; sent after the commit."""
    planned, skipped = reply_recipients(ticket, actor)
    if skipped:
        lines = [
            f"{s.address} (bounced {s.bounced_at}{': ' + s.reason if s.reason else ''})"
            for s in skipped
        ]
        add_entry(
            ticket,
            EntryKind.SYSTEM,
            Actor.system(),
            body_text="Not mailed to an address that bounces: "
            + "; ".join(lines)
            + ". Correct the address in Recipients, or clear the flag on the contact.",
            internal=True,
            data={"skipped_bounced": [s.address for s in skipped], "entry": entry.id},
        )
    if not any(p.kind in (RecipientKind.TO.value, RecipientKind.CC.value) for p in planned):
        if skipped:
            raise InvalidInput(
                _(
                    "Every customer address of this ticket bounces (%(addresses)s); "
                    "add a working one in Recipients.",
                    addresses=", ".join(s.address for s in skipped),
                )
            )
        raise InvalidInput(_("The ticket has no external recipient; add one in Recipients."))
    in_reply_to, references = thread_headers(ticket)
    message = _new_message(
        ticket, identity, from_name=sender_name(actor.name, identity), body_text=entry.body_text
    )
    message.entry = entry
    message.recipients = _group(planned)
    message.in_reply_to = in_reply_to
    message.references = references
    for p in planned:
        links = [
            {
                "name": file.display_name,
                "link_id": vault_links.issue_link(file, actor, recipient_email=p.address).id,
            }
            for file in files
        ]
        message.deliveries.append(
            OutboxRecipient(kind=p.kind, address=p.address, name=p.name, links=links)
        )
    db.session.add(message)
    _enqueue(message)
    return message


def queue_distribution(
    ticket: Ticket, entry: StreamEntry, identity: SenderIdentity | None = None
) -> OutboxMessage | None:
    """Pass a customer's incoming mail on to the ticket's employees (mail-in calls this).

    The manager in To, the other subscribers in Cc; automatic (``Auto-Submitted:
    auto-generated``), so no out-of-office answers it. Files are named, not linked: staff
    open them from the ticket page, whose address the mail carries. None when nobody is
    subscribed or no identity exists.
    """
    planned = distribution_recipients(ticket)
    identity = identity or db.session.scalar(
        select(SenderIdentity)
        .where(SenderIdentity.active.is_(True))
        .order_by(SenderIdentity.is_default.desc(), SenderIdentity.id)
    )
    if not planned or identity is None:
        return None
    text = entry.body_text.rstrip()
    names = [f.display_name for f in entry.attachments]
    if names:
        text += "\n\n" + ", ".join(names)
    text += "\n\n" + public_url("agent.ticket", number=ticket.number)
    author = entry.author_name or entry.author_email
    message = _new_message(
        ticket, identity, from_name=sender_name(author, identity), body_text=text
    )
    message.entry = entry
    message.signature = None
    message.auto_submitted = "auto-generated"
    message.recipients = _group(planned)
    message.in_reply_to = _bracketed((entry.data or {}).get("message_id"))
    message.references = message.in_reply_to
    for p in planned:
        message.deliveries.append(OutboxRecipient(kind=p.kind, address=p.address, name=p.name))
    db.session.add(message)
    _enqueue(message)
    return message
