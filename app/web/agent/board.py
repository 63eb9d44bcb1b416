"""The supervisor's board (/agent/board): figures per team and agent, polled like the lists.

Thin: the figures and who counts as absent are in ``app.sla.board``. Agents may enter the
agent area but not this page (403); see that module for why admins need the Supervisor role.
"""

from __future__ import annotations

from flask import abort, request
from flask_login import current_user
from werkzeug.wrappers import Response

from app.htmx import render
from app.models.people import Role
from app.sla import board as board_rules
from app.sla.assignment_rules import reason_label
from app.web.agent import bp
from app.web.agent.notifications import tagged, with_bell


@bp.get("/board")
def board() -> Response:
    """The whole page, or (htmx poll every 30 s) the figures; a bare 304 while unchanged."""
    if not current_user.has_role(Role.SUPERVISOR):
        abort(403)
    etag = tagged(board_rules.board_etag(current_user))
    if etag in request.if_none_match:
        response = Response(status=304)
        response.set_etag(etag)
        return response
    response = render("agent/board.html", "figures", board=board_rules.board(current_user))
    with_bell(response)
    response.set_etag(etag)
    response.headers["Cache-Control"] = "private, no-cache"
    return response


@bp.app_template_global()
def unplaced_reason_label(reason: str) -> str:
    """Why no assignment rule could place a ticket, in the viewer's language (list rows)."""
    return reason_label(reason)
