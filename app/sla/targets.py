"""A ticket's SLA clocks: due times from its policy and calendar, pauses, time left.

``recompute_due(ticket, now)`` is called (one line each) by the functions that change what
the due times depend on: creation, priority, category, assignment, status, and a public
reply (which stops the first-response clock). It never commits and writes no audit row of
its own: the change that triggered it is audited with it in the same transaction, and the
due times are derived from audited facts (the policy edits are audited too).

Decisions:

- **Whose calendar counts**: the assignee's working hours and holidays (their own calendar,
  else their team's, else the company default) when the ticket has one, else the ticket
  team's calendar, else the company default. The assignee's *absences* do not stretch the
  customer's targets: a promise made to the customer does not grow because the agent is on
  leave; escalation and reassignment deal with absent agents. When the assignee changes,
  the targets are measured in the new calendar from the ticket's creation.
- **Both targets are counted from ``created_at``** in business minutes of that calendar;
  a priority, category or assignee change recomputes them the same way (a ticket raised to
  Urgent is due as if it had been Urgent from the start, as Zammad and FreeScout do).
- **First response** never pauses; a public reply (``first_responded_at``) stops it. The
  due time stays on the ticket as the record of whether it was met.
- **Resolution** pauses while the ticket is Pending or Waiting on Third Party when the
  policy says so, and always while it is Resolved or Closed (a reopened ticket is not
  overdue for the days it was solved). Paused business minutes are summed in
  ``sla_paused_minutes`` and shift the due time; while paused the ticket has *no*
  ``resolution_due_at`` (so neither the Overdue filter nor the escalation sweep sees it) and
  the ticket page says "paused". Resolved and Closed tickets keep their last due times.
- **Near breach** starts at ``warn_percent`` of a target (default 80%), or ``warn_minutes``
  business minutes before it when the policy sets that; stored as
  ``first_response_warn_at`` / ``resolution_warn_at`` so lists can filter with SQL.
- **No policy matches**: due times a policy set are cleared; due times no policy ever set
  (``sla_policy_id`` empty: an import, a hand edit) are left alone.
- A calendar without working time (``NoWorkingTime``) falls back to round-the-clock time.
- Time left is shown in wall-clock time ("2 h 10 min left", "overdue by 35 min"), with
  the due instant beside it: what the agent's own clock says.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from babel import dates
from flask import current_app
from flask_babel import force_locale
from flask_babel import gettext as _

from app.models.people import User
from app.models.sla import SlaPolicy
from app.models.tickets import Status, Ticket
from app.sla import policies
from app.sla.business_time import (
    ALWAYS,
    Calendar,
    NoWorkingTime,
    add_business_minutes,
    business_minutes_between,
    working_intervals,
)
from app.sla.calendars import calendar_for_team, calendar_for_user

WAITING = frozenset({Status.PENDING, Status.WAITING_THIRD_PARTY})
#: The day of a promise, written out in full ("Monday, 24 November", "Montag, 24. November").
DAY_PATTERNS = {"en": "EEEE, d MMMM", "de": "EEEE, d. MMMM"}


# --- computing ---------------------------------------------------------------------------------


def clock_calendar(ticket: Ticket) -> Calendar:
    """The calendar the ticket's targets are counted in (see "Whose calendar counts")."""
    if ticket.assignee is not None:
        return calendar_for_user(ticket.assignee).with_absences(())
    return calendar_for_team(ticket.team)


def _add(cal: Calendar, start: datetime, minutes: int) -> datetime:
    try:
        return add_business_minutes(cal, start, minutes)
    except NoWorkingTime:
        return add_business_minutes(ALWAYS, start, minutes)


def _between(cal: Calendar, start: datetime, end: datetime) -> int:
    try:
        return business_minutes_between(cal, start, end)
    except NoWorkingTime:  # pragma: no cover - between() returns 0 rather than raising
        return business_minutes_between(ALWAYS, start, end)


def warning_offset(policy: SlaPolicy, target: int) -> int:
    """Business minutes after the clock starts at which a target turns "near breach"."""
    if policy.warn_minutes is not None:
        return max(0, target - policy.warn_minutes)
    return target * (policy.warn_percent or policies.DEFAULT_WARN_PERCENT) // 100


def _is_stopped(policy: SlaPolicy, status: Status) -> bool:
    return status.is_closed or (policy.pause_when_waiting and status in WAITING)


def _set(ticket: Ticket, **values: object) -> None:
    """Assign only what differs, so an unchanged ticket is not written again."""
    for key, value in values.items():
        if getattr(ticket, key) != value:
            setattr(ticket, key, value)


def recompute_due(ticket: Ticket, now: datetime) -> None:
    """Set the ticket's due and warning times, and account for pauses, as of ``now``."""
    policy = policies.policy_for(ticket)
    if policy is None:
        if ticket.sla_policy_id is not None:
            _set(
                ticket,
                sla_policy_id=None,
                first_response_due_at=None,
                first_response_warn_at=None,
                resolution_due_at=None,
                resolution_warn_at=None,
                sla_paused_at=None,
            )
        return
    status = Status(ticket.status)
    cal = clock_calendar(ticket)
    paused_at, paused = ticket.sla_paused_at, ticket.sla_paused_minutes or 0
    stopped = _is_stopped(policy, status)
    if stopped and paused_at is None:
        paused_at = now
    elif not stopped and paused_at is not None:
        paused += max(0, _between(cal, paused_at, now))
        paused_at = None
    start = ticket.created_at
    first = policy.first_response_minutes
    resolution = policy.resolution_minutes
    waiting = stopped and not status.is_closed
    _set(
        ticket,
        sla_policy_id=policy.id,
        sla_paused_at=paused_at,
        sla_paused_minutes=paused,
        first_response_due_at=_add(cal, start, first),
        first_response_warn_at=_add(cal, start, warning_offset(policy, first)),
        resolution_due_at=None if waiting else _add(cal, start, resolution + paused),
        resolution_warn_at=None
        if waiting
        else _add(cal, start, warning_offset(policy, resolution) + paused),
    )


# --- showing -----------------------------------------------------------------------------------


class ClockState(enum.StrEnum):
    RUNNING = "running"
    NEAR = "near"  # near breach: past the warning threshold
    BREACHED = "breached"
    PAUSED = "paused"
    MET = "met"  # answered / solved in time
    MISSED = "missed"  # answered / solved, but late


@dataclass(frozen=True)
class Clock:
    """One target of one ticket as an agent sees it."""

    kind: str  # "first_response" or "resolution"
    due_at: datetime | None
    state: ClockState
    left: str  # "2 h 10 min left", "overdue by 35 min", "" when stopped

    @property
    def flagged(self) -> bool:
        return self.state in (ClockState.NEAR, ClockState.BREACHED)


def duration_words(minutes: int) -> str:
    """ "3 d 4 h", "2 h 10 min", "35 min" in the viewer's language."""
    minutes = max(0, minutes)
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    if days:
        return _("%(days)s d %(hours)s h", days=days, hours=hours)
    if hours:
        return _("%(hours)s h %(minutes)s min", hours=hours, minutes=mins)
    return _("%(minutes)s min", minutes=mins)


def time_left(due: datetime, now: datetime) -> str:
    """Wall-clock time until ``due``, or how long it is overdue."""
    seconds = (due - now).total_seconds()
    if seconds >= 0:
        return _("%(time)s left", time=duration_words(int(seconds // 60)))
    return _("overdue by %(time)s", time=duration_words(int(-seconds // 60) or 1))


def _running(due: datetime, warn: datetime | None, now: datetime) -> Clock:
    if due <= now:
        state = ClockState.BREACHED
    elif warn is not None and warn <= now:
        state = ClockState.NEAR
    else:
        state = ClockState.RUNNING
    return Clock("", due, state, time_left(due, now))


def first_response_clock(ticket: Ticket, now: datetime) -> Clock | None:
    due = ticket.first_response_due_at
    if due is None:
        return None
    if ticket.first_responded_at is not None:
        met = ticket.first_responded_at <= due
        return Clock("first_response", due, ClockState.MET if met else ClockState.MISSED, "")
    if Status(ticket.status).is_closed:
        return Clock("first_response", due, ClockState.PAUSED, "")
    clock = _running(due, ticket.first_response_warn_at, now)
    return Clock("first_response", due, clock.state, clock.left)


def resolution_clock(ticket: Ticket, now: datetime) -> Clock | None:
    status = Status(ticket.status)
    due = ticket.resolution_due_at
    if status.is_closed:
        if due is None:
            return None
        solved = ticket.resolved_at or ticket.closed_at
        met = solved is None or solved <= due
        return Clock("resolution", due, ClockState.MET if met else ClockState.MISSED, "")
    if due is None:
        if ticket.sla_paused_at is not None and ticket.sla_policy_id is not None:
            return Clock("resolution", None, ClockState.PAUSED, "")
        return None
    clock = _running(due, ticket.resolution_warn_at, now)
    return Clock("resolution", due, clock.state, clock.left)


def next_clock(ticket: Ticket, now: datetime) -> Clock | None:
    """The target the ticket runs against now (for the lists' Due column), if any.

    The first response while unanswered, else the resolution; a breached one before a
    running one.
    """
    clocks = [
        c
        for c in (first_response_clock(ticket, now), resolution_clock(ticket, now))
        if c is not None
        and c.due_at is not None
        and c.state in (ClockState.RUNNING, ClockState.NEAR, ClockState.BREACHED)
    ]
    if not clocks:
        return None
    return min(clocks, key=lambda c: c.due_at)  # type: ignore[arg-type,return-value]


# --- honest expectations (autoresponse, portal) ------------------------------------------------


@dataclass(frozen=True)
class Expectation:
    """When the customer will hear back, and from whom (None: "our team")."""

    before: datetime
    agent: User | None


def expected_answer(ticket: Ticket, now: datetime) -> Expectation | None:
    """The first-response due time, if the ticket still waits for its first answer.

    The agent is named only when they have working time (their calendar *with* absences)
    before that moment: an agent on leave until then is not who will answer.
    """
    due = ticket.first_response_due_at
    if due is None or ticket.first_responded_at is not None or Status(ticket.status).is_closed:
        return None
    if due <= now:
        return None  # already late: promising a moment in the past is not honest
    agent = ticket.assignee
    if agent is not None:
        try:
            working = next(iter(working_intervals(calendar_for_user(agent), now, until=due)), None)
        except NoWorkingTime:  # pragma: no cover - bounded by ``until``
            working = None
        if working is None:
            agent = None
    return Expectation(due, agent)


def _first_name(user: User) -> str:
    return (user.name or "").split(" ")[0] or user.name


def expectation_text(expectation: Expectation, language: str, zone: ZoneInfo) -> str:
    """ "You will hear from Anna on Monday, 24 November, before 11:00", in ``language``
    and in the reader's ``zone`` (through Babel)."""
    locale = language if language in ("en", "de") else "en"
    when = expectation.before.astimezone(UTC).astimezone(zone)
    day = dates.format_date(when.date(), DAY_PATTERNS[locale], locale=locale)
    clock = dates.format_time(when, "short", locale=locale)
    with force_locale(locale):
        if expectation.agent is not None:
            return _(
                "You will hear from %(name)s on %(day)s, before %(time)s.",
                name=_first_name(expectation.agent),
                day=day,
                time=clock,
            )
        return _("You will hear from our team on %(day)s, before %(time)s.", day=day, time=clock)


def customer_zone(user: User | None) -> ZoneInfo:
    """The reader's zone: their portal account's, else the company's (``TIMEZONE``)."""
    from app.i18n import zone

    return zone(user.timezone if user is not None else current_app.config.get("TIMEZONE"))
