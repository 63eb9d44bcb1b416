"""The outbox for admins: every reply the relay owes or sent, and the filed folder.

The table is the truth (status, tries, last error, recipients, ticket); with no
``SMTP_URL`` the relay also files each copy as an ``.eml`` in ``instance/outbox/``, listed
below it together with the portal's mails (sign-in links, invitations).
"""

from __future__ import annotations

from flask import abort, render_template, request
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from app.extensions import db
from app.mail.relay import preview_copies
from app.mail.sending import list_filed_mail, read_filed_mail
from app.models.mail import OutboxMessage
from app.pagination import paginate
from app.params import page_number
from app.web.admin import bp

PER_PAGE = 50


@bp.get("/outbox")
def outbox() -> str:
    """Outbox rows newest first, then the filed messages."""
    stmt = (
        select(OutboxMessage)
        .options(selectinload(OutboxMessage.deliveries), selectinload(OutboxMessage.ticket))
        .order_by(OutboxMessage.id.desc())
    )
    rows = paginate(stmt, page_number(request.args.get("page")), PER_PAGE)
    return render_template(
        "admin/outbox.html", rows=rows, entries=list_filed_mail(), message=None, mail=None
    )


@bp.get("/outbox/mails/<int:outbox_id>")
def outbox_mail(outbox_id: int) -> str:
    """One outbox row: its state and each recipient's copy as it is (or was) sent."""
    mail = db.session.get(OutboxMessage, outbox_id)
    if mail is None:
        abort(404)
    return render_template(
        "admin/outbox.html",
        rows=None,
        entries=None,
        message=None,
        mail=mail,
        copies=preview_copies(mail),
    )


@bp.get("/outbox/<name>")
def outbox_message(name: str) -> str:
    """One filed message; names are checked strictly by ``read_filed_mail`` (no paths)."""
    message = read_filed_mail(name)
    if message is None:
        abort(404)
    return render_template("admin/outbox.html", rows=None, entries=None, message=message, mail=None)
