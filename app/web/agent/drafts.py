"""Composer drafts and ticket presence for the ticket page (``app/static/drafts.js``).

Thin views over ``app.tickets.drafts`` and ``app.tickets.presence``. Every one of them
acts for the signed-in agent only: the draft routes take no user id at all, so another
agent's draft can neither be read nor written through them. The blueprint's guard keeps
customers (and every other role) out, so staff presence never reaches the portal.
"""

from __future__ import annotations

from typing import Any

from flask import jsonify, render_template, request
from flask_login import current_user
from werkzeug.wrappers import Response

from app.extensions import db
from app.htmx import render
from app.i18n import viewer_zone
from app.models.drafts import DraftKind, TicketDraft
from app.models.mail import SenderIdentity
from app.params import choice, int_id, required_choice
from app.tickets import drafts, presence
from app.tickets.lookup import ticket_by_number
from app.web.agent import bp


def _status(draft: TicketDraft | None) -> str:
    """The quiet "Draft saved 10:42" line, in the agent's zone; empty without a draft."""
    saved = draft.updated_at.astimezone(viewer_zone()).strftime("%H:%M") if draft else None
    return render_template("agent/_draft_status.html", saved=saved)


def _as_json(draft: TicketDraft) -> dict[str, Any]:
    return {
        "kind": draft.kind,
        "body": draft.body,
        "identity_id": draft.identity_id,
        "updated_at": draft.updated_at.isoformat(),
        "status": _status(draft),
    }


@bp.get("/tickets/<number>/drafts")
def drafts_view(number: str) -> Response:
    """My drafts on the ticket, newest first, for the page to restore after a load."""
    t = ticket_by_number(number)
    response = jsonify(drafts=[_as_json(d) for d in drafts.drafts_of(t, current_user)])
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/tickets/<number>/drafts")
def save_draft(number: str) -> Response:
    """Save what I am typing (blank removes the draft) and mark me as typing.

    Answers with the status line; a refusal is a message like any other htmx error.
    """
    t = ticket_by_number(number)
    form = request.form
    kind = required_choice(DraftKind, form.get("kind"), "draft kind")
    replaces = choice(DraftKind, form.get("replaces"), "draft kind")
    identity_id = int_id(form.get("identity_id"), "Answer from")
    identity = db.session.get(SenderIdentity, identity_id) if identity_id else None
    draft = drafts.save(
        t, current_user, kind, form.get("body", ""), identity=identity, replaces=replaces
    )
    db.session.commit()
    if draft is None:
        presence.stopped_typing(t, current_user)
    else:
        presence.typing(t, current_user, kind)
    response = Response(_status(draft), mimetype="text/html")
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/tickets/<number>/presence")
def presence_view(number: str) -> Response:
    """Polled by the ticket page: marks me present, answers with who else is on it."""
    t = ticket_by_number(number)
    response = render(
        "agent/_presence.html",
        "people",
        ticket=t,
        colleagues=presence.look(
            t, current_user, has_draft=bool(drafts.drafts_of(t, current_user))
        ),
    )
    response.headers["Cache-Control"] = "no-store"
    return response
