"""Domain errors: each carries the HTTP status a view answers with and a message for people.

The message is written in the reader's language where it is raised: ``gettext`` (``_``)
with ``%(name)s`` placeholders, status and priority names through ``_(status.label)``.
Outside a request (jobs, commands) ``gettext`` gives English. Not translated on purpose:
texts that only reach logs, the audit log or stored data (stream entries such as "Moved to
the inbox.", SMTP answers, Jinja's own error text in a template check), and the vault
link refusals, which keep their English sentence as a key that the link pages translate
(``app.web.links.routes.SAID``).
"""

from __future__ import annotations


class DomainError(Exception):
    """A request the domain refuses; views show ``message`` with ``status``."""

    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(DomainError):
    status = 404


class Forbidden(DomainError):
    status = 403


class Conflict(DomainError):
    status = 409


class InvalidInput(DomainError):
    status = 422
