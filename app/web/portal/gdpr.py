"""The portal's "request my data" / "delete my data" form (on the profile page).

Re-authentication is the password (see ``app.gdpr.requests``); an open request of the same
type is shown instead of a second one.
"""

from __future__ import annotations

from flask import flash, redirect, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select
from werkzeug.wrappers import Response

from app.extensions import db
from app.gdpr import requests as gdpr
from app.gdpr.labels import KIND_LABELS
from app.models.gdpr import GdprRequest
from app.web.portal import bp


@bp.app_template_global()
def own_open_gdpr_requests() -> list[GdprRequest]:
    """The signed-in customer's open data-subject requests, for the profile page."""
    if not current_user.is_authenticated:
        return []
    return list(
        db.session.scalars(
            select(GdprRequest)
            .where(
                GdprRequest.subject_user_id == current_user.id,
                GdprRequest.status.in_(gdpr.OPEN_VALUES),
            )
            .order_by(GdprRequest.received_at)
        )
    )


@bp.app_template_global()
def gdpr_kind_label(kind: str) -> str:
    """A request type in the reader's language."""
    return str(KIND_LABELS.get(kind, kind))


@bp.post("/profile/gdpr-request")
def gdpr_request() -> Response:
    req, created = gdpr.portal_request(
        current_user,
        request.form.get("kind", ""),
        request.form.get("password", ""),
        client_address=request.remote_addr,
    )
    db.session.commit()
    if created:
        flash(_("We received your request. We answer it within 30 days."), "success")
    else:
        flash(_("You have an open request of this kind already; we are working on it."), "info")
    return redirect(url_for("portal.profile"), code=303)
