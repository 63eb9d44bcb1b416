"""File names from the outside world: kept as given, shown and sent only once made safe.

A name is never used as a path (the vault names blobs itself), but it is shown in pages,
mails and Content-Disposition headers, where control characters, bidirectional overrides
(``invoice\u202egnp.exe`` shows as ``invoiceexe.png``) and path parts do harm.
"""

from __future__ import annotations

import unicodedata
from urllib.parse import quote

MAX_DISPLAY = 255
# Bidirectional embeddings, overrides and isolates, plus the invisible marks that
# make one name look like another.
_BIDI = set(range(0x202A, 0x202F)) | set(range(0x2066, 0x206A)) | {0x200E, 0x200F, 0x061C}
_INVISIBLE = {0x200B, 0x200C, 0x200D, 0x2060, 0xFEFF}


def display_name(original: str) -> str:
    """The last path segment, without control or direction characters, at most 255 long."""
    name = original.replace("\\", "/").rsplit("/", 1)[-1]
    name = unicodedata.normalize("NFC", name)
    name = "".join(
        ch
        for ch in name
        if ord(ch) not in _BIDI
        and ord(ch) not in _INVISIBLE
        and unicodedata.category(ch) not in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp")
    )
    name = " ".join(name.split()).strip(" .")
    if not name:
        return "unnamed"
    if len(name) > MAX_DISPLAY:
        stem, dot, ext = name.rpartition(".")
        if dot and 0 < len(ext) <= 16:
            name = stem[: MAX_DISPLAY - len(ext) - 2] + "…." + ext
        else:
            name = name[: MAX_DISPLAY - 1] + "…"
    return name


def ascii_fallback(name: str) -> str:
    """For old clients that ignore ``filename*``: ASCII only, no quotes or separators."""
    plain = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    plain = "".join(ch if ch.isalnum() or ch in " ._-()+" else "_" for ch in plain).strip(" .")
    return plain or "download"


def content_disposition(name: str, *, inline: bool = False) -> str:
    """An RFC 6266 header value with an ASCII fallback and the UTF-8 name (RFC 5987)."""
    kind = "inline" if inline else "attachment"
    safe = display_name(name)
    return f"{kind}; filename=\"{ascii_fallback(safe)}\"; filename*=UTF-8''{quote(safe, safe='')}"
