"""Outgoing mail: sender identities, their reply templates, and the transactional outbox."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.models.tickets import StreamEntry, Ticket
from app.models.types import UTCDateTime, enum_check, utcnow


class SenderIdentity(db.Model):
    """An address the desk answers from (support@, billing@, a team or brand).

    Agents pick one per reply; its name, language and signature go into the mail.
    """

    __tablename__ = "sender_identity"

    id: Mapped[int] = mapped_column(primary_key=True)
    address: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    language: Mapped[str] = mapped_column(String(8), default="en")
    signature: Mapped[str] = mapped_column(Text, default="")
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    templates: Mapped[list[ReplyTemplate]] = relationship(
        back_populates="identity", order_by="ReplyTemplate.name", cascade="all, delete-orphan"
    )

    @property
    def label(self) -> str:
        return f"{self.name} <{self.address}>"


class ReplyTemplate(db.Model):
    """A canned answer belonging to one identity (its language and tone)."""

    __tablename__ = "reply_template"
    __table_args__ = (UniqueConstraint("identity_id", "name", name="uq_reply_template_name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    identity_id: Mapped[int] = mapped_column(
        ForeignKey("sender_identity.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(120))
    body: Mapped[str] = mapped_column(Text)
    active: Mapped[bool] = mapped_column(Boolean, default=True)

    identity: Mapped[SenderIdentity] = relationship(back_populates="templates")


class SystemTemplate(db.Model):
    """An admin's version of one system mail (``app.mail.system_mail.Kind``) for one
    identity and language; without a row the shipped default is used.

    Jinja source, rendered in a sandbox (``app.mail.system_mail``): a subject, the text
    part and, optionally, the HTML part (autoescaped; empty: made from the text).
    """

    __tablename__ = "system_template"
    __table_args__ = (
        UniqueConstraint("identity_id", "kind", "language", name="uq_system_template_key"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    identity_id: Mapped[int] = mapped_column(
        ForeignKey("sender_identity.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(30))
    language: Mapped[str] = mapped_column(String(8))
    subject: Mapped[str] = mapped_column(Text)
    body_text: Mapped[str] = mapped_column(Text)
    body_html: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id", ondelete="SET NULL"))

    identity: Mapped[SenderIdentity] = relationship()


class OutboxStatus(enum.StrEnum):
    QUEUED = "queued"  # waiting for a worker (``next_attempt_at`` says from when)
    SENDING = "sending"  # claimed by a worker until ``claimed_until`` (the lease)
    SENT = "sent"  # the server accepted it for every recipient still deliverable
    FAILED = "failed"  # retries used up or refused for good; agents can send it again
    BOUNCED = "bounced"  # accepted, then a delivery status notification said it failed


class RecipientStatus(enum.StrEnum):
    PENDING = "pending"  # not yet accepted by the server
    SENT = "sent"  # the server accepted this recipient's copy
    REFUSED = "refused"  # the server refused this address for good (5xx)
    BOUNCED = "bounced"  # accepted, then bounced (``mark_bounced``)


class OutboxMessage(db.Model):
    """A mail to send, written in the same transaction as the reply it carries.

    A worker sends it later with retries; if the reply's transaction rolls back, there is
    no mail, and if sending fails, the reply is still in the ticket and the failure shows.
    """

    __tablename__ = "outbox_message"
    __table_args__ = (
        enum_check("status", OutboxStatus, "status_known"),
        Index("ix_outbox_message_status_next", "status", "next_attempt_at"),
    )
    # Claiming, sending and finishing: ``app.mail.relay``. Headers and bodies:
    # ``app.mail.compose``. Each recipient gets its own copy (``OutboxRecipient``), because
    # each carries its own file links.

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int | None] = mapped_column(
        ForeignKey("ticket.id", ondelete="SET NULL"), index=True
    )
    entry_id: Mapped[int | None] = mapped_column(
        ForeignKey("stream_entry.id", ondelete="SET NULL"), index=True
    )
    identity_id: Mapped[int | None] = mapped_column(
        ForeignKey("sender_identity.id", ondelete="SET NULL")
    )
    message_id: Mapped[str] = mapped_column(String(255), unique=True)
    from_address: Mapped[str] = mapped_column(String(254))
    from_name: Mapped[str] = mapped_column(String(200))
    reply_to: Mapped[str | None] = mapped_column(String(254))
    recipients: Mapped[dict[str, Any]] = mapped_column(JSON)  # {"to": [...], "cc": [...], ...}
    subject: Mapped[str] = mapped_column(String(400))
    body_text: Mapped[str] = mapped_column(Text)  # the words, without links or signature
    signature: Mapped[str | None] = mapped_column(Text)  # the identity's, as it was then
    in_reply_to: Mapped[str | None] = mapped_column(String(255))
    references: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(10), default=OutboxStatus.QUEUED.value)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The worker holding the row while ``status`` is ``sending``, and until when: a claim
    # past its lease (a worker that died) may be taken over by another worker.
    claim_token: Mapped[str | None] = mapped_column(String(32))
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # What the server said last (e.g. "250 2.0.0 Ok: queued as 4BC1"), success or not.
    server_answer: Mapped[str | None] = mapped_column(Text)
    # RFC 3834: None for a person's reply; "auto-replied"/"auto-generated" for automatic mail.
    auto_submitted: Mapped[str | None] = mapped_column(String(20))
    # The language of the fixed words in the mail (the identity's when it was written).
    language: Mapped[str] = mapped_column(String(8), default="en")
    # System mail (``app.mail.system_mail``): which template made it ("autoresponse", ...),
    # so limits such as one autoresponse per sender and period can be counted here, and
    # the HTML part its template rendered (autoescaped, sandboxed); None for a person's
    # reply, whose HTML part ``compose`` makes from the text.
    system_kind: Mapped[str | None] = mapped_column(String(30))
    body_html: Mapped[str | None] = mapped_column(Text)

    ticket: Mapped[Ticket | None] = relationship()
    entry: Mapped[StreamEntry | None] = relationship()
    identity: Mapped[SenderIdentity | None] = relationship()
    deliveries: Mapped[list[OutboxRecipient]] = relationship(
        back_populates="message", order_by="OutboxRecipient.id", cascade="all, delete-orphan"
    )


class OutboxRecipient(db.Model):
    """One recipient of an outbox message: its own copy, its own file links, its own fate.

    Why a row per recipient: every recipient gets vault links bound to their address (so
    downloads are audited and revoked per person), so each copy's body differs; and when
    the server accepts one address and defers another, a retry must send only what is
    still owed, never a second copy to whoever already has one.
    """

    __tablename__ = "outbox_recipient"
    __table_args__ = (
        enum_check("status", RecipientStatus, "status_known"),
        UniqueConstraint("message_id", "address", name="uq_outbox_recipient_address"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[int] = mapped_column(
        ForeignKey("outbox_message.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(3))  # to, cc, bcc (RecipientKind)
    address: Mapped[str] = mapped_column(String(254), index=True)
    name: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(10), default=RecipientStatus.PENDING.value)
    # [{"name": "report.pdf", "link_id": "..."}]: this recipient's links, in file order.
    links: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    answer: Mapped[str | None] = mapped_column(Text)  # the server's reply to this copy
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    message: Mapped[OutboxMessage] = relationship(back_populates="deliveries")
