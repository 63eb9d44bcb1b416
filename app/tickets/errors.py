"""Errors of the ticket domain."""

from __future__ import annotations

from app.errors import Conflict, InvalidInput


class TransitionNotAllowed(Conflict):
    """The status machine has no edge for this change by this kind of actor."""


class InvalidTicketChange(InvalidInput):
    """A field value the ticket cannot take (unknown priority, self-link, ...)."""
