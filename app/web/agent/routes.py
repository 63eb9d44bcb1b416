from __future__ import annotations

from flask import request
from flask_login import current_user
from werkzeug.wrappers import Response

from app.htmx import render
from app.tickets.queries import inbox as inbox_query
from app.web.agent import bp

PER_PAGE = 50


@bp.get("/")
def inbox() -> Response:
    page = max(request.args.get("page", 1, type=int) or 1, 1)
    rows, total = inbox_query(current_user, page=page, per_page=PER_PAGE)
    pages = max((total + PER_PAGE - 1) // PER_PAGE, 1)
    return render("agent/inbox.html", "ticket_list", rows=rows, total=total, page=page, pages=pages)
