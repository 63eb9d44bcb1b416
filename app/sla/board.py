"""The supervisor's board: per team and per agent, what needs attention today.

Every figure is a count of open tickets (not Resolved or Closed) from ONE grouped query
(``GROUP BY team_id, assignee_id``); team and agent totals add up those groups, never
tickets. Each figure's condition is one function here (``figure_condition``) that the
agent lists use for their ``due``/``pending_today`` filters too, so a number on the board
and the list behind its link cannot disagree.

Definitions (decided here, documented in the README "Supervisor's board"):

- **due** is a ticket's next outstanding target: its first-response due time while nobody
  has answered and that comes first, else its resolution due time (the columns SLA
  targets fill). A ticket with neither is never due, near or breached.
- **due today**: due within today in the *viewer's* time zone (midnight to midnight),
  already past or still ahead.
- **near breach**: due from now up to ``SLA_WARNING_MINUTES`` (default 60) ahead. Until SLA
  policies bring their own threshold, this setting is the one threshold.
- **breached**: due before now.
- **pending today**: status Pending with its follow-up (``pending_until``) today in the
  viewer's zone.
- **absent**: an agent not working now by their calendar, or with an absence touching
  today; the board counts absent agents who still manage open tickets.

Who sees it: supervisors (the agent area's guard lets agents in; the view refuses those
without the Supervisor role). An admin who is not also a supervisor does not: the lists
behind every number live in the agent area, and admins configure rather than run the
desk. The board shows every team, the viewer's own first.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import current_app
from sqlalchemy import ColumnElement, and_, case, func, or_, select

from app.extensions import db
from app.models.people import Role, Team, User, UserRole
from app.models.sla import Absence
from app.models.tickets import Status, Ticket
from app.models.types import utcnow
from app.sla.business_time import is_working
from app.sla.calendars import calendar_for_user

CLOSED = (Status.RESOLVED.value, Status.CLOSED.value)
FIGURES = ("open", "due_today", "near", "breached", "pending_today")
DUE_FILTERS = ("today", "near", "breached")
DEFAULT_WARNING_MINUTES = 60


def warning_minutes() -> int:
    """The near-breach threshold: setting ``SLA_WARNING_MINUTES`` (default 60)."""
    try:
        return max(0, int(current_app.config.get("SLA_WARNING_MINUTES", DEFAULT_WARNING_MINUTES)))
    except (TypeError, ValueError):
        return DEFAULT_WARNING_MINUTES


def viewer_zone(viewer: User) -> ZoneInfo:
    try:
        return ZoneInfo(viewer.timezone or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def today_window(viewer: User, now: datetime) -> tuple[datetime, datetime]:
    """Today in the viewer's zone, as a UTC half-open interval (23 or 25 hours on DST days)."""
    zone = viewer_zone(viewer)
    day = now.astimezone(zone).date()
    start = datetime.combine(day, time(0), zone)
    end = datetime.combine(day + timedelta(days=1), time(0), zone)
    return start.astimezone(now.tzinfo), end.astimezone(now.tzinfo)


def next_due() -> ColumnElement[datetime]:
    """The ticket's next outstanding target (see the module docstring)."""
    first_pending = and_(
        Ticket.first_responded_at.is_(None),
        Ticket.first_response_due_at.is_not(None),
        or_(
            Ticket.resolution_due_at.is_(None),
            Ticket.first_response_due_at < Ticket.resolution_due_at,
        ),
    )
    return case((first_pending, Ticket.first_response_due_at), else_=Ticket.resolution_due_at)


def figure_condition(figure: str, viewer: User, now: datetime) -> ColumnElement[bool]:
    """The condition behind one figure of the board (and the list filter of the same name)."""
    is_open = Ticket.status.not_in(CLOSED)
    if figure == "open":
        return is_open
    start, end = today_window(viewer, now)
    due = next_due()
    if figure in ("due_today", "today"):
        return and_(is_open, due >= start, due < end)
    if figure == "near":
        return and_(is_open, due >= now, due < now + timedelta(minutes=warning_minutes()))
    if figure == "breached":
        return and_(is_open, due < now)
    if figure == "pending_today":
        return and_(
            Ticket.status == Status.PENDING.value,
            Ticket.pending_until >= start,
            Ticket.pending_until < end,
        )
    raise ValueError(f"unknown figure {figure!r}")


@dataclass
class Figures:
    open: int = 0
    due_today: int = 0
    near: int = 0
    breached: int = 0
    pending_today: int = 0

    def add(self, other: Figures) -> None:
        for name in FIGURES:
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass
class AgentLine:
    user: User
    figures: Figures
    working: bool
    absent_today: bool

    @property
    def away(self) -> bool:
        return not self.working or self.absent_today


@dataclass
class TeamBlock:
    team: Team | None  # None: agents and tickets of no team
    figures: Figures = field(default_factory=Figures)  # every open ticket of the team
    unassigned: Figures = field(default_factory=Figures)  # of those, nobody manages
    agents: list[AgentLine] = field(default_factory=list)

    @property
    def away_with_open(self) -> list[AgentLine]:
        return [a for a in self.agents if a.away and a.figures.open]


@dataclass
class Board:
    teams: list[TeamBlock]
    now: datetime
    warning_minutes: int


def _grouped_figures(viewer: User, now: datetime) -> dict[tuple[int | None, int | None], Figures]:
    """Counts per (team, assignee) from one GROUP BY over open tickets."""

    def count(figure: str) -> ColumnElement[int]:
        return func.sum(case((figure_condition(figure, viewer, now), 1), else_=0))

    stmt = (
        select(
            Ticket.team_id,
            Ticket.assignee_id,
            func.count(),
            count("due_today"),
            count("near"),
            count("breached"),
            count("pending_today"),
        )
        .where(Ticket.status.not_in(CLOSED))
        .group_by(Ticket.team_id, Ticket.assignee_id)
    )
    return {
        (team_id, assignee_id): Figures(n, today or 0, near or 0, breached or 0, pending or 0)
        for team_id, assignee_id, n, today, near, breached, pending in db.session.execute(stmt)
    }


def _board_people(assignee_ids: set[int]) -> list[User]:
    """Active agents and supervisors, and anyone else who still manages open tickets."""
    staff = select(UserRole.user_id).where(
        UserRole.role.in_((Role.AGENT.value, Role.SUPERVISOR.value))
    )
    condition = and_(User.active.is_(True), User.id.in_(staff))
    if assignee_ids:
        condition = or_(condition, User.id.in_(assignee_ids))
    return list(db.session.scalars(select(User).where(condition).order_by(func.lower(User.name))))


def _absent_today(user_ids: list[int], start: datetime, end: datetime) -> set[int]:
    return set(
        db.session.scalars(
            select(Absence.user_id).where(
                Absence.user_id.in_(user_ids), Absence.starts_at < end, Absence.ends_at > start
            )
        )
    )


def board(viewer: User, now: datetime | None = None) -> Board:
    """The board as ``viewer`` sees it (their zone decides "today")."""
    now = now or utcnow()
    groups = _grouped_figures(viewer, now)
    people = _board_people({a for _t, a in groups if a is not None})
    start, end = today_window(viewer, now)
    absent = _absent_today([p.id for p in people], start, end)

    per_agent: dict[int, Figures] = {}
    blocks: dict[int | None, TeamBlock] = {}
    for (team_id, assignee_id), figures in groups.items():
        block = blocks.setdefault(team_id, TeamBlock(None))
        block.figures.add(figures)
        if assignee_id is None:
            block.unassigned.add(figures)
        else:
            per_agent.setdefault(assignee_id, Figures()).add(figures)
    for person in people:
        block = blocks.setdefault(person.team_id, TeamBlock(None))
        block.agents.append(
            AgentLine(
                user=person,
                figures=per_agent.get(person.id, Figures()),
                working=is_working(calendar_for_user(person), now),
                absent_today=person.id in absent,
            )
        )
    teams = {t.id: t for t in db.session.scalars(select(Team).where(Team.id.in_(list(blocks))))}
    for team_id, block in blocks.items():
        block.team = teams.get(team_id) if team_id is not None else None
    ordered = sorted(
        blocks.values(),
        key=lambda b: (
            b.team is None,
            b.team is None or b.team.id != viewer.team_id,
            (b.team.name.lower() if b.team else ""),
        ),
    )
    return Board(ordered, now, warning_minutes())


def board_etag(viewer: User, now: datetime | None = None) -> str:
    """Changes when a ticket or an absence changes, and every minute (near and breached
    move with the clock); the viewer's zone is part of it ("today" is theirs)."""
    now = now or utcnow()
    latest, last_id, absences = db.session.execute(
        select(
            select(func.max(Ticket.updated_at)).scalar_subquery(),
            select(func.max(Ticket.id)).scalar_subquery(),
            select(func.max(Absence.id)).scalar_subquery(),
        )
    ).one()
    minute = now.replace(second=0, microsecond=0).isoformat()
    raw = f"{viewer.id}|{viewer.timezone}|{minute}|{latest}|{last_id}|{absences}"
    return hashlib.sha256(raw.encode()).hexdigest()[:32]
