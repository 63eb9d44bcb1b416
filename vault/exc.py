"""Exceptions raised by :mod:`vault`.

Every error derives from :class:`VaultError` so that the web layer can turn
any vault failure into a single, generic response without leaking which
check failed; the subclasses exist for callers that must react differently
(e.g. answer 413 for :class:`FileTooLarge`, 404 for :class:`BlobNotFound`).
"""

from __future__ import annotations


class VaultError(Exception):
    """Base class of every error the vault raises on purpose."""


class IntegrityError(VaultError):
    """Stored data failed authentication.

    Raised for a modified, truncated, extended, reordered or foreign chunk, a
    modified header, or a data key sealed under different key material. The
    causes are deliberately not distinguished further: telling an attacker
    *which* check failed only helps them.
    """


#: Alias kept because "tampered" is how operators tend to search for it.
TamperedError = IntegrityError


class UnknownKeyError(VaultError):
    """A header names a key-encryption key that the key ring does not hold."""

    def __init__(self, key_id: str) -> None:
        super().__init__(f"key-encryption key {key_id!r} is not in the key ring")
        self.key_id = key_id


class KeyInUseError(VaultError):
    """A key-encryption key cannot be retired because data still depends on it."""

    def __init__(self, key_id: str, reason: str) -> None:
        super().__init__(f"key-encryption key {key_id!r} cannot be retired: {reason}")
        self.key_id = key_id


class BlobNotFound(VaultError):
    """No stored blob has this id (never stored, or already shredded)."""

    def __init__(self, blob_id: str, detail: str = "") -> None:
        message = f"blob {blob_id!r} not found"
        super().__init__(f"{message}: {detail}" if detail else message)
        self.blob_id = blob_id


class InvalidBlobId(VaultError, ValueError):
    """A string that was offered as a blob id does not match the strict id format."""


class FileTooLarge(VaultError):
    """More bytes arrived than the caller allowed; nothing was kept."""

    def __init__(self, max_size: int) -> None:
        super().__init__(f"file exceeds the limit of {max_size} bytes")
        self.max_size = max_size


class InvalidRange(VaultError, ValueError):
    """A requested byte range does not overlap the stored plaintext."""

    def __init__(self, start: int, end: int, size: int) -> None:
        super().__init__(f"byte range {start}-{end} is not satisfiable for a file of {size} bytes")
        self.start = start
        self.end = end
        self.size = size


class ConfigurationError(VaultError, ValueError):
    """A key-ring string, key directory or storage URL is malformed."""


class BadLinkToken(VaultError):
    """A link token was forged, altered, expired or signed for another purpose."""
