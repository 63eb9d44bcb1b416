"""Opaque tokens for shareable download links.

A token only carries a random link id, signed so that ids cannot be guessed
or forged; everything else (which file, expiry, revocation, download count)
lives in the app's database row for that id. Revoking a link is therefore a
database update, and a leaked secret key alone does not reveal any file.

Only the exact bytes the signer produced are accepted. itsdangerous decodes base64
leniently (padding, characters outside the alphabet, non-ASCII characters and the unused
low bits of a segment's last character are all ignored), so without a check one token
would have dozens of spellings that all verify. Each spelling would then look like a
different link to anything that keys on the token (rate limits, caches, logs), and a link
could be opened through URLs its sender never issued. :meth:`LinkSigner.verify` therefore
re-encodes every segment and refuses the token unless that canonical encoding equals the
input byte for byte.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable

from itsdangerous import BadData, URLSafeTimedSerializer
from itsdangerous.encoding import base64_decode, base64_encode

from .exc import BadLinkToken

__all__ = ["LINK_ID_BYTES", "LinkSigner", "is_canonical", "new_link_id"]

LINK_ID_BYTES = 16
_DEFAULT_SALT = "vaultdesk.vault.download-link"
# One segment as base64_encode writes it: URL-safe alphabet, ASCII only, no padding.
_SEGMENT = re.compile(r"[A-Za-z0-9_-]+")
_SEGMENTS = 3  # payload, timestamp, signature


def is_canonical(token: str) -> bool:
    """Whether ``token`` is spelled exactly as the signer spells its tokens.

    A token is ``payload.timestamp.signature`` (the payload prefixed with ``.`` when
    itsdangerous compressed it). Every segment must survive a decode/encode round trip
    unchanged, which rules out padding, foreign characters and non-zero unused bits.
    """
    body = token[1:] if token.startswith(".") else token
    segments = body.split(".")
    if len(segments) != _SEGMENTS:
        return False
    for segment in segments:
        if not _SEGMENT.fullmatch(segment):
            return False
        try:
            if base64_encode(base64_decode(segment)) != segment.encode("ascii"):
                return False
        except BadData:
            return False
    return True


def new_link_id() -> str:
    """Return a fresh random link id (128 bits, URL safe) for a new database row."""
    return secrets.token_urlsafe(LINK_ID_BYTES)


class LinkSigner:
    """Signs link ids into tokens and verifies tokens back into link ids.

    A dedicated salt keeps these signatures useless as, say, session cookies
    signed with the same secret key. Passing old secrets in ``fallback_keys``
    lets the app rotate its secret without breaking links already sent out.
    """

    def __init__(
        self,
        secret_key: str | bytes,
        *,
        salt: str = _DEFAULT_SALT,
        fallback_keys: Iterable[str | bytes] = (),
    ) -> None:
        if not secret_key:
            raise ValueError("a non-empty secret key is required")
        # itsdangerous signs with the last key and accepts all of them.
        keys = [*reversed(list(fallback_keys)), secret_key]
        self._serializer = URLSafeTimedSerializer(
            [key.encode() if isinstance(key, str) else key for key in keys], salt=salt
        )

    def sign(self, link_id: str | None = None) -> tuple[str, str]:
        """Return ``(link_id, token)``; a new random id is drawn when none is given."""
        link_id = link_id or new_link_id()
        return link_id, self._serializer.dumps(link_id)

    def verify(self, token: str, *, max_age: int | None = None) -> str:
        """Return the link id inside ``token``, or raise :class:`BadLinkToken`.

        ``max_age`` (seconds) is an optional ceiling on top of the expiry the
        database row holds, for links that must die even if the row is not
        cleaned up. Any spelling of a valid token other than the one :meth:`sign`
        produced is refused like a forgery (see the module docstring).
        """
        if not is_canonical(token):
            raise BadLinkToken("invalid or expired link")
        try:
            link_id = self._serializer.loads(token, max_age=max_age)
        except BadData:
            raise BadLinkToken("invalid or expired link") from None
        if not isinstance(link_id, str) or not link_id:
            raise BadLinkToken("invalid or expired link")
        return link_id
