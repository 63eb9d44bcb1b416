"""Agent notifications: what happened that concerns one member of staff, and their wishes.

A ``Notification`` is one event for one person (the bell counts the unread ones); a
``NotificationPreference`` row exists only where an agent changed the default for a kind
(``app.notifications.preferences.DEFAULTS``), so new kinds get sensible defaults without a
data migration. The text is not stored: ``kind`` and ``params`` are rendered in the
reader's language when shown (and in the agent's language when mailed).
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.models.people import User
from app.models.tickets import Ticket
from app.models.types import UTCDateTime, enum_check, utcnow


class NotificationKind(enum.StrEnum):
    NEW_TICKET = "new_ticket"  # a new ticket in my team, or with no team and no manager
    ASSIGNED = "assigned"  # someone else made me the ticket's manager
    CUSTOMER_WROTE = "customer_wrote"  # the customer wrote on a ticket I manage
    MENTIONED = "mentioned"  # someone wrote @me in an internal note
    TASK_DUE = "task_due"  # a task assigned to me reached its due time
    REPLY_FAILED = "reply_failed"  # a reply I wrote could not be delivered
    FOLLOW_UP_DUE = "follow_up_due"  # a Pending ticket I manage reached its follow-up date
    SLA_ESCALATION = "sla_escalation"  # a ticket breached (or nears) its target: app.sla.escalation


class Notification(db.Model):
    __tablename__ = "notification"
    __table_args__ = (
        enum_check("kind", NotificationKind, "kind_known"),
        # The bell: "how many unread for me" and "the newest for me" are index lookups.
        Index("ix_notification_user_read", "user_id", "read_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(20))
    ticket_id: Mapped[int | None] = mapped_column(
        ForeignKey("ticket.id", ondelete="CASCADE"), index=True
    )
    # Who caused it (a name to show; None for the system) and the kind's own values.
    actor_name: Mapped[str | None] = mapped_column(String(200))
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    user: Mapped[User] = relationship()
    ticket: Mapped[Ticket | None] = relationship()


class NotificationPreference(db.Model):
    """One agent's choice for one kind: in the app, by mail, both or neither."""

    __tablename__ = "notification_preference"
    __table_args__ = (enum_check("kind", NotificationKind, "kind_known"),)

    user_id: Mapped[int] = mapped_column(
        ForeignKey("user.id", ondelete="CASCADE"), primary_key=True
    )
    kind: Mapped[str] = mapped_column(String(20), primary_key=True)
    in_app: Mapped[bool] = mapped_column(Boolean)
    by_mail: Mapped[bool] = mapped_column(Boolean)
