"""Data-subject requests (GDPR Art. 15-21) as records of their own, with an action log.

A request is not a ticket: a ticket is how the desk talks to the person, the request is
what the company owes them by law (a type, a subject, a verified identity, a deadline) and
what it did about it. The portal's request keeps opening its ticket as before; the record
points at it (``ticket_id``).
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.models.people import Contact, User
from app.models.tickets import Ticket
from app.models.types import UTCDateTime, enum_check, utcnow


class GdprRequestKind(enum.StrEnum):
    ACCESS = "access"  # Art. 15 and 20: a copy / an export
    ERASURE = "erasure"  # Art. 17
    RECTIFICATION = "rectification"  # Art. 16
    RESTRICTION = "restriction"  # Art. 18
    OBJECTION = "objection"  # Art. 21


class GdprRequestStatus(enum.StrEnum):
    RECEIVED = "received"
    VERIFYING = "verifying"
    IN_PROGRESS = "in_progress"
    DONE = "done"
    REFUSED = "refused"


OPEN_STATUSES = (
    GdprRequestStatus.RECEIVED,
    GdprRequestStatus.VERIFYING,
    GdprRequestStatus.IN_PROGRESS,
)

# One open request per portal user and kind: a double click (two requests racing) hits
# this index, not a second record. Requests without a portal user are not limited.
OPEN_SQL = "subject_user_id IS NOT NULL AND status IN ('received', 'verifying', 'in_progress')"


class GdprRequest(db.Model):
    __tablename__ = "gdpr_request"
    __table_args__ = (
        enum_check("kind", GdprRequestKind, "kind_known"),
        enum_check("status", GdprRequestStatus, "status_known"),
        Index(
            "uq_gdpr_request_open_per_user",
            "subject_user_id",
            "kind",
            unique=True,
            sqlite_where=text(OPEN_SQL),
            postgresql_where=text(OPEN_SQL),
        ),
        Index("ix_gdpr_request_status_deadline", "status", "deadline_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default=GdprRequestStatus.RECEIVED.value)
    # The subject: a contact, a portal user, or only an address (``subject_email`` always).
    subject_contact_id: Mapped[int | None] = mapped_column(
        ForeignKey("contact.id", ondelete="SET NULL"), index=True
    )
    subject_user_id: Mapped[int | None] = mapped_column(
        ForeignKey("user.id", ondelete="SET NULL"), index=True
    )
    subject_email: Mapped[str] = mapped_column(String(254), index=True)
    subject_name: Mapped[str | None] = mapped_column(String(200))
    ticket_id: Mapped[int | None] = mapped_column(
        ForeignKey("ticket.id", ondelete="SET NULL"), index=True
    )
    channel: Mapped[str] = mapped_column(String(16))  # portal, mail, phone, letter
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    deadline_at: Mapped[datetime] = mapped_column(UTCDateTime())
    extended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    extension_reason: Mapped[str | None] = mapped_column(Text)
    verification: Mapped[str | None] = mapped_column(Text)  # how identity was verified
    verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    verified_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id", ondelete="SET NULL"))
    verified_by_label: Mapped[str | None] = mapped_column(String(200))
    outcome_note: Mapped[str | None] = mapped_column(Text)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    subject_contact: Mapped[Contact | None] = relationship(foreign_keys=[subject_contact_id])
    subject_user: Mapped[User | None] = relationship(foreign_keys=[subject_user_id])
    verified_by: Mapped[User | None] = relationship(foreign_keys=[verified_by_id])
    ticket: Mapped[Ticket | None] = relationship()
    actions: Mapped[list[GdprAction]] = relationship(
        back_populates="request", order_by="GdprAction.id", cascade="all, delete-orphan"
    )

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES


class GdprAction(db.Model):
    """One thing done about a request: who, when, what (also in the audit log)."""

    __tablename__ = "gdpr_action"

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(
        ForeignKey("gdpr_request.id", ondelete="CASCADE"), index=True
    )
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("user.id", ondelete="SET NULL"))
    actor_label: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(32))
    note: Mapped[str | None] = mapped_column(Text)

    request: Mapped[GdprRequest] = relationship(back_populates="actions")
