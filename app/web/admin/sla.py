"""Admin screens for SLA policies (/admin/sla): list, create, edit, delete. Thin: the rules
(precedence, validation, audit) are in ``app.sla.policies``.

Also registers the SLA template globals (app-wide, here so the SLA display has one home):
``sla_clocks`` for the agent ticket page's facts, ``sla_duration`` for targets, and
``expected_answer_text`` for the portal's "You will hear from ... before ..." line.
"""

from __future__ import annotations

from datetime import datetime

from flask import flash, request, url_for
from flask_babel import get_locale
from flask_babel import gettext as _
from werkzeug.wrappers import Response

from app.errors import DomainError, InvalidInput
from app.extensions import db
from app.htmx import go_to, render
from app.i18n import viewer_zone
from app.models.sla import SlaPolicy
from app.models.tickets import Priority, Ticket
from app.models.types import utcnow
from app.params import id_or_none
from app.sla import policies
from app.sla.targets import (
    Clock,
    expectation_text,
    expected_answer,
    first_response_clock,
    resolution_clock,
)
from app.web.admin import bp
from app.web.admin.common import actor, get_or_404


@bp.app_template_global()
def sla_clocks(ticket: Ticket, now: datetime) -> list[Clock | None]:
    """The ticket's first-response and resolution clocks (None where it has no target)."""
    return [first_response_clock(ticket, now), resolution_clock(ticket, now)]


@bp.app_template_global()
def expected_answer_text(ticket: Ticket) -> str:
    """When the customer will hear back, in the viewer's language and zone ("" if unknown)."""
    expectation = expected_answer(ticket, utcnow())
    if expectation is None:
        return ""
    locale = get_locale()
    return expectation_text(expectation, locale.language if locale else "en", viewer_zone())


@bp.app_template_global()
def sla_duration(minutes: int) -> str:
    """A target in business hours and minutes ("40 h", "8 h 30 min", "45 min")."""
    hours, rest = divmod(max(0, minutes), 60)
    if hours and rest:
        return _("%(hours)s h %(minutes)s min", hours=hours, minutes=rest)
    if hours:
        return _("%(hours)s h", hours=hours)
    return _("%(minutes)s min", minutes=rest)


def _policy(policy_id: int) -> SlaPolicy:
    return get_or_404(SlaPolicy, policy_id, _("There is no such SLA policy."))


def _number(name: str, what: str) -> int | None:
    raw = (request.form.get(name) or "").strip()
    if not raw:
        return None
    try:
        return int(raw)
    except ValueError:
        raise InvalidInput(_("%(what)s must be a whole number.", what=what)) from None


def _hours_and_minutes(prefix: str, what: str) -> int | None:
    """A target typed as hours and minutes (either may be blank), in minutes."""
    hours = _number(f"{prefix}_hours", what)
    minutes = _number(f"{prefix}_minutes", what)
    if hours is None and minutes is None:
        return None
    return (hours or 0) * 60 + (minutes or 0)


def _form_input() -> policies.PolicyInput:
    form = request.form
    return policies.PolicyInput(
        name=form.get("name", ""),
        priority=form.get("priority", ""),
        account_id=id_or_none(form.get("account_id")),
        category_id=id_or_none(form.get("category_id")),
        first_response_minutes=_hours_and_minutes("first", _("First response target")),
        resolution_minutes=_hours_and_minutes("resolution", _("Resolution target")),
        pause_when_waiting=form.get("pause_when_waiting") == "1",
        notify_at_once=form.get("notify_at_once") == "1",
        warn_percent=_number("warn_percent", _("Warning threshold")),
        warn_minutes=_number("warn_minutes", _("Warning before the target")),
        active=form.get("active", "1") == "1",
    )


def _page(
    template: str,
    policy: SlaPolicy | None = None,
    error: str | None = None,
    status: int = 200,
) -> Response:
    accounts, categories = policies.choices()
    return render(
        template,
        None,
        status,
        rows=policies.list_policies(),
        policy=policy,
        form=request.form if error else None,
        error=error,
        accounts=accounts,
        categories=categories,
        priorities=list(Priority),
        specificity=policies.specificity,
    )


@bp.get("/sla")
def sla_policies() -> Response:
    return _page("admin/sla.html")


@bp.post("/sla")
def create_sla_policy() -> Response:
    try:
        policy = policies.save_policy(actor(), None, _form_input())
    except DomainError as error:
        db.session.rollback()
        return _page("admin/sla.html", None, error.message, error.status)
    db.session.commit()
    flash(_("SLA policy %(name)s created.", name=policy.name), "success")
    return go_to(url_for("admin.sla_policies"))


@bp.get("/sla/<int:policy_id>")
def sla_policy(policy_id: int) -> Response:
    return _page("admin/sla_policy.html", _policy(policy_id))


@bp.post("/sla/<int:policy_id>")
def save_sla_policy(policy_id: int) -> Response:
    policy = _policy(policy_id)
    try:
        policies.save_policy(actor(), policy, _form_input())
    except DomainError as error:
        db.session.rollback()
        return _page("admin/sla_policy.html", _policy(policy_id), error.message, error.status)
    db.session.commit()
    flash(_("SLA policy %(name)s saved.", name=policy.name), "success")
    return go_to(url_for("admin.sla_policies"))


@bp.post("/sla/<int:policy_id>/delete")
def delete_sla_policy(policy_id: int) -> Response:
    policy = _policy(policy_id)
    name = policy.name
    policies.delete_policy(actor(), policy)
    db.session.commit()
    flash(_("SLA policy %(name)s deleted.", name=name), "success")
    return go_to(url_for("admin.sla_policies"))
