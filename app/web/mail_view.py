"""What the ticket templates ask about received mail, for one audience (agents or portal).

A thin adapter between ``app.mail.display`` (the rules) and the templates (the markup):
it knows the audience's URLs and wraps already-sanitised HTML as ``Markup``.
"""

from __future__ import annotations

from collections.abc import Iterable

from flask import url_for
from flask_babel import gettext as _
from markupsafe import Markup

from app.mail import display
from app.models.files import VaultFile
from app.models.tickets import StreamEntry, Ticket


class MailView:
    """Per page: ``agent`` sees originals and may ask for remote images; ``portal`` never."""

    def __init__(self, ticket: Ticket, audience: str, entries: Iterable[StreamEntry]) -> None:
        self.ticket = ticket
        self.audience = audience
        self.agent = audience == "agent"
        self.originals = display.entries_with_original(ticket) if self.agent else set()
        self.image_origins = display.remote_origins(entries) if self.agent else []

    def _inline_url(self, public_id: str) -> str:
        endpoint = "agent.inline_image" if self.agent else "portal.inline_image"
        return url_for(endpoint, number=self.ticket.number, public_id=public_id)

    def body(self, entry: StreamEntry) -> Markup | None:
        """The entry's HTML (sanitised again here), or None when it has only text."""
        html = display.body_html(
            entry,
            inline_url=self._inline_url,
            remote_allowed=self.agent,
            quoted_summary=_("Show quoted text"),
        )
        return Markup(html) if html is not None else None  # noqa: S704 -- sanitised by nh3

    def text(self, entry: StreamEntry) -> tuple[str, str]:
        return display.text_parts(entry)

    def files(self, entry: StreamEntry) -> list[VaultFile]:
        return display.listed_files(entry)

    def has_original(self, entry: StreamEntry) -> bool:
        return self.agent and entry.id in self.originals

    def offers_remote_images(self, entry: StreamEntry) -> bool:
        """Whether to show the "Show remote images" button (agents, not yet asked)."""
        return (
            self.agent
            and display.is_mail(entry)
            and not display.remote_images_shown(entry)
            and display.has_remote_images(entry)
        )

    def blocked_remote_images(self, entry: StreamEntry) -> bool:
        """Customers are told images were left out, agents get the button instead."""
        return not self.agent and display.has_remote_images(entry)
