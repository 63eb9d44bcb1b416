"""Absences (/agent/absences): an agent enters their own leave or sickness, a supervisor those
of their team. Thin: who may enter what for whom is ``app.sla.absences``."""

from __future__ import annotations

from datetime import date, time

from flask import flash, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from werkzeug.wrappers import Response

from app.actor import Actor
from app.errors import DomainError, Forbidden, InvalidInput, NotFound
from app.extensions import db
from app.htmx import go_to, render
from app.i18n import zone
from app.models.people import User
from app.models.sla import Absence, AbsenceKind
from app.models.types import utcnow
from app.params import id_or_none
from app.sla import absences as rules
from app.web.agent import bp


def _actor() -> Actor:
    return Actor.staff(current_user, request.remote_addr)


def _page(error: str | None = None, status: int = 200) -> Response:
    people = rules.manageable_people(current_user)
    form = request.form if request.method == "POST" else {}
    return render(
        "agent/absences.html",
        "absences",
        status,
        people=people,
        absences=rules.absences_for(people),
        kinds=list(AbsenceKind),
        error=error,
        form=form,
        today=utcnow().astimezone(zone(current_user.timezone)).date().isoformat(),
    )


@bp.get("/absences")
def absences() -> Response:
    return _page()


def _day(name: str) -> date:
    value = request.form.get(name, "").strip()
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidInput(_("“%(value)s” is not a date.", value=value[:20])) from None


def _time(name: str) -> time | None:
    value = request.form.get(name, "").strip()
    if not value:
        return None
    try:
        return time.fromisoformat(value).replace(tzinfo=None)
    except ValueError:
        raise InvalidInput(_("“%(value)s” is not a time of day.", value=value[:20])) from None


@bp.post("/absences")
def add_absence() -> Response:
    person_id = id_or_none(request.form.get("user_id")) or current_user.id
    person = db.session.get(User, person_id)
    try:
        if person is None or not person.is_staff:
            raise NotFound(_("There is no such colleague."))
        starts_at, ends_at = rules.interval(
            zone(person.timezone),
            _day("first_day"),
            _day("last_day"),
            _time("start_time"),
            _time("end_time"),
        )
        rules.add_absence(
            _actor(),
            person,
            starts_at,
            ends_at,
            request.form.get("kind", ""),
            request.form.get("note", ""),
        )
    except Forbidden:
        db.session.rollback()
        raise
    except DomainError as error:
        db.session.rollback()
        return _page(error.message, error.status)
    db.session.commit()
    flash(_("The absence of %(name)s is saved.", name=person.name), "success")
    return go_to(url_for("agent.absences"))


@bp.post("/absences/<int:absence_id>/delete")
def remove_absence(absence_id: int) -> Response:
    absence = db.session.get(Absence, absence_id)
    if absence is None:
        raise NotFound(_("There is no such absence."))
    name = absence.user.name
    rules.remove_absence(_actor(), absence)
    db.session.commit()
    flash(_("The absence of %(name)s is removed.", name=name), "success")
    return go_to(url_for("agent.absences"))
