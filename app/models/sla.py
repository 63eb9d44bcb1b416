"""Work calendars: weekly hours in a zone, public holidays, closure days, assignments, absences.

Storage decisions (the arithmetic lives in ``app.sla.business_time``, loading in
``app.sla.calendars``):

- Weekly hours are a child table of shifts (weekday, start, end) rather than a JSON column, so
  they migrate and validate like every other column. ``end <= start`` is an overnight shift.
- A calendar is shared: ``calendar_assignment`` gives one calendar to a team or to a user (each
  team and each user at most one), so people.py needs no new column and one "Berlin office"
  calendar serves many teams. A user without one uses their team's, then the company default.
- One calendar may be the company default (``is_default``); without any, the built-in
  Mon–Fri 09:00–17:00 Europe/Berlin with German holidays applies.
- Closure days with no calendar are company-wide; with one, they close that calendar only.
- Absences belong to a user, are stored as UTC instants ``[starts_at, ends_at)`` and remember
  who entered them.
"""

from __future__ import annotations

import enum
from datetime import date, datetime, time

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Time,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.models.people import Account, Team, User
from app.models.tickets import Category, Priority
from app.models.types import UTCDateTime, enum_check, utcnow


class WorkCalendar(db.Model):
    __tablename__ = "work_calendar"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    zone: Mapped[str] = mapped_column(String(64), default="Europe/Berlin")
    # ISO 3166 country and region codes of the ``holidays`` library; no country: no holidays.
    country: Mapped[str | None] = mapped_column(String(8))
    subdivision: Mapped[str | None] = mapped_column(String(16))
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    shifts: Mapped[list[WorkShift]] = relationship(
        back_populates="calendar",
        cascade="all, delete-orphan",
        order_by="(WorkShift.weekday, WorkShift.starts)",
        lazy="selectin",
    )
    closures: Mapped[list[ClosureDay]] = relationship(
        back_populates="calendar", cascade="all, delete-orphan", order_by="ClosureDay.day"
    )
    assignments: Mapped[list[CalendarAssignment]] = relationship(
        back_populates="calendar", cascade="all, delete-orphan"
    )


class WorkShift(db.Model):
    """Working hours on one weekday (0 = Monday); ``ends <= starts`` runs past midnight."""

    __tablename__ = "work_shift"
    __table_args__ = (CheckConstraint("weekday BETWEEN 0 AND 6", name="weekday_range"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    calendar_id: Mapped[int] = mapped_column(
        ForeignKey("work_calendar.id", ondelete="CASCADE"), index=True
    )
    weekday: Mapped[int] = mapped_column(SmallInteger)
    starts: Mapped[time] = mapped_column(Time)
    ends: Mapped[time] = mapped_column(Time)

    calendar: Mapped[WorkCalendar] = relationship(back_populates="shifts")


class ClosureDay(db.Model):
    """A day the company (``calendar_id`` empty) or one calendar is closed."""

    __tablename__ = "closure_day"
    __table_args__ = (UniqueConstraint("calendar_id", "day", name="uq_closure_day"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    calendar_id: Mapped[int | None] = mapped_column(
        ForeignKey("work_calendar.id", ondelete="CASCADE"), index=True
    )
    day: Mapped[date] = mapped_column(Date, index=True)
    note: Mapped[str | None] = mapped_column(String(200))

    calendar: Mapped[WorkCalendar | None] = relationship(back_populates="closures")


class CalendarAssignment(db.Model):
    """Gives a calendar to exactly one team or one user."""

    __tablename__ = "calendar_assignment"
    __table_args__ = (
        CheckConstraint("(team_id IS NULL) <> (user_id IS NULL)", name="team_or_user"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    calendar_id: Mapped[int] = mapped_column(
        ForeignKey("work_calendar.id", ondelete="CASCADE"), index=True
    )
    team_id: Mapped[int | None] = mapped_column(
        ForeignKey("team.id", ondelete="CASCADE"), unique=True
    )
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("user.id", ondelete="CASCADE"), unique=True
    )

    calendar: Mapped[WorkCalendar] = relationship(back_populates="assignments")
    team: Mapped[Team | None] = relationship()
    user: Mapped[User | None] = relationship()


class AbsenceKind(enum.StrEnum):
    LEAVE = "leave"
    SICKNESS = "sickness"
    OTHER = "other"


class Absence(db.Model):
    """A person away (leave, sickness, other) from ``starts_at`` up to ``ends_at`` (UTC)."""

    __tablename__ = "absence"
    __table_args__ = (
        enum_check("kind", AbsenceKind, "absence_kind_known"),
        CheckConstraint("ends_at > starts_at", name="absence_ends_after_start"),
        Index("ix_absence_user_ends", "user_id", "ends_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user.id", ondelete="CASCADE"))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    kind: Mapped[str] = mapped_column(String(16), default=AbsenceKind.LEAVE.value)
    note: Mapped[str | None] = mapped_column(String(200))
    entered_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    user: Mapped[User] = relationship(foreign_keys=[user_id])
    entered_by: Mapped[User | None] = relationship(foreign_keys=[entered_by_id])


# --- SLA policies (app.sla.policies, app.sla.targets) ------------------------------------------


class SlaPolicy(db.Model):
    """Targets in business minutes for tickets of one priority, optionally of one account
    and/or one category; the most specific active match wins (``app.sla.policies``).

    ``pause_when_waiting``: the resolution clock stops while the ticket is Pending or
    Waiting on Third Party. ``notify_at_once``: escalations of tickets under this policy are
    told at once, not at the start of the supervisor's next working day. The near-breach
    warning comes at ``warn_percent`` of a target, or ``warn_minutes`` before it when set.
    """

    __tablename__ = "sla_policy"
    __table_args__ = (
        enum_check("priority", Priority, "priority_known"),
        CheckConstraint(
            "first_response_minutes >= 0 AND resolution_minutes >= 0", name="sla_targets_positive"
        ),
        CheckConstraint("warn_percent BETWEEN 1 AND 99", name="sla_warn_percent_range"),
        CheckConstraint(
            "warn_minutes IS NULL OR warn_minutes >= 0", name="sla_warn_minutes_positive"
        ),
        Index("ix_sla_policy_priority", "priority", "active"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    priority: Mapped[str] = mapped_column(String(10))
    account_id: Mapped[int | None] = mapped_column(
        ForeignKey("account.id", ondelete="CASCADE"), index=True
    )
    category_id: Mapped[int | None] = mapped_column(
        ForeignKey("category.id", ondelete="CASCADE"), index=True
    )
    first_response_minutes: Mapped[int] = mapped_column(Integer)
    resolution_minutes: Mapped[int] = mapped_column(Integer)
    pause_when_waiting: Mapped[bool] = mapped_column(Boolean, default=True)
    notify_at_once: Mapped[bool] = mapped_column(Boolean, default=False)
    warn_percent: Mapped[int] = mapped_column(SmallInteger, default=80)
    warn_minutes: Mapped[int | None] = mapped_column(Integer)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    account: Mapped[Account | None] = relationship()
    category: Mapped[Category | None] = relationship()
