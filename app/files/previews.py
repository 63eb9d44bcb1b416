"""Inline previews of attachments, where that is safe.

Decision (issue 11, point 14): only raster images whose type the vault sniffed from the
content itself (``vault._sniff``: PNG, JPEG, GIF, WebP) are shown inline, as thumbnails
on the agent's ticket page. The type a sender or browser declared never counts, and SVG
(script-capable, and sniffed as text anyway) is not on the list, so it always stays a
download; so do PDFs, office files and everything else. A preview goes through the same
checks as the download (staff session, the file belongs to the ticket in the URL, not
erased) and is answered with the download's guard headers (``Content-Security-Policy:
sandbox``, ``X-Content-Type-Options: nosniff``), ``inline`` instead of ``attachment``,
and the allowlisted type. Each preview fetch is in the download audit like any other
read of the file; the browser may keep it privately for a few minutes, so the ticket
page's 5-second poll does not fetch (and audit) the thumbnails again and again.
"""

from __future__ import annotations

from flask import Request, Response
from flask_babel import gettext as _

from app.errors import NotFound
from app.files.names import content_disposition
from app.files.serving import DownloadAudit, file_response
from app.models.files import VaultFile

PREVIEWABLE = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
MAX_PREVIEW_BYTES = 10 * 1024 * 1024  # larger images stay a download (and a slow page)
PREVIEW_CACHE = "private, max-age=600"


def preview_type(file: VaultFile) -> str | None:
    """The allowlisted type to serve ``file`` inline as, or None when it stays a download."""
    if file.is_erased or file.size > MAX_PREVIEW_BYTES:
        return None
    mime = (file.mime_type or "").split(";")[0].strip().lower()
    return mime if mime in PREVIEWABLE else None


def is_previewable(file: VaultFile) -> bool:
    return preview_type(file) is not None


def preview_response(file: VaultFile, request: Request, audit: DownloadAudit) -> Response:
    """The file inline, for an ``<img>``; anything not previewable is not found here."""
    mime = preview_type(file)
    if mime is None:
        raise NotFound(_("There is no preview of this file; download it instead."))
    response = file_response(file, request, audit)
    response.headers["Content-Type"] = mime
    response.headers["Content-Disposition"] = content_disposition(file.display_name, inline=True)
    response.headers["Cache-Control"] = PREVIEW_CACHE
    return response
