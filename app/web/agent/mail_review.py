"""The review queue (/agent/mail/review): mail whose threading was not safe.

A ticket number in the subject from someone who is no participant of that ticket is
never appended silently (issue 9, "safety over guessing"); it waits here until an agent
attaches it to a ticket, makes a new ticket of it, or discards it with a reason. Every
action is a plain form POST (works without JavaScript: flash, then 303 back to the
queue); the decisions are ``app.mail.held``'s, which audit them.
"""

from __future__ import annotations

from flask import flash, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from werkzeug.wrappers import Response

from app.actor import Actor
from app.errors import Conflict
from app.extensions import db
from app.htmx import go_to, render
from app.mail import held, held_queries
from app.models.inbound import InboundMail
from app.params import page_number
from app.web.agent import bp


def _actor() -> Actor:
    return Actor.staff(current_user, request.remote_addr)


def _open_review(inbound_id: int) -> InboundMail:
    inbound = held_queries.review_mail(inbound_id)
    if not held_queries.decidable(inbound):
        raise Conflict(_("This message was already decided on."))
    return inbound


def _done(message: str) -> Response:
    flash(message, "success")
    return go_to(url_for("agent.mail_review"))


@bp.get("/mail/review")
def mail_review() -> Response:
    """Open review mail, newest first; htmx paging swaps only the table."""
    result = held_queries.review_queue(page_number(request.args.get("page")))
    return render(
        "agent/mail_review.html",
        "review_table",
        result=result,
        details_of=held_queries.details_of,
    )


@bp.get("/mail/review/<int:inbound_id>")
def mail_review_item(inbound_id: int) -> Response:
    """One held message: who sent it, what it says (text only), and the three decisions."""
    inbound = held_queries.review_mail(inbound_id)
    return render(
        "agent/mail_review_item.html",
        inbound=inbound,
        details=held_queries.details_of(inbound),
        preview=held_queries.preview(inbound),
        open=held_queries.decidable(inbound),
    )


@bp.post("/mail/review/<int:inbound_id>/attach")
def mail_review_attach(inbound_id: int) -> Response:
    """File the message on the ticket the agent names (usually the suspected one)."""
    inbound = _open_review(inbound_id)
    filed = held.file_on_number(inbound, request.form.get("ticket") or "", _actor())
    db.session.commit()
    return _done(_("Filed on %(number)s.", number=filed.ticket_number))


@bp.post("/mail/review/<int:inbound_id>/new")
def mail_review_new_ticket(inbound_id: int) -> Response:
    """Make a ticket of its own from the message (the sender becomes its customer)."""
    inbound = _open_review(inbound_id)
    filed = held.new_ticket(inbound, _actor())
    db.session.commit()
    return _done(_("New ticket %(number)s made from the message.", number=filed.ticket_number))


@bp.post("/mail/review/<int:inbound_id>/discard")
def mail_review_discard(inbound_id: int) -> Response:
    """Discard with a reason (required: the log must say why mail was not filed)."""
    inbound = _open_review(inbound_id)
    held.discard(inbound, _actor(), request.form.get("reason") or "")
    db.session.commit()
    return _done(_("Message discarded."))
