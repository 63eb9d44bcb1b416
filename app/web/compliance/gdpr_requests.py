"""The register of data-subject requests (/compliance/requests-register) and a page per request.

Thin: every write is a plain form POST (CSRF) that calls ``app.gdpr.requests`` and answers
303 back to the request's page; refusals are the app's error page (domain errors). The
register lists open requests first, by deadline, each coloured by ``urgency``.
"""

from __future__ import annotations

from flask import abort, flash, redirect, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import case, select
from werkzeug.wrappers import Response

from app.actor import Actor
from app.extensions import db
from app.gdpr import requests as gdpr
from app.gdpr.labels import KIND_LABELS, STATUS_LABELS, URGENCY_LABELS
from app.htmx import render
from app.models.gdpr import GdprRequest
from app.models.types import utcnow
from app.tickets.lookup import ticket_by_number
from app.web.compliance import bp


def _actor() -> Actor:
    return Actor.staff(current_user, request.remote_addr)


def _get(request_id: int) -> GdprRequest:
    req = db.session.get(GdprRequest, request_id)
    if req is None:
        abort(404)
    return req


def _labels() -> dict[str, object]:
    return {
        "kind_labels": KIND_LABELS,
        "status_labels": STATUS_LABELS,
        "urgency_labels": URGENCY_LABELS,
        "urgency": gdpr.urgency,
        "now": utcnow(),
    }


@bp.get("/requests-register")
def gdpr_register() -> Response:
    """Every data-subject request: open ones first, nearest deadline first."""
    open_first = case((GdprRequest.status.in_(gdpr.OPEN_VALUES), 0), else_=1)
    rows = db.session.scalars(
        select(GdprRequest).order_by(open_first, GdprRequest.deadline_at).limit(500)
    ).all()
    return render("compliance/gdpr_register.html", rows=rows, **_labels())


@bp.get("/requests-register/<int:request_id>")
def gdpr_request(request_id: int) -> Response:
    """One request: facts, deadline, verification, status, and its action log."""
    return render("compliance/gdpr_request.html", req=_get(request_id), **_labels())


def _done(req: GdprRequest, message: str) -> Response:
    db.session.commit()
    flash(message, "success")
    return redirect(url_for("compliance.gdpr_request", request_id=req.id), code=303)


@bp.post("/requests-register/<int:request_id>/extend")
def gdpr_extend(request_id: int) -> Response:
    req = _get(request_id)
    try:
        months = int(request.form.get("months", ""))
    except ValueError:
        months = 0
    gdpr.extend(_actor(), req, months, request.form.get("reason", ""))
    return _done(req, _("The deadline was extended."))


@bp.post("/requests-register/<int:request_id>/verify")
def gdpr_verify(request_id: int) -> Response:
    req = _get(request_id)
    gdpr.record_verification(_actor(), req, request.form.get("how", ""))
    return _done(req, _("The verification was recorded."))


@bp.post("/requests-register/<int:request_id>/status")
def gdpr_status(request_id: int) -> Response:
    req = _get(request_id)
    gdpr.set_status(_actor(), req, request.form.get("status", ""), request.form.get("note", ""))
    return _done(req, _("The status was changed."))


@bp.post("/requests-register/from-ticket")
def gdpr_from_ticket() -> Response:
    """Record a request that arrived by mail, from its ticket number."""
    ticket = ticket_by_number(request.form.get("number", "").strip())
    req = gdpr.from_ticket(
        _actor(), ticket, request.form.get("kind", ""), request.form.get("note", "")
    )
    return _done(req, _("The request is in the register."))
