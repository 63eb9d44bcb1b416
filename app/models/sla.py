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
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.models.people import Account, Team, User
from app.models.tickets import Category, Priority, Ticket
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


# --- assignment rules (app.sla.assignment_rules) ----------------------------------------------


class AssignmentMode(enum.StrEnum):
    OFF = "off"
    ROUND_ROBIN = "round_robin"
    LEAST_BUSY = "least_busy"


class AssignmentRule(db.Model):
    """How a team's new tickets without a manager find one (one rule per team at most).

    ``takes_unteamed``: the rule also places new tickets that arrive in no team at all (mail
    and portal tickets name no team); at most one rule has it. ``turn`` counts the rule's
    placements: a member's ``AssignmentTurn.last_turn`` is the count at their last ticket,
    so round robin order survives restarts and is the same for every worker.
    """

    __tablename__ = "assignment_rule"
    __table_args__ = (enum_check("mode", AssignmentMode, "assignment_mode_known"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("team.id", ondelete="CASCADE"), unique=True)
    mode: Mapped[str] = mapped_column(String(16), default=AssignmentMode.OFF.value)
    match_skills: Mapped[bool] = mapped_column(Boolean, default=False)
    prefer_account_manager: Mapped[bool] = mapped_column(Boolean, default=True)
    takes_unteamed: Mapped[bool] = mapped_column(Boolean, default=False)
    turn: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    team: Mapped[Team] = relationship()


class AssignmentTurn(db.Model):
    """When a member last got a ticket from their team's rule (round robin state)."""

    __tablename__ = "assignment_turn"

    team_id: Mapped[int] = mapped_column(
        ForeignKey("team.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(
        ForeignKey("user.id", ondelete="CASCADE"), primary_key=True
    )
    last_turn: Mapped[int] = mapped_column(Integer, default=0)
    last_assigned_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AgentSkill(db.Model):
    """An agent knows a tag or a category (exactly one of the two per row)."""

    __tablename__ = "agent_skill"
    __table_args__ = (
        CheckConstraint("(tag_id IS NULL) <> (category_id IS NULL)", name="tag_or_category"),
        UniqueConstraint("user_id", "tag_id", name="uq_agent_skill_tag"),
        UniqueConstraint("user_id", "category_id", name="uq_agent_skill_category"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user.id", ondelete="CASCADE"), index=True)
    tag_id: Mapped[int | None] = mapped_column(ForeignKey("tag.id", ondelete="CASCADE"))
    category_id: Mapped[int | None] = mapped_column(ForeignKey("category.id", ondelete="CASCADE"))


class UnplacedReason(enum.StrEnum):
    NO_MEMBERS = "no_members"  # the team has no active agents
    NOBODY_WORKING = "nobody_working"  # nobody of the team is working now
    NO_SKILLS = "no_skills"  # somebody is working, but nobody with the ticket's tags/category


class UnplacedTicket(db.Model):
    """A new ticket a rule could not place, and why; the dispatcher's "Unplaced" filter.

    Stale once the ticket has a manager or is closed: the filter joins on both, so nobody
    needs to delete the row when someone dispatches the ticket by hand.
    """

    __tablename__ = "unplaced_ticket"
    __table_args__ = (enum_check("reason", UnplacedReason, "unplaced_reason_known"),)

    ticket_id: Mapped[int] = mapped_column(
        ForeignKey("ticket.id", ondelete="CASCADE"), primary_key=True
    )
    team_id: Mapped[int | None] = mapped_column(ForeignKey("team.id", ondelete="SET NULL"))
    reason: Mapped[str] = mapped_column(String(20))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


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
# --- escalation (app.sla.escalation) -----------------------------------------------------------

#: The SQL of "not solved": the same text in the partial indexes below and in the sweep's
#: queries, because SQLite uses a partial index only when the query repeats its condition.
TICKET_OPEN_SQL = "status NOT IN ('resolved', 'closed')"
FIRST_RESPONSE_OPEN_SQL = f"first_responded_at IS NULL AND {TICKET_OPEN_SQL}"

# The sweep reads only what is due: an index range on each due column, over the tickets
# whose clock still runs (partial indexes work on SQLite and PostgreSQL alike). Declared
# here, beside the escalation that needs them, rather than on the ticket model.
Index(
    "ix_ticket_sla_first_response_open",
    Ticket.first_response_due_at,
    sqlite_where=text(FIRST_RESPONSE_OPEN_SQL),
    postgresql_where=text(FIRST_RESPONSE_OPEN_SQL),
)
Index(
    "ix_ticket_sla_resolution_open",
    Ticket.resolution_due_at,
    sqlite_where=text(TICKET_OPEN_SQL),
    postgresql_where=text(TICKET_OPEN_SQL),
)


class EscalationTarget(enum.StrEnum):
    FIRST_RESPONSE = "first_response"
    RESOLUTION = "resolution"


class EscalationStatus(enum.StrEnum):
    PENDING = "pending"  # waiting for ``notify_at`` (the recipient's next working moment)
    SENT = "sent"  # told: in-app and/or mail, stream entry and audit row written
    SKIPPED = "skipped"  # a warning that could not reach the assignee before the due time
    UNROUTED = "unrouted"  # nobody to tell: recorded on the ticket and in the audit log


class Escalation(db.Model):
    """One notice about one ticket's target at one level; see ``app.sla.escalation``.

    Level 0 warns the assignee before the due time, level 1 tells the supervisor of a
    breach, level 2 the supervisor's supervisor (or the configured address). The unique
    constraint on (ticket, target, level) is what makes every level happen once, whatever
    number of sweeps run at once: each inserts with "on conflict do nothing".
    """

    __tablename__ = "sla_escalation"
    __table_args__ = (
        UniqueConstraint("ticket_id", "target", "level", name="uq_sla_escalation_level"),
        enum_check("target", EscalationTarget, "sla_escalation_target_known"),
        enum_check("status", EscalationStatus, "sla_escalation_status_known"),
        CheckConstraint("level BETWEEN 0 AND 2", name="sla_escalation_level_range"),
        # The notices that are due: status = 'pending' AND notify_at <= now.
        Index("ix_sla_escalation_status_notify", "status", "notify_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("ticket.id", ondelete="CASCADE"))
    target: Mapped[str] = mapped_column(String(16))
    level: Mapped[int] = mapped_column(Integer)
    # The target's due time when the escalation was found.
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    detected_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # When to tell: the recipient's next working moment, or at once (priority setting).
    notify_at: Mapped[datetime] = mapped_column(UTCDateTime)
    at_once: Mapped[bool] = mapped_column(Boolean, default=False)
    recipient_id: Mapped[int | None] = mapped_column(ForeignKey("user.id", ondelete="SET NULL"))
    recipient_address: Mapped[str | None] = mapped_column(String(254))
    status: Mapped[str] = mapped_column(String(10), default=EscalationStatus.PENDING.value)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Level 1 only: when the breach goes one level up if still unmet (cleared once it has).
    next_level_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)

    ticket: Mapped[Ticket] = relationship()
    recipient: Mapped[User | None] = relationship()
