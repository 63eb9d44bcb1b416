"""Admin screens for system mail templates: list, edit with live preview, reset.

Thin: rendering, the sandbox, the checks and the defaults live in
``app.mail.system_mail``. The editor previews what is typed (htmx posts the form to
``preview`` as the admin types; without JavaScript the Preview button posts it and the
page comes back with the preview). A template that does not render is refused with
Jinja's error, the typed text kept.
"""

from __future__ import annotations

from flask import flash, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select
from werkzeug.wrappers import Response

from app.actor import Actor
from app.errors import NotFound
from app.extensions import db
from app.htmx import go_to, render, wants_fragment
from app.mail import system_mail
from app.mail.system_mail import Kind, Source, TemplateRefused
from app.models.mail import SenderIdentity, SystemTemplate
from app.web.admin import bp

EDITOR = "admin/system_mail_form.html"


def _actor() -> Actor:
    return Actor.staff(current_user, request.remote_addr)


def _key(identity_id: int, kind: str, language: str) -> tuple[SenderIdentity, Kind, str]:
    """The identity, kind and language a URL names; 404 for anything unknown."""
    identity = db.session.get(SenderIdentity, identity_id)
    if identity is None:
        raise NotFound(_("There is no such identity."))
    try:
        template_kind = Kind(kind)
    except ValueError:
        raise NotFound(_("There is no such system mail.")) from None
    if language not in system_mail.LANGUAGES:
        raise NotFound(_("System mail exists in English and German."))
    return identity, template_kind, language


def _typed() -> Source:
    form = request.form
    return Source(
        form.get("subject", ""), form.get("body_text", ""), form.get("body_html", "") or None
    )


def _preview(kind: Kind, source: Source, language: str) -> tuple[system_mail.Rendered | None, str]:
    """The typed template rendered with sample values, or the reason it does not render."""
    try:
        system_mail.check_source(kind, source)
        return system_mail.render_source(
            kind, source, system_mail.sample_values(kind), language
        ), ""
    except TemplateRefused as refused:
        return None, refused.message


@bp.get("/system-mail")
def system_mails() -> Response:
    """Every identity's system mails, per kind and language: customised or the default."""
    identities = db.session.scalars(
        select(SenderIdentity).order_by(SenderIdentity.is_default.desc(), SenderIdentity.name)
    ).all()
    customised = {
        (row.identity_id, row.kind, row.language)
        for row in db.session.scalars(select(SystemTemplate))
    }
    return render(
        "admin/system_mails.html",
        identities=identities,
        kinds=list(Kind),
        titles=system_mail.TITLES,
        languages=system_mail.LANGUAGES,
        customised=customised,
    )


def _editor(
    identity: SenderIdentity,
    kind: Kind,
    language: str,
    source: Source,
    *,
    error: str = "",
    status: int = 200,
    block: str | None = None,
) -> Response:
    rendered, preview_error = _preview(kind, source, language)
    return render(
        EDITOR,
        block,
        status=status,
        identity=identity,
        kind=kind,
        title=system_mail.TITLES[kind],
        language=language,
        source=source,
        variables=system_mail.VARIABLES[kind],
        customised=system_mail.stored(identity, kind, language) is not None,
        error=error,
        rendered=rendered,
        preview_error=preview_error,
    )


@bp.get("/system-mail/<int:identity_id>/<kind>/<language>")
def system_mail_edit(identity_id: int, kind: str, language: str) -> Response:
    identity, template_kind, language = _key(identity_id, kind, language)
    source, _customised = system_mail.source_for(identity, template_kind, language)
    return _editor(identity, template_kind, language, source)


@bp.post("/system-mail/<int:identity_id>/<kind>/<language>")
def system_mail_save(identity_id: int, kind: str, language: str) -> Response:
    """Save after a render with sample values; refused (422) with Jinja's error."""
    identity, template_kind, language = _key(identity_id, kind, language)
    source = _typed()
    try:
        system_mail.save_template(_actor(), identity, template_kind, language, source)
    except TemplateRefused as refused:
        db.session.rollback()
        block = "editor" if wants_fragment() else None
        return _editor(
            identity, template_kind, language, source, error=refused.message, status=422,
            block=block,
        )  # fmt: skip
    db.session.commit()
    flash(_("Template saved: %(title)s (%(language)s).", title=system_mail.TITLES[template_kind],
            language=language), "success")  # fmt: skip
    return go_to(
        url_for("admin.system_mail_edit", identity_id=identity.id, kind=kind, language=language)
    )


@bp.post("/system-mail/<int:identity_id>/<kind>/<language>/preview")
def system_mail_preview(identity_id: int, kind: str, language: str) -> Response:
    """What the typed template looks like with sample values (nothing is saved)."""
    identity, template_kind, language = _key(identity_id, kind, language)
    block = "preview" if wants_fragment() else None
    return _editor(identity, template_kind, language, _typed(), block=block)


@bp.post("/system-mail/<int:identity_id>/<kind>/<language>/reset")
def system_mail_reset(identity_id: int, kind: str, language: str) -> Response:
    """Back to the shipped default."""
    identity, template_kind, language = _key(identity_id, kind, language)
    if system_mail.reset_template(_actor(), identity, template_kind, language):
        db.session.commit()
        flash(_("The default template applies again."), "success")
    return go_to(
        url_for("admin.system_mail_edit", identity_id=identity.id, kind=kind, language=language)
    )
