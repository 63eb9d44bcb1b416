"""Composer drafts: what an agent has typed on a ticket and not sent yet, kept on the server.

One row per ticket, agent and kind (a public reply and an internal note are drafted apart),
so a reload or another device finds the text again, and no colleague can read or overwrite
it: every query and write is keyed on the signed-in agent, never on an id from the form.
Rows go with their ticket or their author (``ON DELETE CASCADE``), so erasing a ticket or a
person erases their drafts too.
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.models.mail import SenderIdentity
from app.models.types import UTCDateTime, enum_check, utcnow


class DraftKind(enum.StrEnum):
    REPLY = "reply"  # a public reply, mailed to the customer
    NOTE = "note"  # an internal note, only staff see it

    @classmethod
    def of(cls, internal: bool) -> DraftKind:
        """The kind of draft an answer is sent from (the composer's visibility)."""
        return cls.NOTE if internal else cls.REPLY


class TicketDraft(db.Model):
    __tablename__ = "ticket_draft"
    __table_args__ = (enum_check("kind", DraftKind, "kind_known"),)

    ticket_id: Mapped[int] = mapped_column(
        ForeignKey("ticket.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(
        ForeignKey("user.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    kind: Mapped[str] = mapped_column(String(10), primary_key=True)
    body: Mapped[str] = mapped_column(Text, default="")
    # The sender identity chosen for a reply; a deleted identity leaves the draft without one.
    identity_id: Mapped[int | None] = mapped_column(
        ForeignKey("sender_identity.id", ondelete="SET NULL")
    )
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    identity: Mapped[SenderIdentity | None] = relationship()

    @property
    def kind_enum(self) -> DraftKind:
        return DraftKind(self.kind)
