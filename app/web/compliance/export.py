"""CSV exports of the compliance lists: streamed, and safe to open in a spreadsheet.

Each export takes the same filters as the list on screen and writes every matching row
(not one page). The body is generated row by row inside the request context, so a large
export neither waits for the whole query nor holds it in memory.

Formula injection: a cell that starts with ``=``, ``+``, ``-`` or ``@`` (or a tab or
carriage return, which some spreadsheets skip before those) is run as a formula by Excel,
LibreOffice and Google Sheets. Audit rows quote what customers and mail senders typed
(subjects, file names, reasons), so every such cell gets a leading apostrophe, as OWASP
advises: the value stays readable and is never evaluated. The file starts with a UTF-8
byte order mark because Excel otherwise reads UTF-8 as the machine's legacy code page.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from flask import Response, stream_with_context

from app.models.types import utcnow

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> str:
    """A cell's text, defused if a spreadsheet would read it as a formula."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def _lines(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")

    def line(cells: Sequence[Any]) -> str:
        writer.writerow([safe_cell(cell) for cell in cells])
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    yield "\ufeff" + line(header)
    for row in rows:
        yield line(row)


def csv_response(name: str, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Response:
    """Stream ``rows`` as ``name-YYYYMMDD-HHMM.csv`` (a download, never shown inline)."""
    stamp = utcnow().strftime("%Y%m%d-%H%M")
    response = Response(
        stream_with_context(_lines(header, rows)),
        mimetype="text/csv",
        content_type="text/csv; charset=utf-8",
    )
    response.headers["Content-Disposition"] = f'attachment; filename="{name}-{stamp}.csv"'
    response.headers["Cache-Control"] = "no-store"
    return response
