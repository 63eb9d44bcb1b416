"""Personal absences (leave, sickness, other): who may enter them, and entering them.

Who may enter or remove an absence for whom (decided here, documented in the README):

- everyone on staff: their own;
- a supervisor: those of the members of their own team and of the people whose
  ``supervisor_id`` names them (after ``app.accounts.teams.sync_supervisors`` that is the same
  team), never of another team;
- an admin: anyone's (admins set up people and calendars anyway).

Absences are entered in the person's own time zone as dates (whole days, the end day included)
or with times; they are stored in UTC as ``[starts_at, ends_at)``. An absence may overlap an
earlier one (sick during leave): the calendar counts the overlap once. Every change writes an
audit row in the session; the view commits.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from flask_babel import gettext as _
from sqlalchemy import select

from app import audit
from app.actor import Actor
from app.errors import Forbidden, InvalidInput
from app.extensions import db
from app.models.people import Role, User
from app.models.sla import Absence, AbsenceKind
from app.models.types import utcnow

NOTE_LIMIT = 200
#: An absence longer than this is almost surely a typo in the year.
LONGEST = timedelta(days=2 * 366)


def may_manage(actor_user: User, person: User) -> bool:
    """May ``actor_user`` enter and remove absences of ``person``?"""
    if actor_user.id == person.id or actor_user.has_role(Role.ADMIN):
        return True
    if not actor_user.has_role(Role.SUPERVISOR):
        return False
    same_team = actor_user.team_id is not None and actor_user.team_id == person.team_id
    return same_team or person.supervisor_id == actor_user.id


def manageable_people(actor_user: User) -> list[User]:
    """The people whose absences ``actor_user`` may manage: themselves first, then by name."""
    if actor_user.has_role(Role.ADMIN):
        query = select(User).where(User.active.is_(True))
    elif actor_user.has_role(Role.SUPERVISOR):
        condition = User.supervisor_id == actor_user.id
        if actor_user.team_id is not None:
            condition = condition | (User.team_id == actor_user.team_id)
        query = select(User).where(User.active.is_(True), condition | (User.id == actor_user.id))
    else:
        return [actor_user]
    people = [u for u in db.session.scalars(query.order_by(User.name)) if u.is_staff]
    others = [u for u in people if u.id != actor_user.id]
    return [actor_user, *others]


def interval(
    zone: ZoneInfo,
    first_day: date,
    last_day: date,
    start_time: time | None = None,
    end_time: time | None = None,
) -> tuple[datetime, datetime]:
    """UTC ``[start, end)`` for an absence given in local days (and optional times).

    Without times the absence covers whole days, the last one included; with a start time it
    begins then on the first day, with an end time it ends then on the last day.
    """
    start = datetime.combine(first_day, start_time or time(0), tzinfo=zone)
    if end_time is None:
        end = datetime.combine(last_day + timedelta(days=1), time(0), tzinfo=zone)
    else:
        end = datetime.combine(last_day, end_time, tzinfo=zone)
    return start.astimezone(ZoneInfo("UTC")), end.astimezone(ZoneInfo("UTC"))


def add_absence(
    actor: Actor,
    person: User,
    starts_at: datetime,
    ends_at: datetime,
    kind: str,
    note: str = "",
) -> Absence:
    """Record that ``person`` is away; the actor must be allowed to (``may_manage``)."""
    if actor.user is None or not may_manage(actor.user, person):
        raise Forbidden(_("You may not enter absences for %(name)s.", name=person.name))
    try:
        kind = AbsenceKind(kind).value
    except ValueError:
        raise InvalidInput(_("Choose leave, sickness or other.")) from None
    if ends_at <= starts_at:
        raise InvalidInput(_("An absence ends after it starts."))
    if ends_at - starts_at > LONGEST:
        raise InvalidInput(_("An absence can be at most two years long."))
    absence = Absence(
        user_id=person.id,
        starts_at=starts_at,
        ends_at=ends_at,
        kind=kind,
        note=" ".join(note.split())[:NOTE_LIMIT] or None,
        entered_by_id=actor.user_id,
    )
    db.session.add(absence)
    db.session.flush()
    audit.record(
        actor,
        "absence.added",
        "absence",
        absence.id,
        person=person.id,
        kind=kind,
        starts_at=starts_at.isoformat(),
        ends_at=ends_at.isoformat(),
    )
    return absence


def remove_absence(actor: Actor, absence: Absence) -> None:
    """Delete an absence (entered by mistake, or plans changed)."""
    if actor.user is None or not may_manage(actor.user, absence.user):
        raise Forbidden(_("You may not change absences of %(name)s.", name=absence.user.name))
    audit.record(
        actor,
        "absence.removed",
        "absence",
        absence.id,
        person=absence.user_id,
        kind=absence.kind,
        starts_at=absence.starts_at.isoformat(),
        ends_at=absence.ends_at.isoformat(),
    )
    db.session.delete(absence)


def absences_for(people: list[User], include_past_days: int = 30) -> list[Absence]:
    """Absences of these people that end after ``include_past_days`` ago, soonest first."""
    since = utcnow() - timedelta(days=include_past_days)
    ids = [p.id for p in people]
    if not ids:
        return []
    return list(
        db.session.scalars(
            select(Absence)
            .where(Absence.user_id.in_(ids), Absence.ends_at > since)
            .order_by(Absence.starts_at, Absence.id)
        )
    )


def absent_now(user: User) -> Absence | None:
    """The absence ``user`` is in right now, if any (for boards and assignment)."""
    now = utcnow()
    return db.session.scalar(
        select(Absence)
        .where(Absence.user_id == user.id, Absence.starts_at <= now, Absence.ends_at > now)
        .limit(1)
    )
