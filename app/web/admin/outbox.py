"""The mail outbox folder (``SMTP_URL`` unset): what Vaultdesk would have sent, for admins."""

from __future__ import annotations

from flask import abort, render_template

from app.mail.sending import list_filed_mail, read_filed_mail
from app.web.admin import bp


@bp.get("/outbox")
def outbox() -> str:
    """Filed messages, newest first."""
    return render_template("admin/outbox.html", entries=list_filed_mail(), message=None)


@bp.get("/outbox/<name>")
def outbox_message(name: str) -> str:
    """One filed message; names are checked strictly by ``read_filed_mail`` (no paths)."""
    message = read_filed_mail(name)
    if message is None:
        abort(404)
    return render_template("admin/outbox.html", entries=None, message=message)
