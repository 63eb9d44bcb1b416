"""Email addresses as the desk stores them: one rule for every place that takes one.

Deliberately plain: one @, no spaces, no header-breaking characters, a dotted domain, at
most 254 characters, stored lower-case. Whether the mailbox exists only the receiving
server knows; a bounce tells us later. Users, recipients, link recipients, sender
identities and compliance searches all use this, so an address accepted in one place is
accepted in every other.
"""

from __future__ import annotations

import re

from flask_babel import gettext as _

from app.errors import InvalidInput

MAX_LENGTH = 254
_ADDRESS = re.compile(
    r"[^@\s<>(),;:\"\[\]\\]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?\.[A-Za-z0-9-]{2,63}"
)


class InvalidAddress(InvalidInput):
    """The text is not an email address; the message names it."""


def is_address(text: str | None) -> bool:
    cleaned = (text or "").strip()
    return (
        0 < len(cleaned) <= MAX_LENGTH
        and ".." not in cleaned
        and _ADDRESS.fullmatch(cleaned) is not None
    )


def normalise_address(text: str | None) -> str:
    """Trim and lower-case an address, or raise ``InvalidAddress`` saying why."""
    cleaned = (text or "").strip()
    if not cleaned:
        raise InvalidAddress(_("Enter an email address."))
    if not is_address(cleaned):
        raise InvalidAddress(_("“%(text)s” is not an email address.", text=cleaned[:80]))
    return cleaned.lower()


def domain_of(address: str) -> str:
    """The part after the @ (for Message-IDs in the sender's domain)."""
    return address.rpartition("@")[2] or "localhost"
