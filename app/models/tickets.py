"""The ticket aggregate: ticket, stream, tags, links, tasks, recipients, read state."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.models.people import Account, Contact, Team, User
from app.models.types import UTCDateTime, enum_check, utcnow

if TYPE_CHECKING:
    from app.models.files import VaultFile


class Status(enum.StrEnum):
    NEW = "new"
    OPEN = "open"
    IN_PROGRESS = "in_progress"
    PENDING = "pending"
    WAITING_THIRD_PARTY = "waiting_third_party"
    RESOLVED = "resolved"
    CLOSED = "closed"

    @property
    def label(self) -> str:
        return STATUS_LABELS[self]

    @property
    def is_closed(self) -> bool:
        return self in (Status.RESOLVED, Status.CLOSED)


STATUS_LABELS = {
    Status.NEW: "New",
    Status.OPEN: "Open",
    Status.IN_PROGRESS: "In Progress",
    Status.PENDING: "Pending",
    Status.WAITING_THIRD_PARTY: "Waiting on Third Party",
    Status.RESOLVED: "Resolved",
    Status.CLOSED: "Closed",
}


class Priority(enum.StrEnum):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    URGENT = "urgent"

    @property
    def label(self) -> str:
        return self.value.capitalize()


class Channel(enum.StrEnum):
    """Where a ticket came from: decides the first stream entry's kind."""

    AGENT = "agent"
    PORTAL = "portal"
    MAIL = "mail"
    API = "api"


class TicketType(enum.StrEnum):
    QUESTION = "question"
    INCIDENT = "incident"
    PROBLEM = "problem"
    REQUEST = "request"


class DataSubjectRequest(enum.StrEnum):
    """What a data-subject request ticket asks for; set once, by the request that opens it.

    A column of its own, not a tag or the ticket type: agents change those, and this mark
    decides what compliance officers may read (see ``app.web.compliance.requests``).
    """

    ACCESS = "access"  # GDPR Art. 15: a copy of the personal data


class EntryKind(enum.StrEnum):
    MAIL_IN = "mail_in"
    MAIL_OUT = "mail_out"
    PORTAL_MESSAGE = "portal_message"
    MESSAGE = "message"  # public text written inside Vaultdesk by staff or an API client
    NOTE = "note"
    STATUS_CHANGE = "status_change"
    PRIORITY_CHANGE = "priority_change"
    CATEGORY_CHANGE = "category_change"
    ASSIGNMENT = "assignment"
    TAGS = "tags"
    LINK = "link"
    INBOX = "inbox"
    SYSTEM = "system"


class Visibility(enum.StrEnum):
    INTERNAL = "internal"
    EXTERNAL = "external"


class RecipientKind(enum.StrEnum):
    TO = "to"
    CC = "cc"
    BCC = "bcc"


class LinkKind(enum.StrEnum):
    RELATED = "related"
    DUPLICATE = "duplicate"  # source is a duplicate of target
    PARENT = "parent"  # source is the parent of target


ticket_tags = Table(
    "ticket_tag",
    db.metadata,
    Column("ticket_id", ForeignKey("ticket.id", ondelete="CASCADE"), primary_key=True),
    Column("tag_id", ForeignKey("tag.id", ondelete="CASCADE"), primary_key=True),
    Index("ix_ticket_tag_tag_id", "tag_id"),
)

# A ticket's leads are contacts of its account (the people at the customer driving the
# matter), not sales prospects from every company: see app/tickets/leads.py.
ticket_leads = Table(
    "ticket_lead_contact",
    db.metadata,
    Column("ticket_id", ForeignKey("ticket.id", ondelete="CASCADE"), primary_key=True),
    Column("contact_id", ForeignKey("contact.id", ondelete="CASCADE"), primary_key=True),
    Index("ix_ticket_lead_contact_contact_id", "contact_id"),
)

ticket_subscribers = Table(
    "ticket_subscriber",
    db.metadata,
    Column("ticket_id", ForeignKey("ticket.id", ondelete="CASCADE"), primary_key=True),
    Column("user_id", ForeignKey("user.id", ondelete="CASCADE"), primary_key=True),
)


class TicketNumber(db.Model):
    """A portable sequence: inserting a row hands out a number no other process gets.

    SQLite's AUTOINCREMENT never reuses a value and PostgreSQL's identity is safe under
    concurrency, so uniqueness does not depend on retries or locks held by the caller.
    """

    __tablename__ = "ticket_number"
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Category(db.Model):
    __tablename__ = "category"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class Tag(db.Model):
    __tablename__ = "tag"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(60), unique=True)


class Ticket(db.Model):
    __tablename__ = "ticket"
    __table_args__ = (
        enum_check("status", Status, "status_known"),
        enum_check("priority", Priority, "priority_known"),
        enum_check("channel", Channel, "channel_known"),
        enum_check("type", TicketType, "type_known"),
        enum_check("data_subject_request", DataSubjectRequest, "data_subject_request_known"),
        # Lists filter on one or two of these columns and sort by updated_at: each index
        # ends in it, so the newest page comes off the index in order. A lone index on a
        # column with a handful of values (priority, a flag) looked to SQLite's planner,
        # without statistics, as selective as any other and made it read and sort a
        # quarter of the desk (see migration 0007).
        Index("ix_ticket_status_updated", "status", "updated_at"),
        Index("ix_ticket_assignee_status_updated", "assignee_id", "status", "updated_at"),
        Index("ix_ticket_priority_updated", "priority", "updated_at"),
        Index("ix_ticket_dispatch_updated", "waiting_for_dispatch", "updated_at"),
        Index("ix_ticket_inbox", "in_inbox", "last_customer_activity_at"),
        # The Pending sweeps (app.tickets.pending): status equal, then a range on the timer,
        # so a sweep reads only the waiting tickets that are due, in order.
        Index("ix_ticket_pending_due", "status", "pending_until"),
        Index("ix_ticket_pending_wait", "status", "pending_since"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(32), unique=True)
    subject: Mapped[str] = mapped_column(String(300))
    status: Mapped[str] = mapped_column(String(24), default=Status.NEW.value)
    priority: Mapped[str] = mapped_column(String(10), default=Priority.NORMAL.value)
    type: Mapped[str] = mapped_column(String(16), default=TicketType.QUESTION.value)
    channel: Mapped[str] = mapped_column(String(10))
    data_subject_request: Mapped[str | None] = mapped_column(String(16), index=True)
    category_id: Mapped[int | None] = mapped_column(
        ForeignKey("category.id", ondelete="SET NULL"), index=True
    )
    account_id: Mapped[int | None] = mapped_column(
        ForeignKey("account.id", ondelete="SET NULL"), index=True
    )
    contact_id: Mapped[int | None] = mapped_column(
        ForeignKey("contact.id", ondelete="SET NULL"), index=True
    )
    # For tickets from people not (yet) known as a contact of an account.
    submitter_name: Mapped[str | None] = mapped_column(String(200))
    submitter_email: Mapped[str | None] = mapped_column(String(254), index=True)
    submitter_company: Mapped[str | None] = mapped_column(String(200))
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("user.id", ondelete="SET NULL"))
    team_id: Mapped[int | None] = mapped_column(
        ForeignKey("team.id", ondelete="SET NULL"), index=True
    )
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id", ondelete="SET NULL"))
    waiting_for_dispatch: Mapped[bool] = mapped_column(Boolean, default=True)
    in_inbox: Mapped[bool] = mapped_column(Boolean, default=False)
    last_customer_activity_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    pending_until: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    # When the agent last set (or renewed) Pending: the auto-close clock of a Pending ticket
    # without a follow-up date. NULL whenever the ticket is not Pending, so the sweeps read
    # an index range of exactly the waiting tickets (``app.tickets.pending``).
    pending_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    first_response_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolution_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    first_responded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # SLA clocks (``app.sla.targets``): the policy that set the due times (a plain id, no
    # foreign key: adding one would rebuild this table on SQLite), when each target turns
    # "near breach", and the resolution clock's pause: since when it is stopped and how many
    # business minutes it stood still before. No policy ever applied: all stay empty.
    sla_policy_id: Mapped[int | None] = mapped_column(Integer)
    first_response_warn_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolution_warn_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sla_paused_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sla_paused_minutes: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    # Bumped on every change: htmx polling uses it as an ETag, edits use it against lost updates.
    version: Mapped[int] = mapped_column(Integer, default=1)

    category: Mapped[Category | None] = relationship()
    account: Mapped[Account | None] = relationship()
    contact: Mapped[Contact | None] = relationship()
    assignee: Mapped[User | None] = relationship(foreign_keys=[assignee_id])
    team: Mapped[Team | None] = relationship()
    created_by: Mapped[User | None] = relationship(foreign_keys=[created_by_id])
    tags: Mapped[list[Tag]] = relationship(secondary=ticket_tags, order_by="Tag.name")
    leads: Mapped[list[Contact]] = relationship(secondary=ticket_leads, order_by="Contact.name")
    subscribers: Mapped[list[User]] = relationship(secondary=ticket_subscribers)
    # Time order; the id breaks ties (and keeps merged-in entries where they happened).
    entries: Mapped[list[StreamEntry]] = relationship(
        back_populates="ticket",
        order_by="(StreamEntry.created_at, StreamEntry.id)",
        cascade="all, delete-orphan",
    )
    tasks: Mapped[list[Task]] = relationship(
        back_populates="ticket", order_by="Task.id", cascade="all, delete-orphan"
    )
    recipients: Mapped[list[TicketRecipient]] = relationship(
        back_populates="ticket", order_by="TicketRecipient.id", cascade="all, delete-orphan"
    )

    @property
    def status_enum(self) -> Status:
        return Status(self.status)

    @property
    def priority_enum(self) -> Priority:
        return Priority(self.priority)

    @property
    def customer_label(self) -> str:
        if self.contact is not None:
            return self.contact.name
        return self.submitter_name or self.submitter_email or "—"

    def __repr__(self) -> str:
        return f"<Ticket {self.number}>"


class StreamEntry(db.Model):
    """One event in a ticket's life, in order: mail, reply, message, note or change."""

    __tablename__ = "stream_entry"
    __table_args__ = (
        enum_check("kind", EntryKind, "kind_known"),
        enum_check("visibility", Visibility, "visibility_known"),
        Index("ix_stream_entry_ticket_created", "ticket_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("ticket.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(20))
    visibility: Mapped[str] = mapped_column(String(10))
    author_id: Mapped[int | None] = mapped_column(ForeignKey("user.id", ondelete="SET NULL"))
    # Who wrote it as shown, also for mail from people without an account.
    author_name: Mapped[str | None] = mapped_column(String(200))
    author_email: Mapped[str | None] = mapped_column(String(254))
    body_text: Mapped[str] = mapped_column(Text, default="")
    body_html: Mapped[str | None] = mapped_column(Text)  # sanitised before it is stored
    data: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # e.g. {"from": .., "to": ..}
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    ticket: Mapped[Ticket] = relationship(back_populates="entries")
    author: Mapped[User | None] = relationship()
    attachments: Mapped[list[VaultFile]] = relationship(
        back_populates="entry", order_by="VaultFile.id"
    )

    @property
    def is_internal(self) -> bool:
        return self.visibility == Visibility.INTERNAL


class TicketLink(db.Model):
    """A link between two tickets; one row, read from both ends."""

    __tablename__ = "ticket_link"
    __table_args__ = (
        UniqueConstraint("source_id", "target_id", name="uq_ticket_link_pair"),
        CheckConstraint("source_id <> target_id", name="not_self"),
        enum_check("kind", LinkKind, "kind_known"),
        Index("ix_ticket_link_target_id", "target_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("ticket.id", ondelete="CASCADE"))
    target_id: Mapped[int] = mapped_column(ForeignKey("ticket.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(12), default=LinkKind.RELATED.value)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    source: Mapped[Ticket] = relationship(foreign_keys=[source_id])
    target: Mapped[Ticket] = relationship(foreign_keys=[target_id])


class Task(db.Model):
    __tablename__ = "task"
    __table_args__ = (Index("ix_task_assignee_done", "assignee_id", "done_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("ticket.id", ondelete="CASCADE"), index=True)
    title: Mapped[str] = mapped_column(String(300))
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("user.id", ondelete="SET NULL"))
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Set once the assignee was told the task is due (``notifications.tasks_due``), so
    # the periodic sweep tells them once however often it runs.
    due_notified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    ticket: Mapped[Ticket] = relationship(back_populates="tasks")
    assignee: Mapped[User | None] = relationship(foreign_keys=[assignee_id])


class TicketRecipient(db.Model):
    """An external address that receives the ticket's public replies."""

    __tablename__ = "ticket_recipient"
    __table_args__ = (
        UniqueConstraint("ticket_id", "address", name="uq_ticket_recipient_address"),
        enum_check("kind", RecipientKind, "kind_known"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("ticket.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(3), default=RecipientKind.TO.value)
    address: Mapped[str] = mapped_column(String(254))
    name: Mapped[str | None] = mapped_column(String(200))

    ticket: Mapped[Ticket] = relationship(back_populates="recipients")


class TicketRating(db.Model):
    """A customer's rating of the answer (1-5, optional comment), kept for reports."""

    __tablename__ = "ticket_rating"
    __table_args__ = (CheckConstraint("score BETWEEN 1 AND 5", name="score_range"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("ticket.id", ondelete="CASCADE"), unique=True)
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contact.id", ondelete="SET NULL"))
    score: Mapped[int] = mapped_column(Integer)
    comment: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    ticket: Mapped[Ticket] = relationship()


class TicketRead(db.Model):
    """When a user last read a ticket; unread means customer activity came after it."""

    __tablename__ = "ticket_read"

    ticket_id: Mapped[int] = mapped_column(
        ForeignKey("ticket.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(
        ForeignKey("user.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    read_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
