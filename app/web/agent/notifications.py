"""The agent's notifications: the bell in the top bar, the list, mark read, preferences.

The bell needs no poll of its own: the polls agent pages already run (the ticket list,
its counting navigation, an open ticket's live region) carry the bell's state in their
ETag and, when they answer with content, an out-of-band copy of the bell (``with_bell``).
So a page refreshes its bell as often as it refreshes itself, and a 304 still means
"nothing changed" -- the bell included.
"""

from __future__ import annotations

from typing import Any, cast

from flask import flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from werkzeug.wrappers import Response

from app.extensions import db
from app.htmx import is_htmx, oob_flash, render, wants_fragment
from app.models.notifications import NotificationKind
from app.models.people import Role
from app.notifications import inbox
from app.notifications.preferences import Choice, preferences_of, save_preferences
from app.notifications.texts import detail, headline, kind_label
from app.pagination import clamp_page, page_count
from app.params import page_number
from app.web.agent import bp

PER_PAGE = 50


def current_bell() -> inbox.Bell:
    """The signed-in agent's bell, counted once per request: a poll's ETag, its answer
    and the page's top bar agree and cost one query together. (Views that mark read
    count after their commit, before anything asked.)"""
    if "bell" not in g:
        g.bell = inbox.bell(current_user)
    return cast(inbox.Bell, g.bell)


def bell_state() -> inbox.Bell | None:
    """The signed-in agent's bell, for the top bar (None for anyone else)."""
    if not current_user.is_authenticated or not current_user.has_role(Role.AGENT, Role.SUPERVISOR):
        return None
    return current_bell()


@bp.app_context_processor
def _bell_context() -> dict[str, Any]:
    # A function, not a value: only full pages (base.html) ask for it, so fragments and
    # other audiences' pages pay no query.
    return {"bell_state": bell_state}


def tagged(etag: str) -> str:
    """A poll's ETag with the bell's state in it: a new or read notification changes it."""
    return f"{etag}.{current_bell().tag}"


def with_bell(response: Response) -> Response:
    """Append the bell as an out-of-band swap to a poll's fragment (htmx, 200 only)."""
    if wants_fragment() and response.status_code == 200:
        html = render_template("agent/_bell.html", bell=current_bell(), oob=True)
        response.set_data(response.get_data() + html.encode())
    return response


def _texts(rows: list[Any]) -> list[dict[str, Any]]:
    return [
        {
            "row": row,
            "headline": headline(
                row.kind,
                row.params or {},
                row.actor_name,
                row.ticket.number if row.ticket else None,
            ),
            "detail": detail(row.kind, row.params or {}),
        }
        for row in rows
    ]


def _list_response(status: int = 200) -> Response:
    page = page_number(request.args.get("page"))
    rows, total = inbox.notifications_of(current_user, page=page, per_page=PER_PAGE)
    page = clamp_page(page, total, PER_PAGE)
    response = render(
        "agent/notifications.html",
        "notification_list",
        status=status,
        items=_texts(rows),
        total=total,
        page=page,
        pages=page_count(total, PER_PAGE),
        bell=inbox.bell(current_user),
    )
    response.headers["Cache-Control"] = "private, no-cache"
    return response


@bp.get("/notifications")
def notifications() -> Response:
    """The list, newest first, unread in bold; each entry leads to its ticket."""
    return _list_response()


@bp.get("/notifications/bell")
def bell() -> Response:
    """The bell alone (for scripts and tests; pages get it through their polls)."""
    state = inbox.bell(current_user)
    etag = state.tag
    if etag in request.if_none_match:
        response = Response(status=304)
    else:
        response = render("agent/_bell.html", None, bell=state, oob=False)
    response.set_etag(etag)
    response.headers["Cache-Control"] = "private, no-cache"
    return response


@bp.post("/notifications/<int:notification_id>/open")
def open_notification(notification_id: int) -> Response:
    """Mark it read and go to its ticket (to the list if the ticket is gone)."""
    row = inbox.notification_of(current_user, notification_id)
    inbox.mark_read(row)
    target = (
        url_for("agent.ticket", number=row.ticket.number)
        if row.ticket is not None
        else url_for("agent.notifications")
    )
    db.session.commit()
    return redirect(target, code=303)


@bp.post("/notifications/<int:notification_id>/read")
def read_notification(notification_id: int) -> Response:
    row = inbox.notification_of(current_user, notification_id)
    inbox.mark_read(row)
    db.session.commit()
    if wants_fragment():
        return with_bell(_list_response())
    return redirect(url_for("agent.notifications"), code=303)


@bp.post("/notifications/read-all")
def read_all_notifications() -> Response:
    count = inbox.mark_all_read(current_user)
    db.session.commit()
    flash(_("%(n)s notifications marked read.", n=count))
    if wants_fragment():
        response = with_bell(_list_response())
        response.set_data(response.get_data() + oob_flash().encode())
        return response
    return redirect(url_for("agent.notifications"), code=303)


@bp.route("/notifications/preferences", methods=["GET", "POST"])
def notification_preferences() -> Response:
    """Per kind: in the app and/or by mail; unticking both turns a kind off."""
    if request.method == "POST":
        choices = {
            kind: Choice(
                in_app=request.form.get(f"{kind.value}-app") == "1",
                by_mail=request.form.get(f"{kind.value}-mail") == "1",
            )
            for kind in NotificationKind
        }
        save_preferences(current_user, choices)
        db.session.commit()
        flash(_("Your notification settings are saved."))
        if not is_htmx():
            return redirect(url_for("agent.notification_preferences"), code=303)
    return render(
        "agent/notification_preferences.html",
        None,
        prefs=[(kind, kind_label(kind), c) for kind, c in preferences_of(current_user).items()],
    )
