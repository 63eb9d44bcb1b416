"""Admin screens for work calendars: weekly hours, zone, holidays, closure days, assignments.

Thin: the rules (one default calendar, who falls back to which calendar, what is audited) are
in ``app.sla.calendars``; the arithmetic in ``app.sla.business_time``.
"""

from __future__ import annotations

from datetime import date, time

from babel.dates import get_day_names
from flask import flash, request, url_for
from flask_babel import get_locale
from flask_babel import gettext as _
from werkzeug.wrappers import Response

from app.accounts.admin_users import UserKind, user_query
from app.errors import DomainError, InvalidInput
from app.extensions import db
from app.htmx import go_to, render, wants_fragment
from app.i18n import zone_choices
from app.models.people import Team, User
from app.models.sla import ClosureDay, WorkCalendar
from app.models.types import utcnow
from app.params import id_or_none
from app.sla import calendars as rules
from app.sla.business_time import supported_countries, upcoming_holidays
from app.web.admin import bp
from app.web.admin.common import actor, get_or_404

#: Shifts offered per weekday in the form (a split day: morning and afternoon).
SHIFTS_PER_DAY = 2


def _calendar(calendar_id: int) -> WorkCalendar:
    return get_or_404(WorkCalendar, calendar_id, _("There is no such calendar."))


def _weekdays() -> list[tuple[int, str]]:
    names = get_day_names("wide", locale=get_locale() or "en")
    return [(day, str(names[day])) for day in range(7)]


def _holiday_language() -> str:
    locale = get_locale()
    return "de" if locale is not None and locale.language == "de" else "en_US"


def _preview(country: str | None, subdivision: str | None) -> tuple[list, str | None]:
    """Next holidays for the form's country and region, or why there are none."""
    try:
        country_code, region = rules.holiday_region(country or "", subdivision or "")
    except InvalidInput as error:
        return [], error.message
    days = upcoming_holidays(country_code, region, utcnow().date(), 8, language=_holiday_language())
    return days, None


def _form_shifts(calendar: WorkCalendar | None) -> dict[int, list[tuple[str, str]]]:
    """The shift fields per weekday, from the request (after an error) or the calendar."""
    out: dict[int, list[tuple[str, str]]] = {}
    for day in range(7):
        if request.method == "POST":
            rows = [
                (
                    request.form.get(f"shift-{day}-{i}-start", ""),
                    request.form.get(f"shift-{day}-{i}-end", ""),
                )
                for i in range(SHIFTS_PER_DAY)
            ]
        else:
            stored = [s for s in (calendar.shifts if calendar else ()) if s.weekday == day]
            if calendar is None and day < 5:
                rows = [("09:00", "17:00")]
            else:
                rows = [(s.starts.strftime("%H:%M"), s.ends.strftime("%H:%M")) for s in stored]
        rows = (rows + [("", "")] * SHIFTS_PER_DAY)[: max(SHIFTS_PER_DAY, len(rows))]
        out[day] = rows
    return out


def _parse_time(value: str) -> time:
    try:
        parsed = time.fromisoformat(value.strip())
    except ValueError:
        raise InvalidInput(_("“%(value)s” is not a time of day.", value=value[:20])) from None
    return parsed.replace(second=0, microsecond=0, tzinfo=None)


def _parsed_shifts() -> list[rules.Shift]:
    shifts = []
    names = dict(_weekdays())
    for day in range(7):
        for i in range(SHIFTS_PER_DAY):
            starts = request.form.get(f"shift-{day}-{i}-start", "").strip()
            ends = request.form.get(f"shift-{day}-{i}-end", "").strip()
            if not starts and not ends:
                continue
            if not starts or not ends:
                raise InvalidInput(
                    _("%(day)s: give a shift both a start and an end.", day=names[day])
                )
            shifts.append((day, _parse_time(starts), _parse_time(ends)))
    return shifts


def _edit_page(
    calendar: WorkCalendar | None, error: str | None = None, status: int = 200
) -> Response:
    form = request.form if request.method == "POST" else None
    country = form.get("country", "") if form else (calendar.country if calendar else "DE")
    region = form.get("subdivision", "") if form else (calendar.subdivision if calendar else "")
    holidays, holiday_error = _preview(country, region)
    return render(
        "admin/calendar.html",
        None,
        status,
        calendar=calendar,
        error=error,
        name=form.get("name", "") if form else (calendar.name if calendar else ""),
        zone=form.get("zone", "") if form else (calendar.zone if calendar else "Europe/Berlin"),
        country=country or "",
        region=region or "",
        is_default=(form.get("is_default") == "on")
        if form
        else (calendar.is_default if calendar else False),
        shifts=_form_shifts(calendar),
        weekdays=_weekdays(),
        zones=zone_choices(),
        countries=supported_countries(),
        holidays=holidays,
        holiday_error=holiday_error,
        closures=calendar.closures if calendar else [],
        today=utcnow().date(),
    )


def _list_page(error: str | None = None, status: int = 200) -> Response:
    staff = db.session.scalars(user_query(UserKind.STAFF).where(User.active.is_(True))).all()
    return render(
        "admin/calendars.html",
        None,
        status,
        calendars=rules.list_calendars(),
        default=rules.default_calendar_row(),
        assigned=rules.assignments(),
        teams=list(db.session.scalars(db.select(Team).order_by(Team.name))),
        staff=staff,
        closures=rules.company_closures(upcoming_from=utcnow().date()),
        weekdays=dict(_weekdays()),
        error=error,
    )


@bp.get("/calendars")
def calendars() -> Response:
    return _list_page()


@bp.get("/calendars/new")
def new_calendar() -> Response:
    return _edit_page(None)


@bp.get("/calendars/<int:calendar_id>")
def calendar(calendar_id: int) -> Response:
    return _edit_page(_calendar(calendar_id))


def _save(calendar: WorkCalendar | None) -> Response:
    try:
        saved = rules.save_calendar(
            actor(),
            calendar,
            name=request.form.get("name", ""),
            zone=request.form.get("zone", ""),
            country=request.form.get("country", ""),
            subdivision=request.form.get("subdivision", ""),
            shifts=_parsed_shifts(),
            is_default=request.form.get("is_default") == "on",
        )
    except DomainError as error:
        db.session.rollback()
        return _edit_page(
            None if calendar is None else _calendar(calendar.id), error.message, error.status
        )
    db.session.commit()
    flash(_("Calendar %(name)s saved.", name=saved.name), "success")
    return go_to(url_for("admin.calendar", calendar_id=saved.id))


@bp.post("/calendars/new")
def create_calendar() -> Response:
    return _save(None)


@bp.post("/calendars/<int:calendar_id>")
def save_calendar(calendar_id: int) -> Response:
    return _save(_calendar(calendar_id))


@bp.post("/calendars/<int:calendar_id>/delete")
def delete_calendar(calendar_id: int) -> Response:
    calendar = _calendar(calendar_id)
    name = calendar.name
    rules.delete_calendar(actor(), calendar)
    db.session.commit()
    flash(
        _("Calendar %(name)s deleted; its teams and people use the default now.", name=name),
        "success",
    )
    return go_to(url_for("admin.calendars"))


@bp.get("/calendars/holidays")
def holiday_preview() -> Response:
    """The next public holidays for a country and region (the form's live preview)."""
    holidays, holiday_error = _preview(
        request.args.get("country", ""), request.args.get("subdivision", "")
    )
    template = (
        "admin/_calendar_holidays.html" if wants_fragment() else "admin/calendar_holidays.html"
    )
    return render(template, None, holidays=holidays, holiday_error=holiday_error)


def _day(value: str | None) -> date:
    try:
        return date.fromisoformat((value or "").strip())
    except ValueError:
        raise InvalidInput(_("“%(value)s” is not a date.", value=(value or "")[:20])) from None


@bp.post("/calendars/closures")
def add_closure() -> Response:
    """A company-wide closure day, or one of a calendar (``calendar_id``)."""
    calendar_id = id_or_none(request.form.get("calendar_id"))
    calendar = _calendar(calendar_id) if calendar_id is not None else None
    try:
        day = _day(request.form.get("day"))
        rules.add_closure(actor(), calendar, day, request.form.get("note", ""))
    except DomainError as error:
        db.session.rollback()
        if calendar is not None:
            return _edit_page(_calendar(calendar.id), error.message, error.status)
        return _list_page(error.message, error.status)
    db.session.commit()
    flash(_("Closed on %(day)s.", day=day.isoformat()), "success")
    if calendar is not None:
        return go_to(url_for("admin.calendar", calendar_id=calendar.id))
    return go_to(url_for("admin.calendars"))


@bp.post("/calendars/closures/<int:closure_id>/delete")
def remove_closure(closure_id: int) -> Response:
    closure = get_or_404(ClosureDay, closure_id, _("There is no such closure day."))
    calendar_id = closure.calendar_id
    rules.remove_closure(actor(), closure)
    db.session.commit()
    flash(_("The closure day is removed."), "success")
    if calendar_id is not None:
        return go_to(url_for("admin.calendar", calendar_id=calendar_id))
    return go_to(url_for("admin.calendars"))


@bp.post("/calendars/assign")
def assign_calendar() -> Response:
    """Give a team (``team_id``) or a person (``user_id``) a calendar; empty: the fallback."""
    team_id = id_or_none(request.form.get("team_id"))
    user_id = id_or_none(request.form.get("user_id"))
    calendar_id = id_or_none(request.form.get("calendar_id"))
    team = get_or_404(Team, team_id, _("There is no such team.")) if team_id else None
    user = get_or_404(User, user_id, _("There is no such user.")) if user_id else None
    if user is not None and not user.is_staff:
        raise InvalidInput(_("Only staff work by a calendar."))
    calendar = _calendar(calendar_id) if calendar_id is not None else None
    try:
        changed = rules.assign(actor(), calendar, team=team, user=user)
    except DomainError as error:
        db.session.rollback()
        return _list_page(error.message, error.status)
    db.session.commit()
    if changed:
        who = team.name if team is not None else user.name  # type: ignore[union-attr]
        if calendar is None:
            flash(_("%(who)s uses the fallback calendar now.", who=who), "success")
        else:
            flash(
                _("%(who)s works by %(calendar)s now.", who=who, calendar=calendar.name),
                "success",
            )
    return go_to(url_for("admin.calendars"))
