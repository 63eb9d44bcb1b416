"""Bounces of our own mail: what a delivery status notification changes on the desk.

Mail-in recognises a DSN naming one of our Message-IDs and calls ``mark_bounced``. The
outbox row and that recipient's copy become ``bounced``, every contact with the address is
flagged (``Contact.mail_bounced_at``; later replies skip it with a warning, see
``mail.outbound``), and the ticket goes to the inbox with an internal note, so a person
finds out that the customer did not get the answer.
"""

from __future__ import annotations

from sqlalchemy import func, select

from app import audit, notifications
from app.actor import Actor
from app.extensions import db
from app.models.mail import OutboxMessage, OutboxStatus, RecipientStatus
from app.models.people import Contact
from app.models.tickets import EntryKind
from app.models.types import utcnow
from app.tickets.stream import add_entry

REASON_LIMIT = 500


def _bracketed(message_id: str) -> str:
    cleaned = message_id.strip()
    return cleaned if cleaned.startswith("<") else f"<{cleaned}>"


def mark_bounced(message_id: str, recipient: str, reason: str) -> OutboxMessage | None:
    """Record that our mail ``message_id`` bounced for ``recipient``; None if not ours.

    Idempotent: a second DSN for the same copy changes nothing more. The caller commits.
    """
    message = db.session.scalar(
        select(OutboxMessage).where(OutboxMessage.message_id == _bracketed(message_id))
    )
    if message is None:
        return None
    address = recipient.strip().lower()
    reason = " ".join((reason or "").split())[:REASON_LIMIT] or "delivery failed"
    delivery = next((d for d in message.deliveries if d.address.lower() == address), None)
    if delivery is not None and delivery.status == RecipientStatus.BOUNCED.value:
        return message
    if delivery is not None:
        delivery.status = RecipientStatus.BOUNCED.value
        delivery.answer = reason
    message.status = OutboxStatus.BOUNCED.value
    message.last_error = f"{address}: {reason}"
    now = utcnow()
    contacts = db.session.scalars(select(Contact).where(func.lower(Contact.email) == address))
    for contact in contacts:
        contact.mail_bounced_at = now
        contact.mail_bounce_reason = reason
    ticket = message.ticket
    if ticket is not None:
        add_entry(
            ticket,
            EntryKind.SYSTEM,
            Actor.system(),
            body_text=f"Mail to {address} bounced: {reason}. "
            "Later replies skip this address until it is corrected.",
            internal=True,
            data={"bounced": address, "message_id": message.message_id},
        )
        ticket.in_inbox = True
        ticket.last_customer_activity_at = now
    notifications.reply_failed(message.id, message.last_error)  # its author hears of it
    audit.record(
        Actor.system(),
        "mail.bounced",
        "outbox",
        message.id,
        ticket_id=message.ticket_id,
        address=address,
        reason=reason,
    )
    return message
