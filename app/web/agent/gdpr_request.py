"""An agent records a data-subject request that arrived by mail, from the ticket page.

One small form (``agent/_gdpr_request.html``, included in the ticket page) posts here; the
domain (``app.gdpr.requests.from_ticket``) makes the record and audits it. The agent cannot
open the register: compliance works the request from there.
"""

from __future__ import annotations

from flask import flash, redirect, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from werkzeug.wrappers import Response

from app.actor import Actor
from app.extensions import db
from app.gdpr import requests as gdpr
from app.gdpr.labels import KIND_LABELS
from app.tickets.lookup import ticket_by_number
from app.web.agent import bp


@bp.app_template_global()
def gdpr_kind_choices() -> dict[str, str]:
    """The request types, for the ticket page's small form."""
    return {value: str(label) for value, label in KIND_LABELS.items()}


@bp.post("/tickets/<number>/gdpr-request")
def record_gdpr_request(number: str) -> Response:
    ticket = ticket_by_number(number)
    gdpr.from_ticket(
        Actor.staff(current_user, request.remote_addr), ticket, request.form.get("kind", "")
    )
    db.session.commit()
    flash(_("The data-subject request was passed to compliance."), "success")
    return redirect(url_for("agent.ticket", number=ticket.number), code=303)
