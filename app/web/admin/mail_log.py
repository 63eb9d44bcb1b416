"""The mail log (/admin/mail): quarantined, ignored and decided mail, for admins.

Nothing that reaches the desk is silently dropped; what did not land on a ticket is listed
here with the reason, and an admin can run it through the pipeline again, file it on a
ticket, make a ticket of it or discard it with a reason, and download the original
message (the raw bytes, decrypted from the vault; the download is audited). The decisions
are ``app.mail.held``'s; every action is a plain form POST (flash, then 303 back).
"""

from __future__ import annotations

from flask import flash, make_response, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from werkzeug.wrappers import Response

from app import audit
from app.actor import Actor
from app.errors import Conflict, NotFound
from app.extensions import db
from app.files.names import content_disposition
from app.htmx import go_to, render
from app.mail import held, held_queries
from app.mail.held_queries import LOG_OUTCOMES, HeldState, LogFilter
from app.models.inbound import InboundMail
from app.params import page_number
from app.web.admin import bp


def _actor() -> Actor:
    return Actor.staff(current_user, request.remote_addr)


def _open(inbound_id: int) -> InboundMail:
    inbound = held_queries.logged_mail(inbound_id)
    if not held_queries.decidable(inbound):
        raise Conflict(_("This message was already decided on."))
    return inbound


def _done(message: str, inbound_id: int) -> Response:
    flash(message, "success")
    return go_to(url_for("admin.mail_item", inbound_id=inbound_id))


@bp.get("/mail")
def mail_log() -> Response:
    """The log, filtered by outcome and state; htmx filtering and paging swap the table."""
    filters = LogFilter.from_args(request.args)
    result = held_queries.mail_log(filters, page_number(request.args.get("page")))
    return render(
        "admin/mail_log.html",
        "mail_table",
        result=result,
        filters=filters,
        outcomes=LOG_OUTCOMES,
        states=list(HeldState),
        details_of=held_queries.details_of,
    )


@bp.get("/mail/<int:inbound_id>")
def mail_item(inbound_id: int) -> Response:
    """One message: its outcome and reason, its text, the decision or the actions."""
    inbound = held_queries.logged_mail(inbound_id)
    return render(
        "admin/mail_item.html",
        inbound=inbound,
        details=held_queries.details_of(inbound),
        preview=held_queries.preview(inbound),
        open=held_queries.decidable(inbound),
    )


@bp.get("/mail/<int:inbound_id>/original")
def mail_original(inbound_id: int) -> Response:
    """The raw message as received, as a download (never shown inline: it is untrusted)."""
    inbound = held_queries.logged_mail(inbound_id)
    if inbound.raw_file_id is None:
        raise NotFound(_("The original message is no longer stored."))
    data = held.original_bytes(inbound)
    audit.record(
        _actor(),
        "mail.original_downloaded",
        "inbound_mail",
        inbound.id,
        ticket_id=inbound.ticket_id,
        size=len(data),
    )
    db.session.commit()
    response = make_response(data)
    response.mimetype = "application/octet-stream"  # a download, whatever the browser thinks
    response.headers["Content-Disposition"] = content_disposition(f"message-{inbound.id}.eml")
    response.headers["Cache-Control"] = "private, no-store"
    return response


@bp.post("/mail/<int:inbound_id>/retry")
def mail_retry(inbound_id: int) -> Response:
    """Run the message through the pipeline again (after a fix, or once a flood is over)."""
    inbound = _open(inbound_id)
    filed = held.retry(inbound, _actor())
    db.session.commit()
    return _done(
        _("Sent through the pipeline again: %(outcome)s.", outcome=filed.outcome), inbound_id
    )


@bp.post("/mail/<int:inbound_id>/attach")
def mail_attach(inbound_id: int) -> Response:
    """File the message on a ticket the admin names."""
    inbound = _open(inbound_id)
    filed = held.file_on_number(inbound, request.form.get("ticket") or "", _actor())
    db.session.commit()
    return _done(_("Filed on %(number)s.", number=filed.ticket_number), inbound_id)


@bp.post("/mail/<int:inbound_id>/new")
def mail_new_ticket(inbound_id: int) -> Response:
    """Make a ticket of the message."""
    inbound = _open(inbound_id)
    filed = held.new_ticket(inbound, _actor())
    db.session.commit()
    return _done(
        _("New ticket %(number)s made from the message.", number=filed.ticket_number), inbound_id
    )


@bp.post("/mail/<int:inbound_id>/discard")
def mail_discard(inbound_id: int) -> Response:
    """Discard with a required reason; the row and its original stay for the record."""
    inbound = _open(inbound_id)
    held.discard(inbound, _actor(), request.form.get("reason") or "")
    db.session.commit()
    return _done(_("Message discarded."), inbound_id)
