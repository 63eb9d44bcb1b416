"""HTTP responses for vault files: streaming, ranges, validators, safe headers."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from flask import Request, Response, stream_with_context

from app.files.names import content_disposition
from app.files.store import get_vault
from app.models.files import VaultFile

STREAM_HEADERS = {
    "Cache-Control": "private, no-store",
    # Opened directly, a file could be HTML or SVG from our origin: forbid it everything.
    "Content-Security-Policy": "sandbox; default-src 'none'",
    "X-Content-Type-Options": "nosniff",
}


def etag_of(file: VaultFile) -> str:
    return file.sha256[:32]


def file_response(
    file: VaultFile,
    request: Request,
    *,
    on_serve: Callable[[str | None], None] | None = None,
) -> Response:
    """Stream ``file`` decrypted, honouring Range/If-Range; ``on_serve`` gets the range.

    Only single ranges are served partially (as most file servers do); a request with
    several ranges gets the whole file, which RFC 9110 allows.
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
            if on_serve is not None:
                on_serve("unsatisfiable")
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
    if on_serve is not None:
        on_serve(byte_range)
    if request.method == "HEAD" or stop == start:
        body: Iterator[bytes] | list[bytes] = []
    else:
        body = stream_with_context(get_vault().read_range(file.blob_id, start, stop - 1))
    response = Response(body, status=status, headers=headers, content_type=file.mime_type)
    response.direct_passthrough = True
    return response
