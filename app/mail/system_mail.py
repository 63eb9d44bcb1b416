"""System mail: the mails the desk writes by itself, from templates admins may edit.

Which mails (``Kind``): the autoresponse to a new ticket, the reopen notice, the pending
reminder, the auto-close notice, the (internal) escalation notice, and the portal's
invitation, sign-in link, password reset and file-link access code; and for staff, the
invitation an admin sends a new colleague and the password reset an admin sends
(``app.accounts.staff_links``).

Each exists per sender identity and language: an admin's version (``SystemTemplate``),
else the default shipped in ``app/mail/system_templates/<language>/<kind>.txt`` (a
``Subject:`` line, a blank line, the text part), English and German. A mail in another
language uses the English default.

Why a sandbox: templates are typed by admins in the browser, and whoever can save one
must not be able to run code on the server. They are Jinja rendered in
``ImmutableSandboxedEnvironment`` (no attribute starting with ``_``, no mutation of the
values, no unsafe callables) with ``StrictUndefined``, and they only get the documented
variables of their kind (``VARIABLES``), all plain strings and numbers, never a model.
The HTML part is rendered with autoescaping, so a customer's name or subject is text.

Why two checks: a template is rendered with sample values when it is saved, and refused
with Jinja's error if that fails (syntax, an undefined name, a sandbox violation). A
template can still fail at send time (a value the sample did not have, an edit made
straight in the database): then the default is rendered instead and the failure logged
-- the mail is never lost to a template.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass, replace
from functools import cache, lru_cache
from importlib import resources
from typing import Any

from flask_babel import gettext as _
from jinja2 import StrictUndefined, Template, TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment
from sqlalchemy import select

from app import audit
from app.actor import Actor
from app.errors import InvalidInput
from app.extensions import db
from app.models.mail import SenderIdentity, SystemTemplate
from app.models.types import utcnow

log = logging.getLogger(__name__)

LANGUAGES = ("en", "de")
FALLBACK_LANGUAGE = "en"
SUBJECT_LIMIT = 300
SOURCE_LIMIT = 20_000


class Kind(enum.StrEnum):
    AUTORESPONSE = "autoresponse"
    REOPEN_NOTICE = "reopen_notice"
    PENDING_REMINDER = "pending_reminder"
    AUTO_CLOSE = "auto_close"
    ESCALATION = "escalation"
    PORTAL_INVITE = "portal_invite"
    SIGN_IN_LINK = "sign_in_link"
    PASSWORD_RESET = "password_reset"  # noqa: S105 - a template name
    LINK_CODE = "link_code"
    STAFF_INVITE = "staff_invite"
    STAFF_PASSWORD_RESET = "staff_password_reset"  # noqa: S105 - a template name


TITLES: dict[Kind, str] = {
    Kind.AUTORESPONSE: "Autoresponse to a new ticket",
    Kind.REOPEN_NOTICE: "Reopen notice",
    Kind.PENDING_REMINDER: "Pending reminder",
    Kind.AUTO_CLOSE: "Auto-close notice",
    Kind.ESCALATION: "Escalation notice (internal)",
    Kind.PORTAL_INVITE: "Portal invitation",
    Kind.SIGN_IN_LINK: "Portal sign-in link",
    Kind.PASSWORD_RESET: "Portal password reset",
    Kind.LINK_CODE: "File link access code",
    Kind.STAFF_INVITE: "Staff invitation (new colleague)",
    Kind.STAFF_PASSWORD_RESET: "Staff password reset (sent by an admin)",
}

_TICKET = {
    "ticket_number": ("Ticket number", "T-104233"),
    "ticket_subject": ("Ticket subject", "Printer on fire"),
    "customer_name": ("Customer's name (or address when no name is known)", "Nora Customer"),
    "portal_url": ("The ticket in the customer portal", "https://desk.example/portal/t/T-104233"),
    "identity_name": ("Name of the sender identity", "Support"),
}
_PORTAL = {
    "customer_name": ("Customer's name", "Nora Customer"),
    "email": ("Customer's sign-in address", "nora@customer.example"),
    "url": ("The link (works once)", "https://desk.example/portal/link/SAMPLE"),
    "identity_name": ("Name of the sender identity", "Support"),
}
_STAFF = {
    "name": ("The colleague's name", "Ada Agent"),
    "email": ("Their sign-in address", "ada@desk.example"),
    "url": (
        "The link to choose a password (works once)",
        "https://desk.example/admin/welcome/SAMPLE",
    ),
    "identity_name": ("Name of the sender identity", "Support"),
}

# The documented variables of each kind: name -> (what it is, sample value for previews).
VARIABLES: dict[Kind, dict[str, tuple[str, Any]]] = {
    Kind.AUTORESPONSE: {
        **_TICKET,
        "agent_name": ("Assigned agent's name; empty when nobody is assigned", "Ada Agent"),
        "expected_answer": (
            "When the customer will hear back (SLA first response, in their language and "
            "time zone); empty when no SLA policy applies",
            "You will hear from Ada on Monday, 24 November, before 11:00.",
        ),
    },
    Kind.REOPEN_NOTICE: dict(_TICKET),
    Kind.PENDING_REMINDER: {
        **_TICKET,
        "pending_since": ("Date the ticket went pending", "2026-11-30"),
        "close_days": ("Days left before it is closed automatically", 7),
    },
    Kind.AUTO_CLOSE: {
        **_TICKET,
        "reopen_days": ("Days a reply still reopens the ticket", 30),
    },
    Kind.ESCALATION: {
        "ticket_number": _TICKET["ticket_number"],
        "ticket_subject": _TICKET["ticket_subject"],
        "ticket_url": ("The ticket for agents", "https://desk.example/agent/t/T-104233"),
        "recipient_name": ("Name of the supervisor told", "Sam Supervisor"),
        "assignee_name": ("Assigned agent's name; empty when nobody is assigned", "Ada Agent"),
        "priority": ("Ticket priority", "High"),
        "target": ("The missed target, e.g. first response", "first response"),
        "due_at": ("When the target was due (recipient's time zone)", "2026-12-02 14:00 (CET)"),
        "level": ("0: a warning before the due time; 1: the supervisor; 2: one level up", 1),
        "identity_name": _TICKET["identity_name"],
    },
    Kind.PORTAL_INVITE: {
        **_PORTAL,
        "days": ("Days the link works", 7),
        "inviter": ("Name of the agent who invited; may be empty", "Ada Agent"),
    },
    Kind.SIGN_IN_LINK: {**_PORTAL, "minutes": ("Minutes the link works", 15)},
    Kind.PASSWORD_RESET: {**_PORTAL, "minutes": ("Minutes the link works", 60)},
    Kind.LINK_CODE: {
        "code": ("The six-digit code", "123456"),
        "file_name": ("Name of the file", "report.pdf"),
        "minutes": ("Minutes the code works", 10),
        "identity_name": _TICKET["identity_name"],
    },
    Kind.STAFF_INVITE: {
        **_STAFF,
        "days": ("Days the link works", 7),
        "inviter": ("Name of the admin who invited", "Ole Admin"),
    },
    Kind.STAFF_PASSWORD_RESET: {**_STAFF, "minutes": ("Minutes the link works", 60)},
}


@dataclass(frozen=True)
class Source:
    """A template's Jinja source: subject, text part, optional HTML part."""

    subject: str
    text: str
    html: str | None = None


@dataclass(frozen=True)
class Rendered:
    """A system mail ready to send; ``fell_back`` when the admin's version failed."""

    kind: Kind
    language: str
    subject: str
    text: str
    html: str | None
    fell_back: bool = False
    customised: bool = False


class TemplateRefused(InvalidInput):
    """A template that does not render; ``message`` is Jinja's reason, shown to the admin."""


def _environment(autoescape: bool) -> ImmutableSandboxedEnvironment:
    return ImmutableSandboxedEnvironment(
        undefined=StrictUndefined,
        autoescape=autoescape,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )


@cache
def _text_env() -> ImmutableSandboxedEnvironment:
    return _environment(autoescape=False)


@cache
def _html_env() -> ImmutableSandboxedEnvironment:
    return _environment(autoescape=True)


@lru_cache(maxsize=512)
def _compiled(source: str, html: bool) -> Template:
    """A template compiled once per source text: compiling costs milliseconds, rendering
    microseconds, and a sweep may mail hundreds of notices from the same template. Keyed
    by the text itself, so an admin's edit is simply another entry."""
    return (_html_env() if html else _text_env()).from_string(source)


def language_of(language: str | None) -> str:
    """The template language for a user's or identity's language ("de-AT" -> "de")."""
    short = (language or "").strip()[:2].lower()
    return short if short in LANGUAGES else FALLBACK_LANGUAGE


def parse_default(raw: str) -> Source:
    """A shipped file: ``Subject: ...``, a blank line, then the text part."""
    head, _blank, body = raw.partition("\n\n")
    if not head.startswith("Subject:"):
        raise ValueError("a system template file starts with a Subject: line")
    return Source(head.removeprefix("Subject:").strip(), body)


@cache
def default_source(kind: Kind, language: str) -> Source:
    """The shipped default (``app/mail/system_templates``); English when none in ``language``."""
    folder = resources.files("app.mail").joinpath("system_templates")
    for lang in (language_of(language), FALLBACK_LANGUAGE):
        path = folder.joinpath(lang, f"{kind.value}.txt")
        if path.is_file():
            source = parse_default(path.read_text(encoding="utf-8"))
            html_path = folder.joinpath(lang, f"{kind.value}.html")
            if html_path.is_file():
                source = Source(source.subject, source.text, html_path.read_text("utf-8"))
            return source
    raise LookupError(f"no default system template {kind.value}")


def sample_values(kind: Kind) -> dict[str, Any]:
    return {name: sample for name, (_what, sample) in VARIABLES[kind].items()}


def _one_line(text: str) -> str:
    return " ".join(text.split())[:SUBJECT_LIMIT]


def render_source(kind: Kind, source: Source, values: dict[str, Any], language: str) -> Rendered:
    """Render in the sandbox; raises ``TemplateError`` (incl. ``SecurityError``) on failure.

    Only the documented variables of ``kind`` are passed, whatever the caller gives.
    """
    allowed = {k: v for k, v in values.items() if k in VARIABLES[kind]}
    subject = _one_line(_compiled(source.subject, False).render(allowed))
    text = _compiled(source.text, False).render(allowed)
    html = None
    if source.html and source.html.strip():
        html = _compiled(source.html, True).render(allowed)
    return Rendered(kind, language, subject, text.strip("\n") + "\n", html)


def check_source(kind: Kind, source: Source) -> None:
    """Refuse a template that cannot render with sample values (``TemplateRefused``)."""
    if not source.subject.strip():
        raise TemplateRefused(_("The subject must not be empty."))
    if not source.text.strip():
        raise TemplateRefused(_("The text must not be empty."))
    for value in (source.subject, source.text, source.html or ""):
        if len(value) > SOURCE_LIMIT:
            raise TemplateRefused(
                _("A template part may have at most %(n)d characters.", n=SOURCE_LIMIT)
            )
    try:
        rendered = render_source(kind, source, sample_values(kind), FALLBACK_LANGUAGE)
    except TemplateError as error:
        raise TemplateRefused(describe(error)) from None
    except Exception as error:  # a filter raising on a sample value, e.g. int("x")
        raise TemplateRefused(f"{type(error).__name__}: {error}") from None
    if not rendered.subject:
        raise TemplateRefused(_("The subject renders empty."))


def describe(error: Exception) -> str:
    """Jinja's error as an admin can act on it: kind, message, line when known."""
    line = getattr(error, "lineno", None)
    what = f"{type(error).__name__}: {error}"  # Jinja's own words, English like its docs
    return _("%(error)s (line %(line)d)", error=what, line=line) if line else what


def stored(identity: SenderIdentity | None, kind: Kind, language: str) -> SystemTemplate | None:
    if identity is None or identity.id is None:
        return None
    return db.session.scalar(
        select(SystemTemplate).where(
            SystemTemplate.identity_id == identity.id,
            SystemTemplate.kind == kind.value,
            SystemTemplate.language == language_of(language),
        )
    )


def source_for(identity: SenderIdentity | None, kind: Kind, language: str) -> tuple[Source, bool]:
    """The admin's version if there is one (True), else the default (False)."""
    row = stored(identity, kind, language)
    if row is not None:
        return Source(row.subject, row.body_text, row.body_html), True
    return default_source(kind, language_of(language)), False


def render(
    kind: Kind,
    identity: SenderIdentity | None,
    language: str | None,
    values: dict[str, Any],
) -> Rendered:
    """The mail of ``kind`` for ``identity`` in ``language``; never fails for a template.

    An admin's template that fails now is replaced by the default, and the failure is
    logged with the template's key, so the mail still goes out.
    """
    lang = language_of(language)
    source, customised = source_for(identity, kind, lang)
    if customised:
        try:
            rendered = render_source(kind, source, values, lang)
            return replace(rendered, customised=True)
        except Exception as error:  # noqa: BLE001 - any failure: the default, never no mail
            log.warning(
                "system template %s/%s of identity %s failed, the default was used: %s",
                kind.value,
                lang,
                identity.id if identity is not None else None,
                describe(error),
            )
        default = render_source(kind, default_source(kind, lang), values, lang)
        return replace(default, fell_back=True)
    return render_source(kind, source, values, lang)


def default_identity() -> SenderIdentity | None:
    """The identity mail goes out from when nothing else decides: the default, else the
    oldest active one."""
    return db.session.scalar(
        select(SenderIdentity)
        .where(SenderIdentity.active.is_(True))
        .order_by(SenderIdentity.is_default.desc(), SenderIdentity.id)
    )


def save_template(
    actor: Actor,
    identity: SenderIdentity,
    kind: Kind,
    language: str,
    source: Source,
) -> SystemTemplate:
    """Store an admin's version after it rendered with sample values; never commits."""
    if language not in LANGUAGES:
        raise InvalidInput(_("Templates exist in %(languages)s.", languages=", ".join(LANGUAGES)))
    html = source.html if source.html and source.html.strip() else None
    source = Source(source.subject.strip(), source.text.replace("\r\n", "\n"), html)
    check_source(kind, source)
    row = stored(identity, kind, language)
    if row is None:
        row = SystemTemplate(identity_id=identity.id, kind=kind.value, language=language)
        db.session.add(row)
    row.subject, row.body_text, row.body_html = source.subject, source.text, source.html
    row.updated_at = utcnow()
    row.updated_by_id = actor.user_id
    db.session.flush()
    audit.record(
        actor,
        "system_template.save",
        "system_template",
        row.id,
        identity=identity.address,
        kind=kind.value,
        language=language,
    )
    return row


def reset_template(actor: Actor, identity: SenderIdentity, kind: Kind, language: str) -> bool:
    """Drop the admin's version so the default applies again; whether there was one."""
    row = stored(identity, kind, language)
    if row is None:
        return False
    audit.record(
        actor,
        "system_template.reset",
        "system_template",
        row.id,
        identity=identity.address,
        kind=kind.value,
        language=language,
    )
    db.session.delete(row)
    db.session.flush()
    return True
