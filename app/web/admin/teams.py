"""Admin screens for teams: list, create, rename, delete, members and leads.

Thin: the rules, and what a team lead is, are in ``app.accounts.teams``.
"""

from __future__ import annotations

from flask import flash, request, url_for
from flask_babel import gettext as _
from sqlalchemy import func
from werkzeug.wrappers import Response

from app.accounts import teams as team_rules
from app.accounts.admin_users import UserKind, user_query
from app.errors import DomainError
from app.extensions import db
from app.htmx import go_to, render
from app.models.people import Team, User
from app.params import id_or_none
from app.sla import assignment_rules
from app.web.admin import bp
from app.web.admin.common import actor, get_or_404


def _team(team_id: int) -> Team:
    return get_or_404(Team, team_id, _("There is no such team."))


def _list_page(error: str | None = None, status: int = 200, name: str = "") -> Response:
    return render(
        "admin/teams.html",
        None,
        status,
        teams=team_rules.list_teams(),
        leads_of=team_rules.leads_of,
        error=error,
        name=name,
    )


@bp.get("/teams")
def teams() -> Response:
    return _list_page()


@bp.post("/teams")
def create_team() -> Response:
    name = request.form.get("name", "")
    try:
        team = team_rules.create_team(actor(), name, request.form.get("email", ""))
    except DomainError as error:
        db.session.rollback()
        return _list_page(error.message, error.status, name)
    db.session.commit()
    flash(_("Team %(name)s created. Now choose its members.", name=team.name), "success")
    return go_to(url_for("admin.team", team_id=team.id))


def _team_page(team: Team, error: str | None = None, status: int = 200) -> Response:
    staff = db.session.scalars(
        user_query(UserKind.STAFF)
        .where(User.active.is_(True))
        .order_by(None)
        .order_by(func.lower(User.name))
    ).all()
    return render(
        "admin/team.html",
        None,
        status,
        team=team,
        staff=staff,
        leads=team_rules.leads_of(team),
        error=error,
        rule=assignment_rules.rule_of(team),
        modes=assignment_rules.MODE_LABELS,
        skills=assignment_rules.skills_of(team.members),
        categories=assignment_rules.skill_categories(),
    )


@bp.get("/teams/<int:team_id>")
def team(team_id: int) -> Response:
    return _team_page(_team(team_id))


def _save(team_id: int, change, done: str) -> Response:  # type: ignore[no-untyped-def]
    team = _team(team_id)
    try:
        change(team)
    except DomainError as error:
        db.session.rollback()
        return _team_page(_team(team_id), error.message, error.status)
    db.session.commit()
    flash(done % {"name": team.name}, "success")
    return go_to(url_for("admin.team", team_id=team_id))


@bp.post("/teams/<int:team_id>")
def rename_team(team_id: int) -> Response:
    return _save(
        team_id,
        lambda t: team_rules.rename_team(
            actor(), t, request.form.get("name", ""), request.form.get("email", "")
        ),
        _("Team %(name)s saved."),
    )


def _ids(name: str) -> list[int]:
    return [i for i in (id_or_none(v) for v in request.form.getlist(name)) if i is not None]


@bp.post("/teams/<int:team_id>/members")
def team_members(team_id: int) -> Response:
    return _save(
        team_id,
        lambda t: team_rules.set_members(actor(), t, _ids("members"), _ids("leads")),
        _("The members of %(name)s are saved."),
    )


@bp.post("/teams/<int:team_id>/delete")
def delete_team(team_id: int) -> Response:
    team = _team(team_id)
    name = team.name
    team_rules.delete_team(actor(), team)
    db.session.commit()
    flash(_("Team %(name)s deleted; its members have no team now.", name=name), "success")
    return go_to(url_for("admin.teams"))


@bp.post("/teams/<int:team_id>/assignment")
def team_assignment(team_id: int) -> Response:
    """The team's assignment rule (``app.sla.assignment_rules``)."""
    form = request.form
    return _save(
        team_id,
        lambda t: assignment_rules.save_rule(
            actor(),
            t,
            mode=form.get("mode", ""),
            match_skills=form.get("match_skills") == "1",
            prefer_account_manager=form.get("prefer_account_manager") == "1",
            takes_unteamed=form.get("takes_unteamed") == "1",
        ),
        _("The assignment rule of %(name)s is saved."),
    )


def _set_member_skills(team: Team) -> None:
    for member in team.members:
        assignment_rules.set_skills(
            actor(),
            member,
            request.form.get(f"tags-{member.id}", "").split(","),
            _ids(f"categories-{member.id}"),
        )


@bp.post("/teams/<int:team_id>/skills")
def team_skills(team_id: int) -> Response:
    """Each member's skills: the tags and categories the assignment rule matches."""
    return _save(team_id, _set_member_skills, _("The skills in %(name)s are saved."))
