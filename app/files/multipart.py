"""Pull-based streaming reader for ``multipart/form-data`` upload bodies.

Why not ``request.files``: werkzeug's form parser spools every upload larger
than 500 KB to a temporary file in clear text before the view runs, and every
smaller one to memory. Customer files must only ever exist encrypted at rest,
so upload views read the body themselves with :func:`iter_parts`, which hands
each file to the caller as a stream (:class:`FilePart`) that pulls bytes off
the request on demand, 64 KiB at a time, straight into
:meth:`vault.Vault.put`. Nothing here writes to disk and nothing holds more
than one block of a file in memory.

Parsing is done by werkzeug's sans-IO :class:`~werkzeug.sansio.multipart.MultipartDecoder`;
this module adds the I/O loop, limits that bound the memory a hostile client can
make us spend, exact file names, and messages a person can act on.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO
from urllib.parse import unquote

from werkzeug.exceptions import ClientDisconnected
from werkzeug.http import parse_options_header
from werkzeug.sansio.multipart import (
    Data,
    Epilogue,
    Event,
    Field,
    File,
    MultipartDecoder,
    NeedData,
    Preamble,
    State,
)

from app.errors import InvalidInput

__all__ = [
    "BLOCK_SIZE",
    "DEFAULT_MAX_FIELDS",
    "DEFAULT_MAX_FIELD_SIZE",
    "DEFAULT_MAX_FILES",
    "FilePart",
    "FormField",
    "UploadError",
    "iter_parts",
]

BLOCK_SIZE = 64 * 1024
"""How much is read from the request at a time; also the most of a file held in memory."""

DEFAULT_MAX_FIELD_SIZE = 64 * 1024
DEFAULT_MAX_FIELDS = 100
DEFAULT_MAX_FILES = 20

# The decoder buffers a preamble or a part's headers whole until it finds their
# end; without a cap a client could make it buffer the entire body.
MAX_HEADER_SIZE = 16 * 1024
# Whitespace a sender may put after a boundary (RFC 2046 "transport padding")
# that is still recognised when a read ends inside it; see _BodyReader._dangling.
MAX_PADDING = 256
# RFC 2046 allows 70 characters; werkzeug's own test client gets close to that,
# so a little slack avoids refusing well-meaning clients while still bounding it.
MAX_BOUNDARY_LENGTH = 200
_BOUNDARY_RE = re.compile(r"[\x20-\x7e]*[\x21-\x7e]")


class UploadError(InvalidInput):
    """The upload body cannot be accepted; ``message`` says why in plain words (HTTP 422)."""


@dataclass(frozen=True, slots=True)
class FormField:
    """A text field of the form, decoded as UTF-8."""

    name: str
    value: str


def iter_parts(
    stream: BinaryIO,
    content_type: str,
    *,
    max_field_size: int = DEFAULT_MAX_FIELD_SIZE,
    max_fields: int = DEFAULT_MAX_FIELDS,
    max_files: int = DEFAULT_MAX_FILES,
) -> Iterator[FormField | FilePart]:
    """Yield the parts of a ``multipart/form-data`` body in the order the client sent them.

    In a Flask view call it as ``iter_parts(request.stream, request.content_type or "")``
    and do not touch ``request.form``, ``request.files``, ``request.values`` or
    ``request.get_data()`` first, nor let anything else do so (Flask-WTF's global
    CSRF check reads ``request.form``, so upload views must be exempt from it and
    check the token themselves): any of those runs werkzeug's spooling form parser,
    which writes uploads to disk in clear text and leaves nothing for this reader.

    ``stream`` must end where the body ends, as ``request.stream`` does.

    Text fields arrive as :class:`FormField`, files as :class:`FilePart`. Read each
    file before asking for the next part; whatever is left unread is discarded
    when the iterator moves on (so ``continue`` skips a file cheaply, without
    buffering it). Every file input yields a part, even one the user left empty
    (see :attr:`FilePart.is_empty_selection`); parts of both kinds count toward
    their limits. Raises :class:`UploadError` for a body that is not
    multipart form data, is malformed, ends early, or exceeds ``max_field_size``
    bytes in one text field, ``max_fields`` text fields or ``max_files`` files.

    The content type is checked at once; the body is read only while iterating.
    """
    boundary = _boundary_of(content_type)
    return _iter_parts(
        _BodyReader(stream, boundary),
        max_field_size=max_field_size,
        max_fields=max_fields,
        max_files=max_files,
    )


class FilePart:
    """One uploaded file: what the client claimed about it, and its bytes as a stream.

    ``filename`` is exactly what the client sent (after undoing the header's own
    quoting): it may be empty, contain path separators, control or bidi
    characters, or be very long. It is untrusted display data, never a path;
    sanitising it is the caller's job. ``content_type`` is the client's claim and
    only informational; the vault sniffs the real type from the bytes.

    ``read``/``readinto`` pull the bytes from the request as they are asked for.
    Once the iterator has moved to the next part, a fully read part keeps
    returning ``b""``; a part that was skipped raises ``ValueError`` rather than
    pretend a truncated file is whole.
    """

    def __init__(self, reader: _BodyReader, name: str, filename: str, content_type: str) -> None:
        self.name = name
        self.filename = filename
        self.content_type = content_type
        self._reader = reader
        self._chunk = b""  # the decoder's current slice of this part, not yet handed out
        self._offset = 0
        self._received = 0  # bytes of this part taken from the decoder
        self._complete = False  # the decoder has given us this part's last bytes
        self._discarded = False

    def __repr__(self) -> str:
        return f"FilePart(name={self.name!r}, filename={self.filename!r})"

    @property
    def is_empty_selection(self) -> bool:
        """True for the part a browser sends for a file input left empty.

        That is an empty filename with no bytes at all. Checking may read from the
        request (up to the first block of the part), so it can raise
        :class:`UploadError` like ``read`` does; it never consumes anything.
        """
        if self.filename != "":
            return False
        while not self._complete and self._received == 0:
            self._pull()
        return self._complete and self._received == 0

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1, /) -> bytes:
        """Return up to ``size`` bytes (fewer near a block edge), ``b""`` at the end.

        ``read()`` or ``read(-1)`` returns the whole rest of the file in memory:
        fine for small parts, wrong for uploads; pass a size or use ``readinto``.
        """
        if size is None or size < 0:
            return b"".join(iter(lambda: self.read(BLOCK_SIZE), b""))
        if size == 0 or not self._fill():
            return b""
        chunk, offset = self._chunk, self._offset
        if offset == 0 and size >= len(chunk):
            self._chunk = b""
            return chunk
        end = min(len(chunk), offset + size)
        self._offset = end
        return chunk[offset:end]

    def readinto(self, buffer: bytearray | memoryview, /) -> int:
        """Copy up to ``len(buffer)`` bytes into ``buffer``; 0 means the file has ended."""
        view = memoryview(buffer).cast("B")
        if not len(view) or not self._fill():
            return 0
        count = min(len(view), len(self._chunk) - self._offset)
        with memoryview(self._chunk) as chunk:
            view[:count] = chunk[self._offset : self._offset + count]
        self._offset += count
        return count

    def _fill(self) -> bool:
        """Make sure unread bytes are at hand; False once the part is exhausted."""
        if self._discarded:
            raise ValueError(
                f"{self!r} was skipped: read each file before asking for the next part"
            )
        while self._offset >= len(self._chunk):
            if self._complete:
                return False
            self._pull()
        return True

    def _pull(self) -> None:
        data, more = self._reader.next_data(self._describe())
        self._chunk, self._offset = data, 0
        self._received += len(data)
        self._complete = not more

    def _finish(self) -> None:
        """Called by the iterator before it moves on: drop what the caller left unread."""
        unread = self._offset < len(self._chunk)
        self._chunk, self._offset = b"", 0
        while not self._complete:
            self._pull()
            unread = unread or bool(self._chunk)
            self._chunk = b""
        self._discarded = unread

    def _describe(self) -> str:
        return f"the file {_shown(self.filename)}" if self.filename else "a file"


def _iter_parts(
    reader: _BodyReader, *, max_field_size: int, max_fields: int, max_files: int
) -> Iterator[FormField | FilePart]:
    fields = files = 0
    while (event := reader.next_part()) is not None:
        name, filename = _names(event)
        if filename is not None:
            files += 1
            if files > max_files:
                raise UploadError(f"Too many files: at most {max_files} can be uploaded at once.")
            part = FilePart(reader, name, filename, event.headers.get("Content-Type", ""))
            yield part
            part._finish()
        else:
            fields += 1
            if fields > max_fields:
                raise UploadError(f"Too many form fields: at most {max_fields} are accepted.")
            yield FormField(name, _read_field(reader, name, max_field_size))
    reader.discard_epilogue()


def _read_field(reader: _BodyReader, name: str, limit: int) -> str:
    value = bytearray()
    more = True
    while more:
        data, more = reader.next_data(f"the field {_shown(name)}")
        value += data
        if len(value) > limit:
            raise UploadError(
                f"The form field {_shown(name)} is too long: at most {_size(limit)} "
                "of text is accepted per field."
            )
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        raise UploadError(f"The form field {_shown(name)} is not valid UTF-8 text.") from None


class _BodyReader:
    """Feeds the decoder from the stream one block at a time, only when it asks for more."""

    def __init__(self, stream: BinaryIO, boundary: bytes) -> None:
        self._stream = stream
        self._decoder = MultipartDecoder(boundary)
        self._started = False
        # werkzeug 3.1's decoder mis-parses some buffers that end part-way into a
        # delimiter, so where a network read ends changes the result
        # (pallets/werkzeug#3285). Two shapes are never handed to it; more data is
        # fed first (see _must_wait):
        # - a line break, "--", the boundary and then "-" or blanks: it hands out
        #   the delimiter's CR as data, then matches the rest as an LF-only
        #   delimiter; the part gains a stray b"\r" (or, with blanks, the whole
        #   delimiter);
        # - a part's first bytes, when they could still grow into the delimiter
        #   (an empty part sent without its own line break, as werkzeug's encoder
        #   does): it hands out "--" and the part swallows the parts after it.
        self._marker = b"--" + boundary
        self._dangling = re.compile(rb"(?:\r\n|\r|\n)--" + re.escape(boundary) + rb"(?:-|[ \t]*)\Z")
        self._dangling_window = len(boundary) + 4 + MAX_PADDING

    def next_part(self) -> Field | File | None:
        """The next part's headers, or None after the closing boundary."""
        while not self._finished():
            event = self._next_event("the form data")
            if isinstance(event, Field | File):
                return event
            if isinstance(event, Epilogue):
                break
            if not isinstance(event, Preamble):
                raise UploadError("The form data is malformed: a part is missing its headers.")
        return None

    def next_data(self, what: str) -> tuple[bytes, bool]:
        """The next slice of the current part's body and whether more of it follows."""
        event = self._next_event(what)
        if not isinstance(event, Data):
            raise UploadError("The form data is malformed: a part's body is missing.")
        return event.data, event.more_data

    def discard_epilogue(self) -> None:
        """Read to the end of the body so the connection can serve the next request.

        The decoder would buffer an epilogue whole (it only emits it once told the
        body has ended), so it is read here block by block and thrown away.
        """
        try:
            while self._stream.read(BLOCK_SIZE):
                continue
        except ClientDisconnected:
            return

    def _finished(self) -> bool:
        return self._decoder.state in (State.EPILOGUE, State.COMPLETE)

    def _next_event(self, what: str) -> Event:
        while True:
            if self._must_wait():
                self._feed(what)
                continue
            try:
                event = self._decoder.next_event()
            except ValueError as error:  # includes UnicodeDecodeError from part headers
                raise UploadError(_malformed(error)) from None
            if not isinstance(event, NeedData):
                return event
            self._feed(what)

    def _must_wait(self) -> bool:
        """True while the decoder's buffer ends where the decoder would mis-parse it."""
        state, buffer = self._decoder.state, self._decoder.buffer
        if state is State.DATA_START:
            lead = _LINE_BREAK_RE.match(buffer)
            begin = lead.end() if lead else 0
            if len(buffer) - begin < len(self._marker) and self._marker.startswith(buffer[begin:]):
                return True
        elif state is not State.DATA:
            return False
        start = max(0, len(buffer) - self._dangling_window)
        return self._dangling.search(buffer, start) is not None

    def _feed(self, what: str) -> None:
        state, buffered = self._decoder.state, len(self._decoder.buffer)
        if state is State.PREAMBLE and buffered > MAX_HEADER_SIZE:
            raise UploadError(
                "The form data is malformed: it does not start with the boundary "
                "announced in its Content-Type header."
            )
        if state is State.PART and buffered > MAX_HEADER_SIZE:
            raise UploadError(
                f"The form data is malformed: a part's headers are longer than "
                f"{_size(MAX_HEADER_SIZE)}."
            )
        try:
            block = self._stream.read(BLOCK_SIZE)
        except ClientDisconnected:
            block = b""
        if not block:
            raise UploadError(self._ended_early(what))
        self._started = True
        self._decoder.receive_data(block)

    def _ended_early(self, what: str) -> str:
        state = self._decoder.state
        if not self._started:
            return "The upload is empty: no form data arrived. Please try again."
        if state is State.PREAMBLE:
            return (
                "The form data is malformed: it does not contain the boundary announced "
                "in its Content-Type header."
            )
        if state in (State.DATA, State.DATA_START):
            return (
                f"The upload ended before {what} was complete; the connection was "
                "probably interrupted. Please try again."
            )
        return (
            "The upload ended before the form data was complete; the connection was "
            "probably interrupted. Please try again."
        )


def _boundary_of(content_type: str) -> bytes:
    mimetype, options = parse_options_header(content_type)
    if mimetype.lower() != "multipart/form-data":
        shown = _shown(mimetype) if mimetype else "no content type"
        raise UploadError(f"Uploads must be sent as multipart/form-data, not {shown}.")
    boundary = options.get("boundary", "")
    if not boundary:
        raise UploadError(
            "The upload's Content-Type header has no boundary, so its parts cannot be told apart."
        )
    if len(boundary) > MAX_BOUNDARY_LENGTH or not _BOUNDARY_RE.fullmatch(boundary):
        raise UploadError("The upload's multipart boundary is not valid.")
    return boundary.encode("ascii")


def _names(event: Field | File) -> tuple[str, str | None]:
    """The part's field name and file name (None for a text field), exactly as sent.

    The decoder's own parse goes through ``parse_options_header``, which treats
    every backslash in a quoted value as an escape: ``"C:\\x\\y.txt"`` comes out
    as ``C:xy.txt``, and a browser's ``filename="dir\\"`` loses its filename and
    turns the file into a text field. Browsers follow the HTML Standard, which
    leaves backslashes alone and percent-encodes only ``"``, CR and LF, so the
    names are re-read from the raw header here, and a part is a file when either
    parse finds a filename.
    """
    params = _disposition_params(event.headers.get("Content-Disposition", ""))
    name = params.get("name*", params.get("name", event.name))
    if name is None:
        raise UploadError("The form data is malformed: a part has no field name.")
    filename = params.get("filename*", params.get("filename"))
    if filename is None and isinstance(event, File):
        filename = event.filename
    return name, filename


_LINE_BREAK_RE = re.compile(rb"\r\n|\r|\n")
_PARAM_RE = re.compile(r"[ \t;]*([\w!#$%&'*+\-.^`|~]+)[ \t]*=[ \t]*", re.ASCII)
_HTML_ESCAPE_RE = re.compile(r"%(22|0[dD]|0[aA])")
_HTML_UNESCAPES = {"22": '"', "0d": "\r", "0a": "\n"}
_EXT_VALUE_RE = re.compile(r"([\w!#$%&+\-^`{}~]*)'[\w-]*'(.*)", re.ASCII | re.DOTALL)
_EXT_CHARSETS = {"utf-8", "iso-8859-1", "us-ascii"}


def _disposition_params(header: str) -> dict[str, str]:
    """Parameters of a Content-Disposition value, keys lowercased, values unquoted.

    Quoted values keep backslashes (only ``\\"`` stands for a quote) and decode
    the HTML Standard's ``%22``, ``%0D`` and ``%0A``; ``key*=charset''value``
    (RFC 5987) is decoded and stored under ``key*``. A quoted value missing its
    closing quote (a browser sending a name that ends in a backslash) runs to the
    last quote of the header.
    """
    _, _, rest = header.partition(";")
    params: dict[str, str] = {}
    pos = 0
    while pos < len(rest):
        match = _PARAM_RE.match(rest, pos)
        if match is None:  # not a key=value pair: skip to the next parameter
            pos = rest.find(";", pos + 1)
            if pos == -1:
                break
            continue
        key, pos = match.group(1).lower(), match.end()
        if rest.startswith('"', pos):
            raw, pos = _quoted(rest, pos + 1)
            value = _HTML_ESCAPE_RE.sub(
                lambda m: _HTML_UNESCAPES[m.group(1).lower()], raw.replace('\\"', '"')
            )
        else:
            end = rest.find(";", pos)
            end = len(rest) if end == -1 else end
            value, pos = rest[pos:end].strip(" \t"), end
        if key.endswith("*"):
            ext = _EXT_VALUE_RE.fullmatch(value)
            if ext is None or ext.group(1).lower() not in _EXT_CHARSETS:
                continue
            value = unquote(ext.group(2), encoding=ext.group(1).lower(), errors="replace")
        params.setdefault(key, value)
    return params


def _quoted(text: str, start: int) -> tuple[str, int]:
    """The inside of a quoted value starting at ``start`` and the position after it.

    Like werkzeug, ``\\\\`` and ``\\"`` do not end the value; if no quote does, the
    value runs to the last quote in ``text`` (or to its end).
    """
    pos = start
    while pos < len(text):
        if text.startswith(("\\\\", '\\"'), pos):
            pos += 2
        elif text[pos] == '"':
            return text[start:pos], pos + 1
        else:
            pos += 1
    last = text.rfind('"', start)
    if last == -1:
        return text[start:], len(text)
    return text[start:last], last + 1


def _malformed(error: ValueError) -> str:
    if isinstance(error, UnicodeDecodeError):
        return "The form data is malformed: a part's headers are not valid UTF-8."
    if "Content-Disposition" in str(error):
        return "The form data is malformed: a part has no Content-Disposition header."
    return "The form data is malformed and cannot be read."


def _shown(text: str, limit: int = 80) -> str:
    """Quote client-supplied text for a message without letting it spoof the message.

    Control and bidi characters become U+FFFD so a name like ``"x\\u202egpj.exe"``
    cannot reorder or hide the surrounding text.
    """
    cleaned = "".join(ch if ch.isprintable() else "\ufffd" for ch in text)
    if len(cleaned) > limit:
        cleaned = cleaned[: limit - 1] + "…"
    return f"“{cleaned}”"


def _size(count: int) -> str:
    return f"{count // 1024} KiB" if count >= 1024 and count % 1024 == 0 else f"{count} bytes"
