"""Agent ticket lists: views with filters and sorting, the counting navigation, bulk actions."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlsplit

from flask import current_app, flash, g, make_response, redirect, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from jinja2_fragments.flask import render_block
from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from app.actor import Actor
from app.errors import InvalidInput
from app.extensions import db
from app.htmx import go_to, is_boosted, is_htmx, oob_flash, render, wants_fragment
from app.models.tickets import Priority, Status
from app.params import choice, int_id, int_ids, required_choice
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
from app.web.agent.notifications import tagged, with_bell
from app.web.guards import safe_next

# Labels the list templates translate as ``_(label)``: named here so that ``pybabel
# extract`` finds them (``app.tickets.listing`` and the models keep plain English).
TEMPLATE_LABELS = (
    _l("Inbox"),
    _l("Dispatcher"),
    _l("All"),
    _l("Work"),
    _l("Open"),
    _l("Closed"),
    _l("New"),
    _l("In Progress"),
    _l("Pending"),
    _l("Waiting on Third Party"),
    _l("Resolved"),
    _l("Low"),
    _l("Normal"),
    _l("High"),
    _l("Urgent"),
    # vault link states (file_links.html, contact.html)
    _l("active"),
    _l("expired"),
    _l("revoked"),
    _l("exhausted"),
    _l("erased"),
)


@bp.get("/list/<view>")
def list_view(view: str) -> Response:
    """A list of tickets; htmx filter, sort and page requests get only the table."""
    query = ListQuery.from_args(view, request.args)
    if query.text and _searched_on_purpose():
        target = listing.jump_target(query.text)
        if target is not None:
            return go_to(url_for("agent.ticket", number=target.number))
    # The table polls every 20 s; while no ticket changed the answer is a bare 304.
    etag = tagged(listing.list_etag(current_user, query, request.query_string.decode()))
    if etag in request.if_none_match:
        response = Response(status=304)
        response.set_etag(etag)
        return response
    result = listing.list_tickets(query, current_user)
    response = render(
        "agent/list.html",
        "ticket_list",
        query=result.query,
        rows=result.rows,
        total=result.total,
        page=result.page,
        pages=result.pages,
    )
    with_bell(response)
    response.set_etag(etag)
    response.headers["Cache-Control"] = "private, no-cache"
    return response


def _searched_on_purpose() -> bool:
    """A search the agent sent (Enter, the Filter button, a link, a typed URL), not a poll.

    Only these jump to a ticket named by its number: the table's 20 s poll repeats the
    search, and search-as-you-type sends "110000" on the way to "1100005", which must not
    carry the agent off to another ticket. Typing shows the exact match as the first row.
    """
    if not is_htmx():
        return True
    return is_boosted() or request.headers.get("HX-Trigger") == "list-filters"


@bp.get("/nav")
def list_nav() -> Response:
    """The counting navigation, polled by htmx; 304 while no ticket changed."""
    query = ListQuery.from_args(request.args.get("view", "inbox"), request.args)
    etag = tagged(listing.counts_etag(current_user, query.owner, query.owner_ids, query.view))
    if etag in request.if_none_match:
        response = Response(status=304)
    else:
        response = with_bell(render("agent/_nav.html", q=query, with_counts=True))
    response.set_etag(etag)
    response.headers["Cache-Control"] = "private, no-cache"
    response.vary.add("HX-Request")
    return response


@bp.post("/bulk")
def bulk() -> Response:
    """Apply one change to the ticked tickets, all or nothing (see ``listing.apply_bulk``).

    htmx gets the list it came from, redrawn, with the summary in the flash area; a refusal
    (nothing ticked, no status chosen, a ticket that refused) is a message for the flash
    area (``error_page``) and leaves the list and its ticks as they were.
    """
    form = request.form
    action = choice(BulkAction, form.get("action"), "bulk action")
    if action is None:
        raise InvalidInput(_("Choose what to do with the ticked tickets."))
    ids = int_ids(form.getlist("ticket"), "ticket")
    if action is BulkAction.STATUS:
        status = required_choice(Status, form.get("status"), "status")
    else:
        status = None
    assignee = listing.staff_member(int_id(form.get("assignee"), "Agent"))
    result = listing.apply_bulk(
        ids,
        action,
        Actor.staff(current_user, request.remote_addr),
        assignee=assignee,
        status=status,
        tag=form.get("tag"),
    )
    db.session.commit()
    flash(_bulk_summary(action, result), "success")
    back = safe_next(form.get("next"), url_for("agent.inbox"))
    if not wants_fragment():
        return redirect(back, code=303)
    query = _list_query_of(back)
    page = listing.list_tickets(query, current_user)
    table = render_block(
        "agent/list.html",
        "ticket_list",
        query=page.query,
        rows=page.rows,
        total=page.total,
        page=page.page,
        pages=page.pages,
    )
    response = make_response(table + oob_flash())
    response.vary.add("HX-Request")
    return response


def _bulk_summary(action: BulkAction, result: listing.BulkResult) -> str:
    """What the bulk change did, in the agent's language (a whole sentence per action)."""
    n = len(result.changed)
    done = {
        BulkAction.ASSIGN: _("Assigned %(num)d ticket(s).", num=n),
        BulkAction.STATUS: _("Changed the status of %(num)d ticket(s).", num=n),
        BulkAction.TAG: _("Tagged %(num)d ticket(s).", num=n),
        BulkAction.READ: _("Marked as read %(num)d ticket(s).", num=n),
    }[action]
    if not result.unchanged:
        return done
    already = _(
        "%(num)d already were: %(numbers)s.",
        num=len(result.unchanged),
        numbers=", ".join(result.unchanged),
    )
    return f"{done} {already}"


def _list_query_of(path: str) -> ListQuery:
    """The query of the list page at ``path`` (the bulk form's ``next``), to redraw it."""
    parts = urlsplit(path)
    try:
        endpoint, args = current_app.url_map.bind("localhost").match(parts.path, "GET")
    except HTTPException:
        endpoint, args = "agent.inbox", {}
    view = args.get("view", "inbox") if endpoint == "agent.list_view" else "inbox"
    return ListQuery.from_args(view, MultiDict(parse_qsl(parts.query)))


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
