"""The agent workspace (/agent)."""

from flask import Blueprint

from app.models.people import Role
from app.web.guards import guard_blueprint

bp = Blueprint("agent", __name__, url_prefix="/agent")
guard_blueprint(bp, Role.AGENT, Role.SUPERVISOR)

from app.web.agent import (  # noqa: E402,F401
    absences,
    board,
    contacts,
    customers,
    drafts,
    gdpr_request,
    lists,
    mail_review,
    new_ticket,
    notifications,
    routes,
    ticket_side,
)
