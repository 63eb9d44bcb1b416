"""Admin screens for sender identities and their reply templates.

Thin: the rules (one default, what deleting keeps, placeholders checked on save) live in
``app.mail.identities`` and ``app.mail.reply_templates``. The template form has a
preview button that renders the text with sample values, in place for htmx.

``reply_template_text`` (a template global) is what the agent's composer inserts: the
template filled in for the ticket on screen and the agent writing.
"""

from __future__ import annotations

from flask import flash, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import selectinload
from werkzeug.wrappers import Response

from app.errors import DomainError
from app.extensions import db
from app.htmx import go_to, render, wants_fragment
from app.i18n import LANGUAGES
from app.mail import identities as rules
from app.mail import reply_templates
from app.models.mail import ReplyTemplate, SenderIdentity
from app.models.tickets import Ticket
from app.params import flag
from app.web.admin import bp
from app.web.admin.common import actor, get_or_404


@bp.app_template_global("reply_template_text")
def reply_template_text(template: ReplyTemplate, ticket: Ticket | None = None) -> str:
    """The composer's text of ``template`` for ``ticket`` and the signed-in agent."""
    agent = current_user if current_user.is_authenticated else None
    return reply_templates.fill(template, ticket, agent)


def _identity(identity_id: int) -> SenderIdentity:
    return get_or_404(SenderIdentity, identity_id, _("There is no such identity."))


def _template(template_id: int) -> ReplyTemplate:
    return get_or_404(ReplyTemplate, template_id, _("There is no such template."))


def _list_page(
    error: str | None = None, status: int = 200, form: dict[str, str] | None = None
) -> Response:
    rows = db.session.scalars(
        select(SenderIdentity)
        .options(selectinload(SenderIdentity.templates))
        .order_by(
            SenderIdentity.is_default.desc(), SenderIdentity.active.desc(), SenderIdentity.name
        )
    ).all()
    return render(
        "admin/identities.html",
        None,
        status,
        identities=rows,
        languages=LANGUAGES,
        error=error,
        form=form or {},
    )


def _identity_form() -> dict[str, str]:
    data = request.form
    return {
        "address": data.get("address", ""),
        "name": data.get("name", ""),
        "language": data.get("language", "en"),
        "signature": data.get("signature", ""),
        "is_default": "on" if flag(data.get("is_default")) else "",
    }


@bp.get("/identities")
def identities() -> Response:
    """Sender identities: the addresses agents answer from, each with its templates."""
    return _list_page()


@bp.post("/identities")
def create_identity() -> Response:
    form = _identity_form()
    try:
        identity = rules.save_identity(
            actor(),
            address=form["address"],
            name=form["name"],
            language=form["language"],
            signature=form["signature"],
            is_default=bool(form["is_default"]),
        )
    except DomainError as error:
        db.session.rollback()
        return _list_page(error.message, error.status, form)
    db.session.commit()
    flash(_("Identity %(address)s saved.", address=identity.address), "success")
    return go_to(url_for("admin.identity", identity_id=identity.id))


def _identity_page(
    identity: SenderIdentity,
    *,
    error: str | None = None,
    status: int = 200,
    form: dict[str, str] | None = None,
    template_form: dict[str, str] | None = None,
    template_error: str | None = None,
    preview: str | None = None,
) -> Response:
    return render(
        "admin/identity.html",
        None,
        status,
        identity=identity,
        languages=LANGUAGES,
        error=error,
        form=form,
        template_form=template_form or {},
        template_error=template_error,
        preview=preview,
        placeholders=reply_templates.PLACEHOLDERS,
    )


@bp.get("/identities/<int:identity_id>")
def identity(identity_id: int) -> Response:
    return _identity_page(_identity(identity_id))


@bp.post("/identities/<int:identity_id>")
def update_identity(identity_id: int) -> Response:
    current = _identity(identity_id)
    form = _identity_form()
    try:
        rules.save_identity(
            actor(),
            address=form["address"],
            name=form["name"],
            language=form["language"],
            signature=form["signature"],
            is_default=bool(form["is_default"]),
            identity=current,
        )
    except DomainError as error:
        db.session.rollback()
        return _identity_page(
            _identity(identity_id), error=error.message, status=error.status, form=form
        )
    db.session.commit()
    flash(_("Identity %(address)s saved.", address=current.address), "success")
    return go_to(url_for("admin.identity", identity_id=identity_id))


def _toggle(identity_id: int, active: bool) -> Response:
    current = _identity(identity_id)
    try:
        rules.set_active(actor(), current, active)
    except DomainError as error:
        db.session.rollback()
        return _identity_page(_identity(identity_id), error=error.message, status=error.status)
    db.session.commit()
    if active:
        flash(_("%(address)s is offered to agents again.", address=current.address), "success")
    else:
        flash(
            _(
                "%(address)s is deactivated: no longer offered, nothing is sent from it.",
                address=current.address,
            ),
            "success",
        )
    return go_to(url_for("admin.identity", identity_id=identity_id))


@bp.post("/identities/<int:identity_id>/deactivate")
def deactivate_identity(identity_id: int) -> Response:
    return _toggle(identity_id, False)


@bp.post("/identities/<int:identity_id>/activate")
def activate_identity(identity_id: int) -> Response:
    return _toggle(identity_id, True)


@bp.post("/identities/<int:identity_id>/delete")
def delete_identity(identity_id: int) -> Response:
    current = _identity(identity_id)
    address = current.address
    try:
        rules.delete_identity(actor(), current)
    except DomainError as error:
        db.session.rollback()
        return _identity_page(_identity(identity_id), error=error.message, status=error.status)
    db.session.commit()
    flash(
        _("Identity %(address)s deleted. Mail it sent keeps its sender.", address=address),
        "success",
    )
    return go_to(url_for("admin.identities"))


# -- reply templates -------------------------------------------------------------------------


def _template_form() -> dict[str, str]:
    return {
        "name": request.form.get("name", ""),
        "body": request.form.get("body", ""),
        "active": "on" if flag(request.form.get("active", "on")) else "",
    }


@bp.post("/identities/<int:identity_id>/templates")
def add_template_view(identity_id: int) -> Response:
    current = _identity(identity_id)
    form = _template_form()
    try:
        rules.add_template(actor(), current, form["name"], form["body"])
    except DomainError as error:
        db.session.rollback()
        return _identity_page(
            _identity(identity_id),
            template_form=form,
            template_error=error.message,
            status=error.status,
        )
    db.session.commit()
    flash(_("Template added to %(address)s.", address=current.address), "success")
    return go_to(url_for("admin.identity", identity_id=identity_id))


@bp.post("/templates/preview")
def preview_template() -> Response:
    """The text rendered with sample values; htmx swaps it in beside the form."""
    body = request.form.get("body", "")
    error = None
    preview = None
    try:
        preview = reply_templates.check(body)
    except DomainError as refused:
        error = refused.message
    status = 422 if error else 200
    if wants_fragment():
        return render(
            "admin/_template_preview.html", None, status, preview=preview, preview_error=error
        )
    return render(
        "admin/template_preview.html", None, status, preview=preview, preview_error=error, body=body
    )


@bp.get("/templates/<int:template_id>")
def template(template_id: int) -> Response:
    current = _template(template_id)
    return _template_page(current)


def _template_page(
    current: ReplyTemplate,
    form: dict[str, str] | None = None,
    error: str | None = None,
    status: int = 200,
) -> Response:
    body = (form or {}).get("body", current.body)
    try:
        preview, preview_error = reply_templates.check(body), None
    except DomainError as refused:
        preview, preview_error = None, refused.message
    return render(
        "admin/template.html",
        None,
        status,
        reply_template=current,
        form=form
        or {"name": current.name, "body": current.body, "active": "on" if current.active else ""},
        error=error,
        preview=preview,
        preview_error=preview_error,
        placeholders=reply_templates.PLACEHOLDERS,
    )


@bp.post("/templates/<int:template_id>")
def update_template(template_id: int) -> Response:
    current = _template(template_id)
    form = _template_form()
    form["active"] = "on" if flag(request.form.get("active")) else ""
    try:
        rules.update_template(
            actor(), current, form["name"], form["body"], active=bool(form["active"])
        )
    except DomainError as error:
        db.session.rollback()
        return _template_page(_template(template_id), form, error.message, error.status)
    db.session.commit()
    flash(_("Template %(name)s saved.", name=current.name), "success")
    return go_to(url_for("admin.identity", identity_id=current.identity_id))


@bp.post("/templates/<int:template_id>/delete")
def delete_template(template_id: int) -> Response:
    current = _template(template_id)
    identity_id, name = current.identity_id, current.name
    rules.delete_template(actor(), current)
    db.session.commit()
    flash(_("Template %(name)s deleted.", name=name), "success")
    return go_to(url_for("admin.identity", identity_id=identity_id))
