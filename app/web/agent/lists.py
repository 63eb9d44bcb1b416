"""Agent ticket lists: views with filters and sorting, the counting navigation, bulk actions."""

from __future__ import annotations

from typing import Any

from flask import flash, g, redirect, request, url_for
from flask_login import current_user
from werkzeug.wrappers import Response

from app.actor import Actor
from app.errors import InvalidInput
from app.extensions import db
from app.htmx import render
from app.models.tickets import Priority, Status
from app.tickets import listing
from app.tickets.listing import (
    CLOSED_VIEWS,
    OPEN_VIEWS,
    VIEWS,
    BulkAction,
    ListQuery,
    Owner,
)
from app.web.agent import bp
from app.web.guards import safe_next


@bp.get("/list/<view>")
def list_view(view: str) -> Response:
    """A list of tickets; htmx filter, sort and page requests get only the table."""
    query = ListQuery.from_args(view, request.args)
    # The table polls every 20 s; while no ticket changed the answer is a bare 304.
    etag = listing.list_etag(current_user, query, request.query_string.decode())
    if etag in request.if_none_match:
        response = Response(status=304)
        response.set_etag(etag)
        return response
    result = listing.list_tickets(query, current_user)
    response = render(
        "agent/list.html",
        "ticket_list",
        query=query,
        rows=result.rows,
        total=result.total,
        page=query.page,
        pages=result.pages,
    )
    response.set_etag(etag)
    response.headers["Cache-Control"] = "private, no-cache"
    return response


@bp.get("/nav")
def list_nav() -> Response:
    """The counting navigation, polled by htmx; 304 while no ticket changed."""
    query = ListQuery.from_args(request.args.get("view", "inbox"), request.args)
    etag = listing.counts_etag(current_user, query.owner, query.owner_ids, query.view)
    if etag in request.if_none_match:
        response = Response(status=304)
    else:
        response = render("agent/_nav.html", q=query, with_counts=True)
    response.set_etag(etag)
    response.headers["Cache-Control"] = "private, no-cache"
    response.vary.add("HX-Request")
    return response


@bp.post("/bulk")
def bulk() -> Response:
    """Apply one change to the ticked tickets, all or nothing (see ``listing.apply_bulk``)."""
    form = request.form
    try:
        action = BulkAction(form.get("action", ""))
    except ValueError:
        raise InvalidInput("Choose what to do with the ticked tickets.") from None
    ids = [int(i) for i in form.getlist("ticket") if i.isdigit()]
    status = None
    if action is BulkAction.STATUS:
        try:
            status = Status(form.get("status", ""))
        except ValueError:
            raise InvalidInput("Choose a status.") from None
    assignee = listing.staff_member(form.get("assignee", type=int))
    result = listing.apply_bulk(
        ids,
        action,
        Actor.staff(current_user, request.remote_addr),
        assignee=assignee,
        status=status,
        tag=form.get("tag"),
    )
    db.session.commit()
    verbs = {
        BulkAction.ASSIGN: "Assigned",
        BulkAction.STATUS: "Changed the status of",
        BulkAction.TAG: "Tagged",
        BulkAction.READ: "Marked as read",
    }
    flash(result.summary(verbs[action]), "success")
    return redirect(safe_next(form.get("next"), url_for("agent.inbox")), code=303)


@bp.record_once
def _template_names(state: Any) -> None:
    """Constants the list templates use, also when a block is rendered alone."""
    state.app.jinja_env.globals.update(
        list_views=VIEWS, statuses=list(Status), priorities=list(Priority)
    )


@bp.app_template_global()
def list_query_for(view: str = "inbox", page: int = 1) -> ListQuery:
    """The query a page shows when its view did not pass one (the lead's ``/agent/`` inbox)."""
    return ListQuery(view=view, page=page)


@bp.app_template_global()
def list_nav_for(query: ListQuery, with_counts: bool = False) -> dict[str, Any]:
    """What ``agent/_nav.html`` shows: views in groups, with counts under the owner filter.

    Counting every view scans the ticket table (about 50 ms at 100,000 tickets), so a page
    renders the links at once and the nav fetches its counts from ``agent.list_nav`` right
    after loading; that endpoint answers 304 while nothing changed.
    """
    counts = listing.view_counts(current_user, query.owner, query.owner_ids) if with_counts else {}
    return {
        "groups": [
            ("Work", [VIEWS[s] for s in ("inbox", "dispatcher", "all")]),
            ("Open", [VIEWS[s] for s in OPEN_VIEWS]),
            ("Closed", [VIEWS[s] for s in CLOSED_VIEWS]),
        ],
        "counts": counts,
        "staff": list_choices().staff,
        "owners": Owner,
    }


@bp.app_template_global()
def list_choices() -> listing.Choices:
    """Staff, categories, teams and tags for the forms: loaded once per request."""
    if "list_choices" not in g:
        g.list_choices = listing.choices()
    return g.list_choices
