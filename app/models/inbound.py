"""Mail coming in: the mailboxes the desk polls and the record of every message received.

Every message that reaches the desk, by IMAP, the MTA pipe, the import command or the drop
folder, gets one ``InboundMail`` row whatever happens to it: filed on a ticket, held for
review, quarantined, ignored as robot traffic. The row is how "nothing is ever silently
dropped" is kept and shown: admins see what came in, what became of it and why, and the
raw message stays in the vault (``raw_file``) for as long as the row lives.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.models.files import VaultFile
from app.models.mail import SenderIdentity
from app.models.people import User
from app.models.tickets import StreamEntry, Ticket
from app.models.types import UTCDateTime, enum_check, utcnow


class MailSecurity(enum.StrEnum):
    TLS = "tls"  # implicit TLS, usually port 993
    STARTTLS = "starttls"  # plain connection upgraded before login, usually port 143
    NONE = "none"  # only for a server on the same machine or network


class AfterImport(enum.StrEnum):
    FLAG = "flag"  # mark \Seen and our own keyword, leave it in the folder
    MOVE = "move"  # move to ``Mailbox.move_to``
    DELETE = "delete"  # expunge


class Mailbox(db.Model):
    """An IMAP mailbox the desk polls, answered for by one sender identity.

    The password is sealed with the vault's key ring (``password_sealed``) and never
    shown again; admins can only replace it.
    """

    __tablename__ = "mailbox"
    __table_args__ = (
        enum_check("security", MailSecurity, "security_known"),
        enum_check("after_import", AfterImport, "after_import_known"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    address: Mapped[str] = mapped_column(String(254), unique=True)  # the support address
    host: Mapped[str] = mapped_column(String(255))
    port: Mapped[int] = mapped_column(Integer, default=993)
    security: Mapped[str] = mapped_column(String(10), default=MailSecurity.TLS.value)
    username: Mapped[str] = mapped_column(String(254))
    password_sealed: Mapped[str] = mapped_column(Text, default="")
    folder: Mapped[str] = mapped_column(String(255), default="INBOX")
    after_import: Mapped[str] = mapped_column(String(10), default=AfterImport.FLAG.value)
    move_to: Mapped[str | None] = mapped_column(String(255))
    identity_id: Mapped[int | None] = mapped_column(
        ForeignKey("sender_identity.id", ondelete="SET NULL")
    )
    poll_interval_s: Mapped[int] = mapped_column(Integer, default=120)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    last_polled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    identity: Mapped[SenderIdentity | None] = relationship()


class MailSource(enum.StrEnum):
    IMAP = "imap"
    PIPE = "pipe"
    IMPORT = "import"
    DROP = "drop"


class MailOutcome(enum.StrEnum):
    CREATED = "created"  # a new ticket
    APPENDED = "appended"  # a new entry on an existing ticket
    REVIEW = "review"  # threading was not safe: an agent decides
    QUARANTINED = "quarantined"  # could not be parsed, stored or was throttled: admins decide
    IGNORED = "ignored"  # robot traffic about no ticket (bounce, auto-reply, list)
    DUPLICATE = "duplicate"  # already received (same Message-ID or same bytes)


class MailDecision(enum.StrEnum):
    ATTACHED = "attached"  # filed on a ticket by hand
    NEW_TICKET = "new_ticket"
    DISCARDED = "discarded"
    RETRIED = "retried"  # sent through the pipeline again


class InboundMail(db.Model):
    """One message received, whatever became of it.

    ``dedupe_key`` is the Message-ID (normalised) or, without one, the SHA-256 of the
    bytes; it is unique, so a message that reaches two of our mailboxes, or is fetched
    again after a crash, is recognised by the database itself, not by a check that two
    workers could pass at once. Duplicates are reported to the caller but get no row.
    """

    __tablename__ = "inbound_mail"
    __table_args__ = (
        enum_check("source", MailSource, "source_known"),
        enum_check("outcome", MailOutcome, "outcome_known"),
        Index("ix_inbound_mail_outcome_received", "outcome", "received_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    dedupe_key: Mapped[str] = mapped_column(String(300), unique=True)
    message_id: Mapped[str | None] = mapped_column(String(998))
    sha256: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(8))
    source_ref: Mapped[str | None] = mapped_column(String(1024))  # file path, IMAP uid
    mailbox_id: Mapped[int | None] = mapped_column(
        ForeignKey("mailbox.id", ondelete="SET NULL"), index=True
    )
    from_address: Mapped[str | None] = mapped_column(String(254), index=True)
    subject: Mapped[str] = mapped_column(String(400), default="")
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    outcome: Mapped[str] = mapped_column(String(12))
    reason: Mapped[str | None] = mapped_column(Text)
    robot: Mapped[str | None] = mapped_column(String(20))  # bounce, auto_reply, list, own
    ticket_id: Mapped[int | None] = mapped_column(
        ForeignKey("ticket.id", ondelete="SET NULL"), index=True
    )
    entry_id: Mapped[int | None] = mapped_column(
        ForeignKey("stream_entry.id", ondelete="SET NULL"), index=True
    )
    raw_file_id: Mapped[int | None] = mapped_column(
        ForeignKey("vault_file.id", ondelete="SET NULL")
    )
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # attachments, suspected ticket
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    decision: Mapped[str | None] = mapped_column(String(12))
    decision_reason: Mapped[str | None] = mapped_column(Text)
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id", ondelete="SET NULL"))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    mailbox: Mapped[Mailbox | None] = relationship()
    ticket: Mapped[Ticket | None] = relationship()
    entry: Mapped[StreamEntry | None] = relationship()
    raw_file: Mapped[VaultFile | None] = relationship()
    decided_by: Mapped[User | None] = relationship()

    @property
    def is_open(self) -> bool:
        """Held (review or quarantine) and not yet decided."""
        return self.decision is None and self.outcome in (
            MailOutcome.REVIEW.value,
            MailOutcome.QUARANTINED.value,
        )
