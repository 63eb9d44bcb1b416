"""Vault files as the help desk knows them, their signed links and the download audit.

The encrypted bytes live in the vault (``vault/``); these rows hold what the desk needs
to know about them: names, sizes, who uploaded, where they are attached, who may fetch
them through which link, and every attempt to do so.
"""

from __future__ import annotations

import enum
import secrets
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    ForeignKey,
    Index,
    Integer,
    String,
    and_,
    case,
    select,
)
from sqlalchemy.ext.hybrid import hybrid_method
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.models.people import Contact, User
from app.models.tickets import StreamEntry, Ticket
from app.models.types import UTCDateTime, enum_check, utcnow


def new_public_id() -> str:
    return secrets.token_hex(16)


class FileKind(enum.StrEnum):
    ATTACHMENT = "attachment"  # sent or uploaded as a file
    INLINE = "inline"  # an image inside a mail's HTML (``cid:``), shown in place
    MAIL_ORIGINAL = "mail_original"  # a received message as it arrived; agents only


class VaultFile(db.Model):
    """One stored file. ``public_id`` is what URLs carry; the integer id never leaves."""

    __tablename__ = "vault_file"
    __table_args__ = (enum_check("kind", FileKind, "kind_known"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True, default=new_public_id)
    blob_id: Mapped[str] = mapped_column(String(32), unique=True)
    original_name: Mapped[str] = mapped_column(String(1024))  # exactly as given
    display_name: Mapped[str] = mapped_column(String(255))  # safe to show and to send
    size: Mapped[int] = mapped_column(BigInteger)
    mime_type: Mapped[str] = mapped_column(String(127))  # sniffed from the bytes
    sha256: Mapped[str] = mapped_column(String(64))
    # The portal, mail links and the download audit only ever offer attachments; inline
    # images are served in place, and a mail original only to agents ("show original").
    kind: Mapped[str] = mapped_column(String(14), default=FileKind.ATTACHMENT.value)
    uploaded_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id", ondelete="SET NULL"))
    uploaded_by_label: Mapped[str] = mapped_column(String(254))
    ticket_id: Mapped[int | None] = mapped_column(
        ForeignKey("ticket.id", ondelete="SET NULL"), index=True
    )
    entry_id: Mapped[int | None] = mapped_column(
        ForeignKey("stream_entry.id", ondelete="SET NULL"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    erased_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    erased_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id", ondelete="SET NULL"))

    ticket: Mapped[Ticket | None] = relationship()
    entry: Mapped[StreamEntry | None] = relationship(back_populates="attachments")
    uploaded_by: Mapped[User | None] = relationship(foreign_keys=[uploaded_by_id])

    @property
    def is_erased(self) -> bool:
        return self.erased_at is not None


class VaultLinkState(enum.StrEnum):
    ACTIVE = "active"
    EXPIRED = "expired"
    REVOKED = "revoked"
    EXHAUSTED = "exhausted"
    ERASED = "erased"


class VaultLink(db.Model):
    """A signed, expiring, revocable way for someone outside to fetch one file.

    The URL token is the signed ``id``; the row is what makes revocation, expiry and
    download limits possible, because a signature alone cannot be taken back.
    """

    __tablename__ = "vault_link"
    __table_args__ = (Index("ix_vault_link_expires_revoked", "expires_at", "revoked_at"),)

    id: Mapped[str] = mapped_column(String(43), primary_key=True)
    file_id: Mapped[int] = mapped_column(
        ForeignKey("vault_file.id", ondelete="CASCADE"), index=True
    )
    ticket_id: Mapped[int | None] = mapped_column(
        ForeignKey("ticket.id", ondelete="SET NULL"), index=True
    )
    contact_id: Mapped[int | None] = mapped_column(
        ForeignKey("contact.id", ondelete="SET NULL"), index=True
    )
    recipient_email: Mapped[str | None] = mapped_column(String(254), index=True)
    issued_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    max_downloads: Mapped[int | None] = mapped_column(Integer)
    download_count: Mapped[int] = mapped_column(Integer, default=0)
    password_hash: Mapped[str | None] = mapped_column(String(255))
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id", ondelete="SET NULL"))
    revoke_reason: Mapped[str | None] = mapped_column(String(500))

    file: Mapped[VaultFile] = relationship()
    ticket: Mapped[Ticket | None] = relationship()
    contact: Mapped[Contact | None] = relationship()
    issued_by: Mapped[User | None] = relationship(foreign_keys=[issued_by_id])
    revoked_by: Mapped[User | None] = relationship(foreign_keys=[revoked_by_id])

    # The one rule of link states, on a loaded row and in SQL side by side: the lists,
    # the filters, the download counter's conditional UPDATE and the landing page all ask
    # it, so they can never disagree. The most final reason wins: erased, revoked,
    # expired, exhausted, in that order.

    @hybrid_method
    def state(self, now: datetime) -> VaultLinkState:
        """Why this link would be refused at ``now``, or ACTIVE."""
        if self.file.erased_at is not None:
            return VaultLinkState.ERASED
        if self.revoked_at is not None:
            return VaultLinkState.REVOKED
        if self.expires_at <= now:
            return VaultLinkState.EXPIRED
        if self.max_downloads is not None and self.download_count >= self.max_downloads:
            return VaultLinkState.EXHAUSTED
        return VaultLinkState.ACTIVE

    @state.inplace.expression
    @classmethod
    def _state_expression(cls, now: datetime) -> ColumnElement[str]:
        file_erased = (
            select(VaultFile.erased_at)
            .where(VaultFile.id == cls.file_id)
            .correlate(cls)
            .scalar_subquery()
            .is_not(None)
        )
        return case(
            (file_erased, VaultLinkState.ERASED.value),
            (cls.revoked_at.is_not(None), VaultLinkState.REVOKED.value),
            (cls.expires_at <= now, VaultLinkState.EXPIRED.value),
            (
                and_(cls.max_downloads.is_not(None), cls.download_count >= cls.max_downloads),
                VaultLinkState.EXHAUSTED.value,
            ),
            else_=VaultLinkState.ACTIVE.value,
        )


class DownloadOutcome(enum.StrEnum):
    VIEWED = "viewed"  # the landing page was shown (scanners do this too), or a HEAD
    CHALLENGED = "challenged"  # a one-time code was mailed to the link's recipient
    VERIFIED = "verified"  # the visitor proved to be the link's recipient
    GRANTED = "granted"  # a download was started and counted
    SERVED = "served"  # the last byte of a response was handed over (one row per request)
    INTERRUPTED = "interrupted"  # a response began but ended early; ``reason`` says why
    REFUSED = "refused"


class DownloadEvent(db.Model):
    """Every attempt to reach a file, served or refused, kept for compliance officers."""

    __tablename__ = "download_event"
    __table_args__ = (enum_check("outcome", DownloadOutcome, "outcome_known"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    link_id: Mapped[str | None] = mapped_column(
        ForeignKey("vault_link.id", ondelete="SET NULL"), index=True
    )
    file_id: Mapped[int | None] = mapped_column(
        ForeignKey("vault_file.id", ondelete="SET NULL"), index=True
    )
    user_id: Mapped[int | None] = mapped_column(ForeignKey("user.id", ondelete="SET NULL"))
    outcome: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(40))
    byte_range: Mapped[str | None] = mapped_column(String(64))
    client_address: Mapped[str | None] = mapped_column(String(64))  # truncated, see app.audit
    user_agent: Mapped[str | None] = mapped_column(String(200))

    link: Mapped[VaultLink | None] = relationship()
    file: Mapped[VaultFile | None] = relationship()
    user: Mapped[User | None] = relationship()
