"""Admin screens for the IMAP mailboxes: list, add, edit, test connection, deactivate.

Thin: the rules (validation, sealing the password, what the stored password may be used
for) live in ``app.mail.mailboxes``; the connection check in ``app.mail.imap``. The
password field is always empty when a form is shown, also after a refused save.
"""

from __future__ import annotations

from flask import flash, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select
from werkzeug.wrappers import Response

from app.actor import Actor
from app.errors import DomainError, NotFound
from app.extensions import db
from app.htmx import go_to, render, wants_fragment
from app.mail import imap
from app.mail.mailboxes import (
    MailboxForm,
    deactivate,
    list_mailboxes,
    password_for,
    save_mailbox,
    validate,
)
from app.models.inbound import AfterImport, Mailbox, MailSecurity
from app.models.mail import SenderIdentity
from app.params import flag, int_id
from app.web.admin import bp

FORM_TEMPLATE = "admin/mailbox_form.html"


def _actor() -> Actor:
    return Actor.staff(current_user, request.remote_addr)


def _mailbox(mailbox_id: int) -> Mailbox:
    mailbox = db.session.get(Mailbox, mailbox_id)
    if mailbox is None:
        raise NotFound(_("There is no such mailbox."))
    return mailbox


def _port(value: str | None) -> int | None:
    text = (value or "").strip()
    if not text:
        return None
    if not (text.isascii() and text.isdigit()) or len(text) > 5:  # "²" is a digit too
        return -1  # refused by validation with its message
    return int(text)


def _interval(value: str | None) -> int:
    text = (value or "").strip()
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 6 else 0


def _form_from_request() -> MailboxForm:
    data = request.form
    return MailboxForm(
        name=data.get("name", ""),
        address=data.get("address", ""),
        host=data.get("host", ""),
        port=_port(data.get("port")),
        security=data.get("security", ""),
        username=data.get("username", ""),
        password=data.get("password", ""),
        folder=data.get("folder", "") or "INBOX",
        after_import=data.get("after_import", ""),
        move_to=data.get("move_to", ""),
        identity_id=int_id(data.get("identity_id"), _("sender identity")),
        poll_interval_s=_interval(data.get("poll_interval_s")),
        active=flag(data.get("active")),
    )


def _page(
    form: MailboxForm,
    mailbox: Mailbox | None,
    *,
    error: str | None = None,
    test_error: str | None = None,
    check: imap.ConnectionCheck | None = None,
    status: int = 200,
) -> Response:
    form.password = ""  # never echoed back, not even what was just typed
    identities = db.session.scalars(select(SenderIdentity).order_by(SenderIdentity.name)).all()
    # A refused save re-renders the form in place for htmx (errors in place, 422/409);
    # a test without JavaScript, or a plain GET, gets the whole page.
    block = "form_section" if error is not None else None
    return render(
        FORM_TEMPLATE,
        block,
        status,
        form=form,
        mailbox=mailbox,
        error=error,
        test_error=test_error,
        check=check,
        identities=identities,
        securities=list(MailSecurity),
        actions=list(AfterImport),
    )


@bp.get("/mailboxes")
def mailboxes() -> Response:
    """Every mailbox with how its last poll went."""
    return render("admin/mailboxes.html", None, mailboxes=list_mailboxes())


@bp.get("/mailboxes/new")
def new_mailbox() -> Response:
    return _page(MailboxForm(), None)


@bp.get("/mailboxes/<int:mailbox_id>")
def edit_mailbox(mailbox_id: int) -> Response:
    mailbox = _mailbox(mailbox_id)
    return _page(MailboxForm.of(mailbox), mailbox)


def _save(mailbox: Mailbox | None) -> Response:
    form = _form_from_request()
    try:
        saved = save_mailbox(_actor(), form, mailbox)
    except DomainError as error:
        db.session.rollback()
        return _page(form, mailbox, error=error.message, status=error.status)
    db.session.commit()
    flash(_("Mailbox %(address)s saved.", address=saved.address), "success")
    return go_to(url_for("admin.mailboxes"))


@bp.post("/mailboxes/new")
def create_mailbox() -> Response:
    return _save(None)


@bp.post("/mailboxes/<int:mailbox_id>")
def update_mailbox(mailbox_id: int) -> Response:
    return _save(_mailbox(mailbox_id))


def _test(mailbox: Mailbox | None) -> Response:
    """Try the settings in the form (unsaved), with the typed or the stored password."""
    form = _form_from_request()
    error = None
    check = None
    try:
        clean = validate(form, mailbox)
        password = password_for(clean, mailbox)
    except DomainError as refused:
        error = refused.message
    else:
        settings = imap.settings_for(
            clean.host,
            clean.port or 0,
            clean.security,
            clean.username,
            password,
            clean.folder,
        )
        check = imap.check_connection(settings)
    db.session.rollback()
    status = 422 if error else 200
    if wants_fragment():
        return render(FORM_TEMPLATE, "test_result", status, test_error=error, check=check)
    return _page(form, mailbox, test_error=error, check=check, status=status)


@bp.post("/mailboxes/test")
def test_new_mailbox() -> Response:
    return _test(None)


@bp.post("/mailboxes/<int:mailbox_id>/test")
def test_mailbox(mailbox_id: int) -> Response:
    return _test(_mailbox(mailbox_id))


@bp.post("/mailboxes/<int:mailbox_id>/deactivate")
def deactivate_mailbox(mailbox_id: int) -> Response:
    mailbox = _mailbox(mailbox_id)
    deactivate(_actor(), mailbox)
    db.session.commit()
    flash(_("Mailbox %(address)s is no longer polled.", address=mailbox.address), "success")
    return go_to(url_for("admin.mailboxes"))


@bp.post("/mailboxes/<int:mailbox_id>/poll")
def poll_now(mailbox_id: int) -> Response:
    """Queue a poll now instead of at the next interval (e.g. right after fixing a password)."""
    from app.jobs import enqueue
    from app.jobs.mail import poll_mailbox

    mailbox = _mailbox(mailbox_id)
    if not mailbox.active:
        flash(_("Mailbox %(address)s is not active.", address=mailbox.address), "error")
    else:
        enqueue(poll_mailbox, args=(mailbox.id,))
        flash(_("Mailbox %(address)s will be polled now.", address=mailbox.address), "success")
    return go_to(url_for("admin.mailboxes"))
