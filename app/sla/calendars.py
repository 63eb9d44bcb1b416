"""Loading ``Calendar`` values from the database, and the admin's edits of work calendars.

Which calendar applies (decided here, documented in the README):

- a user: the calendar assigned to the user, else the one assigned to their team, else the
  company default; their own absences are added (a team calendar carries none);
- a team: the calendar assigned to the team, else the company default;
- the company default: the calendar marked ``is_default``, else the built-in Mon–Fri
  09:00–17:00 in Europe/Berlin with German (federal) public holidays.

Closure days: company-wide ones (no calendar) close every calendar, per-calendar ones only that
calendar. Absences are loaded from ``ABSENCE_LOOKBACK`` before now on, so a due time computed
for a ticket opened weeks ago still sees the leave in between, without reading years of
history for every sweep.

Every edit writes its audit row in the session; the view commits.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from flask_babel import gettext as _
from sqlalchemy import func, select

from app import audit
from app.actor import Actor
from app.errors import Conflict, InvalidInput
from app.extensions import db
from app.models.people import Team, User
from app.models.sla import Absence, CalendarAssignment, ClosureDay, WorkCalendar, WorkShift
from app.models.types import utcnow
from app.sla.business_time import Calendar, holiday_checker, supported_countries

ABSENCE_LOOKBACK = timedelta(days=400)
NAME_LIMIT = 120

DEFAULT_ZONE = "Europe/Berlin"
DEFAULT_COUNTRY = "DE"
DEFAULT_WEEKLY: dict[int, tuple[tuple[time, time], ...]] = {
    day: ((time(9), time(17)),) for day in range(5)
}

Shift = tuple[int, time, time]


# --- loading ---------------------------------------------------------------------------------


def _company_closures() -> frozenset[date]:
    return frozenset(
        db.session.scalars(select(ClosureDay.day).where(ClosureDay.calendar_id.is_(None)))
    )


def to_calendar(
    row: WorkCalendar | None, absences: Sequence[tuple[datetime, datetime]] = ()
) -> Calendar:
    """The pure ``Calendar`` for a stored calendar (``None``: the built-in company default)."""
    closures = _company_closures()
    if row is None:
        return Calendar(
            zone=ZoneInfo(DEFAULT_ZONE),
            weekly=DEFAULT_WEEKLY,
            holidays=holiday_checker(DEFAULT_COUNTRY),
            closures=closures,
            absences=tuple(absences),
            name="default",
        )
    weekly: dict[int, list[tuple[time, time]]] = {}
    for shift in row.shifts:
        weekly.setdefault(shift.weekday, []).append((shift.starts, shift.ends))
    own = frozenset(
        db.session.scalars(select(ClosureDay.day).where(ClosureDay.calendar_id == row.id))
    )
    return Calendar(
        zone=ZoneInfo(row.zone),
        weekly=weekly,
        holidays=holiday_checker(row.country, row.subdivision),
        closures=closures | own,
        absences=tuple(absences),
        name=row.name,
    )


def default_calendar_row() -> WorkCalendar | None:
    return db.session.scalar(select(WorkCalendar).where(WorkCalendar.is_default.is_(True)))


def company_calendar() -> Calendar:
    """The company default: the calendar marked default, else Mon–Fri 09–17 Berlin, DE holidays."""
    return to_calendar(default_calendar_row())


def _assigned(*, team_id: int | None = None, user_id: int | None = None) -> WorkCalendar | None:
    column = CalendarAssignment.team_id if team_id is not None else CalendarAssignment.user_id
    return db.session.scalar(
        select(WorkCalendar)
        .join(CalendarAssignment)
        .where(column == (team_id if team_id is not None else user_id))
    )


def calendar_row_for_team(team: Team | None) -> WorkCalendar | None:
    """The stored calendar a team works by (``None``: the built-in default)."""
    row = _assigned(team_id=team.id) if team is not None else None
    return row or default_calendar_row()


def calendar_for_team(team: Team | None) -> Calendar:
    """The team's calendar, else the company default; no absences (a team is never on leave)."""
    return to_calendar(calendar_row_for_team(team))


def calendar_row_for_user(user: User) -> WorkCalendar | None:
    """The stored calendar a user works by: their own, their team's, the default (or ``None``)."""
    row = _assigned(user_id=user.id)
    if row is None and user.team_id is not None:
        row = _assigned(team_id=user.team_id)
    return row or default_calendar_row()


def absences_of(user: User, since: datetime | None = None) -> list[tuple[datetime, datetime]]:
    """The user's absences ending after ``since`` (default: ``ABSENCE_LOOKBACK`` ago)."""
    since = since or utcnow() - ABSENCE_LOOKBACK
    rows = db.session.execute(
        select(Absence.starts_at, Absence.ends_at)
        .where(Absence.user_id == user.id, Absence.ends_at > since)
        .order_by(Absence.starts_at)
    )
    return [(start, end) for start, end in rows]


def calendar_for_user(user: User) -> Calendar:
    """The user's own calendar, else their team's, else the company default; with absences."""
    return to_calendar(calendar_row_for_user(user), absences_of(user))


# --- editing (admin) --------------------------------------------------------------------------


def list_calendars() -> list[WorkCalendar]:
    return list(db.session.scalars(select(WorkCalendar).order_by(func.lower(WorkCalendar.name))))


def known_zones() -> list[str]:
    return sorted(available_timezones())


def _name(name: str, calendar: WorkCalendar | None) -> str:
    cleaned = " ".join(name.split())
    if not cleaned or len(cleaned) > NAME_LIMIT:
        raise InvalidInput(_("A calendar needs a name (up to 120 characters)."))
    clash = db.session.scalar(
        select(WorkCalendar).where(func.lower(WorkCalendar.name) == cleaned.lower())
    )
    if clash is not None and clash is not calendar:
        raise Conflict(_("There is a calendar called %(name)s already.", name=cleaned))
    return cleaned


def _zone(zone: str) -> str:
    zone = zone.strip()
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(_("%(zone)s is not a time zone Vaultdesk knows.", zone=zone)) from None
    if zone not in available_timezones():
        raise InvalidInput(_("%(zone)s is not a time zone Vaultdesk knows.", zone=zone))
    return zone


def holiday_region(country: str, subdivision: str) -> tuple[str | None, str | None]:
    country, subdivision = country.strip().upper(), subdivision.strip().upper()
    if not country:
        if subdivision:
            raise InvalidInput(_("Choose a country for the region."))
        return None, None
    countries = supported_countries()
    if country not in countries:
        raise InvalidInput(
            _("There are no public holidays for the country code %(code)s.", code=country)
        )
    if subdivision and subdivision not in {s.upper() for s in countries[country]}:
        raise InvalidInput(
            _(
                "%(country)s has no region %(region)s. Known regions: %(known)s.",
                country=country,
                region=subdivision,
                known=", ".join(countries[country]),
            )
        )
    # The library's own spelling of the region code (some are not all capitals).
    for known in countries[country]:
        if known.upper() == subdivision:
            subdivision = known
    return country, subdivision or None


def _shifts(shifts: Iterable[Shift]) -> list[Shift]:
    out = sorted(set(shifts))
    for weekday, _starts, _ends in out:
        if not 0 <= weekday <= 6:
            raise InvalidInput(_("A weekday is between Monday and Sunday."))
    return out


def _describe(calendar: WorkCalendar) -> dict[str, object]:
    return {
        "name": calendar.name,
        "zone": calendar.zone,
        "country": calendar.country,
        "region": calendar.subdivision,
        "default": calendar.is_default,
        "shifts": [
            f"{s.weekday}:{s.starts.strftime('%H:%M')}-{s.ends.strftime('%H:%M')}"
            for s in sorted(calendar.shifts, key=lambda s: (s.weekday, s.starts))
        ],
    }


def save_calendar(
    actor: Actor,
    calendar: WorkCalendar | None,
    *,
    name: str,
    zone: str,
    country: str,
    subdivision: str,
    shifts: Iterable[Shift],
    is_default: bool,
) -> WorkCalendar:
    """Create (``calendar`` None) or change a calendar; one default at most."""
    cleaned_name = _name(name, calendar)
    cleaned_zone = _zone(zone)
    cleaned_country, cleaned_region = holiday_region(country, subdivision)
    cleaned_shifts = _shifts(shifts)
    created = calendar is None
    before = None if calendar is None else _describe(calendar)
    if calendar is None:
        calendar = WorkCalendar()
        db.session.add(calendar)
    calendar.name = cleaned_name
    calendar.zone = cleaned_zone
    calendar.country = cleaned_country
    calendar.subdivision = cleaned_region
    if is_default:
        for other in db.session.scalars(
            select(WorkCalendar).where(WorkCalendar.is_default.is_(True))
        ):
            if other is not calendar:
                other.is_default = False
    calendar.is_default = is_default
    calendar.shifts = [WorkShift(weekday=d, starts=s, ends=e) for d, s, e in cleaned_shifts]
    db.session.flush()
    after = _describe(calendar)
    if created:
        audit.record(actor, "calendar.created", "work_calendar", calendar.id, **after)
    elif after != before:
        audit.record(
            actor, "calendar.changed", "work_calendar", calendar.id, before=before, after=after
        )
    return calendar


def delete_calendar(actor: Actor, calendar: WorkCalendar) -> None:
    """Delete a calendar; its teams and users fall back as if it never was assigned."""
    audit.record(
        actor,
        "calendar.deleted",
        "work_calendar",
        calendar.id,
        name=calendar.name,
        teams=[a.team_id for a in calendar.assignments if a.team_id],
        users=[a.user_id for a in calendar.assignments if a.user_id],
    )
    db.session.delete(calendar)


def add_closure(
    actor: Actor, calendar: WorkCalendar | None, day: date, note: str = ""
) -> ClosureDay:
    """Close the company (``calendar`` None) or one calendar on a day."""
    existing = db.session.scalar(
        select(ClosureDay).where(
            ClosureDay.day == day,
            ClosureDay.calendar_id.is_(None)
            if calendar is None
            else ClosureDay.calendar_id == calendar.id,
        )
    )
    if existing is not None:
        raise Conflict(_("%(day)s is a closure day already.", day=day.isoformat()))
    closure = ClosureDay(calendar=calendar, day=day, note=note.strip()[:200] or None)
    db.session.add(closure)
    db.session.flush()
    audit.record(
        actor,
        "calendar.closure_added",
        "closure_day",
        closure.id,
        day=day.isoformat(),
        calendar=calendar.name if calendar else None,
        note=closure.note,
    )
    return closure


def remove_closure(actor: Actor, closure: ClosureDay) -> None:
    audit.record(
        actor,
        "calendar.closure_removed",
        "closure_day",
        closure.id,
        day=closure.day.isoformat(),
        calendar=closure.calendar.name if closure.calendar else None,
    )
    db.session.delete(closure)


def company_closures(upcoming_from: date | None = None) -> list[ClosureDay]:
    query = select(ClosureDay).where(ClosureDay.calendar_id.is_(None)).order_by(ClosureDay.day)
    if upcoming_from is not None:
        query = query.where(ClosureDay.day >= upcoming_from)
    return list(db.session.scalars(query))


def assign(
    actor: Actor,
    calendar: WorkCalendar | None,
    *,
    team: Team | None = None,
    user: User | None = None,
) -> bool:
    """Give a team or a user a calendar (``None``: they fall back). True if anything changed."""
    if (team is None) == (user is None):
        raise InvalidInput(_("Choose a team or a person."))
    condition = (
        CalendarAssignment.team_id == team.id
        if team is not None
        else CalendarAssignment.user_id == user.id  # type: ignore[union-attr]
    )
    current = db.session.scalar(select(CalendarAssignment).where(condition))
    old = current.calendar if current is not None else None
    if old is calendar:
        return False
    if current is not None:
        db.session.delete(current)
        db.session.flush()
    if calendar is not None:
        db.session.add(CalendarAssignment(calendar=calendar, team=team, user=user))
    audit.record(
        actor,
        "calendar.assigned",
        "team" if team is not None else "user",
        (team or user).id,  # type: ignore[union-attr]
        before=old.name if old else None,
        after=calendar.name if calendar else None,
    )
    return True


def assignments() -> dict[tuple[str, int], WorkCalendar]:
    """Every assignment, keyed ("team", id) or ("user", id), for the admin overview."""
    rows = db.session.scalars(select(CalendarAssignment))
    return {
        ("team", r.team_id) if r.team_id is not None else ("user", r.user_id): r.calendar  # type: ignore[misc]
        for r in rows
    }
