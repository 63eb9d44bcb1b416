"""Turning a public reply into an outbox row, in the reply's own transaction.

The subject carries the ticket number (``[#T-104233]``) so answers thread back; Reply-To is
the identity's address; files never travel as attachments: the body lists a vault link per
file, issued for the ticket's main recipient.
"""

from __future__ import annotations

import secrets
from email.utils import make_msgid

from app.actor import Actor
from app.errors import InvalidInput
from app.extensions import db
from app.files import vault_links
from app.mail.addresses import domain_of
from app.models.files import VaultFile
from app.models.mail import OutboxMessage, OutboxStatus, SenderIdentity
from app.models.tickets import RecipientKind, StreamEntry, Ticket
from app.models.types import utcnow


def subject_for(ticket: Ticket) -> str:
    return f"[#{ticket.number}] {ticket.subject}"


def compose_body(text: str, identity: SenderIdentity, links: list[tuple[VaultFile, str]]) -> str:
    parts = [text.rstrip()]
    if links:
        lines = [f"- {file.display_name}: {url}" for file, url in links]
        parts.append("Files (secure download links):\n" + "\n".join(lines))
    if identity.signature.strip():
        parts.append("-- \n" + identity.signature.strip())
    return "\n\n".join(parts) + "\n"


def queue_reply(
    ticket: Ticket,
    entry: StreamEntry,
    identity: SenderIdentity,
    actor: Actor,
    files: list[VaultFile],
) -> OutboxMessage:
    """Write the outbox row for ``entry``; the mail job sends it after the commit."""
    grouped: dict[str, list[str]] = {kind.value: [] for kind in RecipientKind}
    for recipient in ticket.recipients:
        grouped[recipient.kind].append(recipient.address)
    if not grouped["to"] and not grouped["cc"]:
        raise InvalidInput("The ticket has no external recipient; add one in Recipients.")
    links = []
    for file in files:
        link = vault_links.issue_link(
            file, actor, recipient_email=grouped["to"][0] if grouped["to"] else None
        )
        links.append((file, vault_links.link_url(link)))
    domain = domain_of(identity.address)
    message = OutboxMessage(
        ticket=ticket,
        entry=entry,
        identity=identity,
        message_id=make_msgid(idstring=secrets.token_hex(4), domain=domain),
        from_address=identity.address,
        from_name=identity.name,
        reply_to=identity.address,
        recipients=grouped,
        subject=subject_for(ticket),
        body_text=compose_body(entry.body_text, identity, links),
        status=OutboxStatus.QUEUED.value,
        attempts=0,
        next_attempt_at=utcnow(),
    )
    db.session.add(message)
    return message
