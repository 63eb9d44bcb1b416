"""Reply templates with placeholders, filled in for one ticket when an agent inserts one.

A template is Jinja source typed by an admin: ``Hello {{ customer_name }}, about
{{ ticket_number }} ...``. Why the sandbox and the fixed list: whoever may save a template
must not be able to run code on the server, and a template must not reach into models
(``{{ ticket.contact.user.password_hash }}``). So templates are rendered in Jinja's
``ImmutableSandboxedEnvironment`` with only the plain strings of ``PLACEHOLDERS``.

A template is checked when it is saved: it must render with sample values, so a typo in
a placeholder (``{{ customer_nme }}``) is refused with Jinja's reason, and the admin page
shows a preview. When the composer inserts one, it is filled in for that ticket and the
agent writing (``fill``); should that ever fail (an edit made straight in the database),
the agent gets the template's text as typed rather than an error: the agent reads the
text before sending it anyway.
"""

from __future__ import annotations

import logging
from functools import cache

from flask_babel import lazy_gettext as _l
from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from app.errors import InvalidInput
from app.models.mail import ReplyTemplate
from app.models.people import User
from app.models.tickets import Ticket
from app.urls import public_url

log = logging.getLogger(__name__)

SOURCE_LIMIT = 20_000

# name -> (what it is, sample for the preview)
PLACEHOLDERS: dict[str, tuple[object, str]] = {
    "customer_name": (
        _l("The customer's name (or address when no name is known)"),
        "Nora Customer",
    ),
    "ticket_number": (_l("The ticket number"), "T-104233"),
    "ticket_subject": (_l("The ticket's subject"), "Printer on fire"),
    "agent_name": (_l("Name of the agent writing the reply"), "Ada Agent"),
    "portal_url": (
        _l("The ticket in the customer portal"),
        "https://desk.example/portal/t/T-104233",
    ),
}


class TemplateRefused(InvalidInput):
    """A template that does not render; ``message`` says why (Jinja's words, and line)."""


@cache
def _environment() -> ImmutableSandboxedEnvironment:
    return ImmutableSandboxedEnvironment(
        undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True
    )


def sample_values() -> dict[str, str]:
    return {name: sample for name, (_what, sample) in PLACEHOLDERS.items()}


def render(body: str, values: dict[str, str]) -> str:
    """Render ``body`` with the documented placeholders only; raises ``TemplateError``."""
    allowed = {k: v for k, v in values.items() if k in PLACEHOLDERS}
    return _environment().from_string(body).render(allowed)


def check(body: str) -> str:
    """The preview with sample values, or ``TemplateRefused`` saying what is wrong."""
    if len(body) > SOURCE_LIMIT:
        raise TemplateRefused(f"A template may have at most {SOURCE_LIMIT} characters.")
    try:
        return render(body, sample_values())
    except TemplateError as error:
        line = getattr(error, "lineno", None)
        where = f" (line {line})" if line else ""
        raise TemplateRefused(f"{type(error).__name__}: {error}{where}") from None
    except Exception as error:  # a filter raising on a sample value
        raise TemplateRefused(f"{type(error).__name__}: {error}") from None


def values_for(ticket: Ticket, agent: User | None) -> dict[str, str]:
    """The placeholders' values for one ticket and the agent writing."""
    return {
        "customer_name": ticket.customer_label if ticket.customer_label != "—" else "",
        "ticket_number": ticket.number,
        "ticket_subject": ticket.subject,
        "agent_name": agent.name if agent is not None else "",
        "portal_url": public_url("portal.ticket", number=ticket.number),
    }


def fill(template: ReplyTemplate, ticket: Ticket | None, agent: User | None) -> str:
    """The text the composer inserts: filled in for ``ticket``, else as typed."""
    if ticket is None:
        return template.body
    try:
        return render(template.body, values_for(ticket, agent))
    except Exception as error:  # noqa: BLE001 - the agent gets the raw text, never an error
        log.warning("reply template %s failed for %s: %s", template.id, ticket.number, error)
        return template.body
