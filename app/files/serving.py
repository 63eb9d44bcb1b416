"""HTTP responses for vault files: streaming, ranges, validators, safe headers, the audit.

Every file response, through a link or a staff or portal session, leaves one row in the
download audit, and that row tells what really happened to the bytes:

- ``served`` only once the last byte was handed to the server;
- ``interrupted`` when the stream ended early, with the reason: the link was revoked or
  expired meanwhile, the file was erased, the client went away (``client_gone``), a
  chunk failed authentication (``corrupt``) or could not be read (``unreadable``).
  The row is written as ``interrupted``/``in_progress`` before the first byte leaves, so
  a worker that dies mid-stream leaves a row that says so rather than none at all;
- ``viewed`` for a HEAD, which sends no bytes; ``refused``/``bad_range`` for a range
  outside the file.

A grant is checked once per request, but a single request can stream gigabytes for an
hour. So while streaming, at least every ``CHECK_SECONDS`` or ``CHECK_BYTES`` the stream
re-reads the link's state (or, without a link, whether the file was erased) and ends the
response when it is no longer allowed: the client gets fewer bytes than Content-Length
said, which every HTTP client reports as a truncated download.

The stream does not use the request's database session: by the time a WSGI server pulls
the body, the view has returned and the request may be torn down (``stream_with_context``
would keep it, and its session, alive for the whole download). Each check and the final
audit update use a short connection of their own from the engine's pool.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from flask import Request, Response
from sqlalchemy import Connection, Engine, select, update

from app.extensions import db
from app.files.names import content_disposition
from app.files.store import get_vault
from app.files.vault_links import Client, record
from app.models.files import (
    DownloadEvent,
    DownloadOutcome,
    VaultFile,
    VaultLink,
    VaultLinkState,
)
from app.models.types import utcnow
from vault import IntegrityError, VaultError

log = logging.getLogger(__name__)

STREAM_HEADERS = {
    "Cache-Control": "private, no-store",
    # Opened directly, a file could be HTML or SVG from our origin: forbid it everything.
    "Content-Security-Policy": "sandbox; default-src 'none'",
    "X-Content-Type-Options": "nosniff",
}

CHECK_SECONDS = 1.0  # a revoked link stops a slow download within about this long
CHECK_BYTES = 4 * 1024 * 1024  # ... and a fast one within about this many bytes
IN_PROGRESS = "in_progress"
# A granted download may finish after the limit is reached: it was counted when it began.
STREAMABLE = {VaultLinkState.ACTIVE.value, VaultLinkState.EXHAUSTED.value}

# Returns why the stream must stop now, or None to go on; gets a fresh connection.
StopCheck = Callable[[Connection], str | None]


@dataclass(frozen=True)
class DownloadAudit:
    """Who is asking, for the audit row of the response: through a link, or as a user."""

    client: Client
    link: VaultLink | None = None
    user_id: int | None = None


def etag_of(file: VaultFile) -> str:
    return file.sha256[:32]


def _link_check(link_id: str) -> StopCheck:
    def check(connection: Connection) -> str | None:
        state = connection.execute(
            select(VaultLink.state(utcnow())).where(VaultLink.id == link_id)
        ).scalar_one_or_none()
        if state is None:
            return "gone"
        return None if state in STREAMABLE else str(state)

    return check


def _file_check(file_id: int) -> StopCheck:
    def check(connection: Connection) -> str | None:
        row = connection.execute(
            select(VaultFile.erased_at).where(VaultFile.id == file_id)
        ).one_or_none()
        if row is None or row.erased_at is not None:
            return VaultLinkState.ERASED.value
        return None

    return check


def _record(
    file: VaultFile,
    audit: DownloadAudit,
    outcome: DownloadOutcome,
    *,
    reason: str | None = None,
    byte_range: str | None = None,
) -> int:
    """Write the response's audit row now (the caller has nothing else to commit)."""
    event = record(
        audit.link,
        file,
        outcome,
        audit.client,
        reason=reason,
        byte_range=byte_range,
        user_id=audit.user_id,
    )
    db.session.flush()
    event_id = event.id
    db.session.commit()
    return event_id


def _watched(
    pieces: Iterator[bytes], engine: Engine, event_id: int, stop_check: StopCheck
) -> Iterator[bytes]:
    """Yield ``pieces`` while ``stop_check`` allows; settle the audit row at the end.

    ``finally`` runs however the stream ends: exhausted (served), stopped by a check,
    failed in the vault, or closed by the server because the client went away
    (``GeneratorExit`` at the ``yield``).
    """
    outcome, reason = DownloadOutcome.INTERRUPTED, "client_gone"
    checked_at, unchecked = time.monotonic(), 0
    try:
        for piece in pieces:
            if unchecked >= CHECK_BYTES or time.monotonic() - checked_at >= CHECK_SECONDS:
                with engine.connect() as connection:
                    stop = stop_check(connection)
                if stop is not None:
                    reason = stop
                    return
                checked_at, unchecked = time.monotonic(), 0
            yield piece
            unchecked += len(piece)
        outcome, reason = DownloadOutcome.SERVED, None
    except VaultError as error:
        reason = "corrupt" if isinstance(error, IntegrityError) else "unreadable"
        log.warning("download audit row %s cut short: %s", event_id, error)
    except Exception:
        reason = "error"
        raise
    finally:
        close = getattr(pieces, "close", None)
        if close is not None:
            close()
        with engine.begin() as connection:
            connection.execute(
                update(DownloadEvent)
                .where(DownloadEvent.id == event_id)
                .values(outcome=outcome.value, reason=reason)
            )


def file_response(file: VaultFile, request: Request, audit: DownloadAudit) -> Response:
    """Stream ``file`` decrypted, honouring Range/If-Range, and audit the response.

    Only single ranges are served partially (as most file servers do); a request with
    several ranges gets the whole file, which RFC 9110 allows. Commits the session: the
    audit row must exist before the first byte leaves.
    """
    size = file.size
    etag = etag_of(file)
    headers = {
        **STREAM_HEADERS,
        "Accept-Ranges": "bytes",
        "ETag": f'"{etag}"',
        "Content-Disposition": content_disposition(file.display_name),
    }
    byte_range = None
    start, stop = 0, size
    wanted = request.range
    # If-Range: only a matching ETag keeps the range (we send no Last-Modified to match).
    range_applies = wanted is not None and (
        "If-Range" not in request.headers or request.if_range.etag == etag
    )
    if range_applies and wanted is not None:
        bounds = wanted.range_for_length(size) if len(wanted.ranges) == 1 else None
        if bounds is None and len(wanted.ranges) == 1:
            _record(file, audit, DownloadOutcome.REFUSED, reason="bad_range")
            return Response(
                "The requested range is outside the file.",
                status=416,
                headers={**STREAM_HEADERS, "Content-Range": f"bytes */{size}"},
                mimetype="text/plain",
            )
        if bounds is not None:
            start, stop = bounds
            byte_range = f"{start}-{stop - 1}"
            headers["Content-Range"] = f"bytes {start}-{stop - 1}/{size}"
    status = 206 if byte_range else 200
    headers["Content-Length"] = str(stop - start)
    body: Iterator[bytes] | list[bytes]
    if request.method == "HEAD":
        _record(file, audit, DownloadOutcome.VIEWED, byte_range=byte_range)
        body = []
    elif stop == start:
        _record(file, audit, DownloadOutcome.SERVED, byte_range=byte_range)
        body = []
    else:
        pieces = get_vault().read_range(file.blob_id, start, stop - 1)
        event_id = _record(
            file, audit, DownloadOutcome.INTERRUPTED, reason=IN_PROGRESS, byte_range=byte_range
        )
        check = _link_check(audit.link.id) if audit.link else _file_check(file.id)
        body = _watched(pieces, db.engine, event_id, check)
    response = Response(body, status=status, headers=headers, content_type=file.mime_type)
    response.direct_passthrough = True
    return response
