"""Reading a received message into plain values, whatever the message looks like.

Every message that reaches the desk must end up filed or quarantined; a parser that raises
on a broken header would make a message vanish into a retry loop. So the standard library's
``email`` package (``policy.default``) does the reading, and every step that can fail on
hostile or ancient mail is guarded on its own:

- headers are read one by one; when ``policy.default`` chokes on one, the raw value is
  decoded with ``email.header.decode_header`` / ``make_header``, and failing that kept as
  written;
- text in unknown or lying charsets is decoded with replacement characters, never raised;
- lone surrogates and NUL characters (which PostgreSQL refuses) are replaced;
- a leading mbox ``From `` envelope line is dropped and CR-only files are read as lines;
- forwarded messages stay whole as ``.eml`` attachments, calendar invites as ``.ics``;
- TNEF (``winmail.dat``) is unpacked with ``tnefparse``; when that fails the blob is kept.

Only a message with no header at all (empty input, binary garbage) is ``MailUnreadable``;
the caller quarantines it. Nothing here touches the database or Flask.
"""

from __future__ import annotations

import codecs
import email
import email.message
import email.utils
import functools
import hashlib
import mimetypes
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import policy
from email.header import decode_header, make_header
from email.headerregistry import HeaderRegistry
from email.message import EmailMessage, Message
from html.parser import HTMLParser
from typing import Any

from app.files.names import display_name
from app.mail.addresses import is_address

MAX_DEPTH = 40  # nested multiparts deeper than this are not walked further
MAX_ID = 900  # Message-IDs longer than this are cut (the column holds 998)
_MSGID = re.compile(r"<([^<>\s]{1,998})>")
_SURROGATE_OR_NUL = re.compile("[\ud800-\udfff\x00]")
_SPACES = re.compile(r"[ \t\r\n]+")
_LOOSE_ADDRESS = re.compile(r"[^\s<>\"'(),;:\[\]]+@[^\s<>\"'(),;:\[\]]+")
_OBS_HEADER = re.compile(rb"^([!-9;-~]+)[ \t]+:", re.MULTILINE)  # RFC 822 "From  : x"


_HEADERS = HeaderRegistry()
_CACHED_HEADER_LENGTH = 512  # longer values (References chains, long lists) are parsed anew


@functools.lru_cache(maxsize=2048)
def _parsed_header(name: str, value: str) -> Any:
    return _HEADERS(name, value)


class _CachingHeaderRegistry(HeaderRegistry):
    """``policy.default``'s header objects, parsed once per (name, value).

    With ``policy.default`` every ``msg[name]`` parses the header again; threading,
    robot detection and the parser read Content-Type, From and friends over and over,
    and that was the largest part of parsing a plain message (``bench/mail_ingest.py``).
    The objects are the same ``policy.default`` builds (they are immutable strings), so
    sharing them changes nothing a reader can see; bounded by count and value length.
    """

    def __call__(self, name: str, value: str) -> Any:
        if len(value) > _CACHED_HEADER_LENGTH:
            return super().__call__(name, value)
        return _parsed_header(name, value)


#: ``policy.default`` with cached header parsing: what every message is read with.
POLICY = policy.default.clone(header_factory=_CachingHeaderRegistry())


#: A run of at least 64 lines made of base64 characters only (an encoded attachment).
_BASE64_RUN = re.compile(rb"^(?:[A-Za-z0-9+/=]{16,998}+\r?\n){64,}+", re.MULTILINE)
_SHORTCUT_FROM = 256 * 1024  # messages smaller than this are parsed as they are


def _shortcut_runs(data: bytes) -> tuple[bytes, dict[str, str]]:
    """``data`` with each long base64 run replaced by one placeholder line, and the runs.

    The standard parser handles a message line by line in Python; for an attachment of
    a few MB that is tens of thousands of lines and nearly all of the time and memory of
    ingesting it (``bench/mail_ingest.py``). A line of base64 characters is the same to
    the parser wherever it stands (no colon, no leading dash or space: never a header,
    a continuation or a boundary), so a run of them is replaced by a single such line
    (a random token) and put back into the parsed parts by :func:`_restore_runs`: the
    message, its parts and payloads come out exactly as without the shortcut.
    """
    if len(data) < _SHORTCUT_FROM:
        return data, {}
    prefix = "VDRUN" + secrets.token_hex(8)
    runs: dict[str, str] = {}
    pieces: list[bytes] = []
    last = 0
    for match in _BASE64_RUN.finditer(data):
        run = match.group()
        ending = b"\r\n" if run.endswith(b"\r\n") else b"\n"
        token = f"{prefix}x{len(runs):06d}"
        runs[token] = run[: -len(ending)].decode("ascii")
        pieces += [data[last : match.start()], token.encode("ascii"), ending]
        last = match.end()
    if not runs:
        return data, {}
    pieces.append(data[last:])
    return b"".join(pieces), runs


def _restore_runs(msg: Message, runs: dict[str, str]) -> None:
    """Put the runs :func:`_shortcut_runs` took out back where the parser left them."""
    if not runs:
        return
    prefix = next(iter(runs))[:-7]
    tokens = re.compile(re.escape(prefix) + r"x\d{6}")

    def restore(text: str | None) -> str | None:
        if text is None or prefix not in text:
            return text
        return tokens.sub(lambda m: runs.get(m.group(), m.group()), text)

    for part in msg.walk():
        payload = part._payload  # noqa: SLF001 -- the parser's own string, put back as it was
        if isinstance(payload, str):
            part._payload = restore(payload)  # noqa: SLF001
        part.preamble = restore(part.preamble)
        part.epilogue = restore(part.epilogue)


class MailUnreadable(Exception):  # noqa: N818 -- the contract's name
    """The bytes are not a mail message at all; the caller quarantines them."""


@dataclass(frozen=True)
class Attachment:
    filename: str
    content_type: str
    data: bytes
    content_id: str | None
    inline: bool


@dataclass
class ParsedMail:
    raw: bytes
    sha256: str
    message: EmailMessage
    message_id: str | None
    in_reply_to: list[str]
    references: list[str]
    subject: str
    from_address: str | None
    from_name: str | None
    to: list[str]
    cc: list[str]
    reply_to: list[str]
    delivered_to: list[str]
    date: datetime | None
    text: str
    html: str | None
    attachments: list[Attachment]
    defects: list[str] = field(default_factory=list)


def clean_text(text: str) -> str:
    """Replace what no database or page should hold: lone surrogates and NUL.

    Raw 8-bit header bytes (RFC 6532 UTF-8 headers, or a client that did not encode)
    arrive from the parser as escaped surrogates: they are read as UTF-8 first, then
    Windows-1252, and only what neither explains becomes a replacement character.
    """
    if _SURROGATE_OR_NUL.search(text) is None:
        return text
    try:
        data = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        data = None
    if data is not None:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = data.decode("cp1252", errors="replace")
    return _SURROGATE_OR_NUL.sub("\ufffd", text)


def normalise_raw(raw: bytes) -> bytes:
    """Drop a leading mbox ``From `` envelope line; turn CR-only line ends into LF.

    The envelope line is the mailbox file's, not the message's: a message saved with and
    without it is the same message and must hash the same.
    """
    data = raw[3:] if raw.startswith(b"\xef\xbb\xbf") else raw  # a UTF-8 byte order mark
    if data.startswith(b"From "):
        end = data.find(b"\n")
        cr = data.find(b"\r")
        if end == -1 or (cr != -1 and cr < end and data[cr + 1 : cr + 2] != b"\n"):
            end = cr  # CR-only file
        data = data[end + 1 :] if end != -1 else b""
    if b"\n" not in data[:65536] and b"\r" in data:
        data = data.replace(b"\r", b"\n")
    return data


def decode_bytes(data: bytes, charset: str | None) -> str:
    """Decode with the declared charset if Python knows it, else UTF-8, else cp1252.

    Errors become replacement characters: a wrong charset label must not lose the mail.
    """
    if charset:
        name = charset.strip().strip('"').lower()
        try:
            codecs.lookup(name)
        except LookupError:
            name = ""
        if name:
            try:
                return clean_text(data.decode(name, errors="replace"))
            except Exception:  # noqa: S110 -- some codecs raise other errors
                pass
    try:
        return clean_text(data.decode("utf-8"))
    except UnicodeDecodeError:
        return clean_text(data.decode("cp1252", errors="replace"))


def _raw_values(msg: Message, name: str) -> list[str]:
    """Raw header values (no header parsing), decoded from RFC 2047 if possible."""
    values = []
    try:
        items = list(msg.raw_items()) if isinstance(msg, EmailMessage) else list(msg.items())
    except Exception:  # noqa: BLE001
        return []
    for key, value in items:
        if key.lower() != name.lower():
            continue
        text = str(value)
        try:
            text = str(make_header(decode_header(text)))
        except Exception:  # noqa: S110 -- keep the value as written
            pass
        values.append(clean_text(text))
    return values


def header_values(msg: Message, name: str) -> list[str]:
    """Every value of a header as text, never raising on malformed ones."""
    try:
        values = msg.get_all(name) or []
        return [clean_text(str(v)) for v in values]
    except Exception:  # noqa: BLE001 -- policy.default can raise on broken headers
        return _raw_values(msg, name)


def header(msg: Message, name: str) -> str | None:
    """The first value of a header as unfolded text, or None."""
    values = header_values(msg, name)
    if not values:
        return None
    return _SPACES.sub(" ", values[0]).strip()


def _addresses(msg: Message, name: str) -> list[tuple[str, str]]:
    """(display name, lower-cased address) pairs of an address header, valid ones only."""
    pairs: list[tuple[str, str]] = []
    try:
        for value in msg.get_all(name) or []:
            for addr in getattr(value, "addresses", ()):
                pairs.append((str(addr.display_name or ""), str(addr.addr_spec or "")))
    except Exception:  # noqa: BLE001 -- fall back to the forgiving parser below
        pairs = []
    if not pairs:
        raw = _raw_values(msg, name)
        try:
            pairs = [(n, a) for n, a in email.utils.getaddresses(raw)]
        except Exception:  # noqa: BLE001
            pairs = []
    out: list[tuple[str, str]] = []
    seen: set[str] = set()
    for display, addr in pairs:
        addr = _ascii_domain(clean_text(addr).strip().strip("<>").lower())
        if is_address(addr) and addr not in seen:
            seen.add(addr)
            out.append((clean_text(_SPACES.sub(" ", display)).strip(), addr))
    if not out:
        # Broken syntax ("Big Bug bb@bug.com", an @ in the display name): take what
        # looks like an address, the way a person reading the header would.
        for raw in _raw_values(msg, name):
            for found in _LOOSE_ADDRESS.findall(raw):
                addr = _ascii_domain(found.lower())
                if is_address(addr) and addr not in seen:
                    seen.add(addr)
                    out.append(("", addr))
    return out


def _ascii_domain(address: str) -> str:
    """``jdöe@mächine.example`` -> ``jdöe@xn--mchine-...``: IDN domains as DNS spells them."""
    local, at, domain = address.rpartition("@")
    if not at or domain.isascii():
        return address
    try:
        return f"{local}@{domain.encode('idna').decode('ascii')}"
    except UnicodeError:
        return address


def _ids(text: str | None) -> list[str]:
    """Message-IDs without angle brackets, in order, each once."""
    if not text:
        return []
    found = _MSGID.findall(text) or [t.strip("<>") for t in text.split()]
    out: list[str] = []
    for item in found:
        item = item.strip()[:MAX_ID]
        if item and item not in out:
            out.append(item)
    return out


def _date(msg: Message) -> datetime | None:
    value: datetime | None = None
    try:
        parsed = msg.get("Date")
        value = getattr(parsed, "datetime", None)
    except Exception:  # noqa: BLE001
        value = None
    if value is None:
        raw = _raw_values(msg, "Date")
        if raw:
            try:
                value = email.utils.parsedate_to_datetime(raw[0])
            except Exception:  # noqa: BLE001
                value = None
    if value is None:
        return None
    try:
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC)
    except (OverflowError, ValueError):
        return None


class _HTMLText(HTMLParser):
    """HTML to plain text for search and for mails without a text part."""

    _BLOCK = {
        "p",
        "div",
        "br",
        "li",
        "tr",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "blockquote",
        "pre",
        "table",
        "ul",
        "ol",
        "hr",
    }
    _SKIP = {"script", "style", "head", "title", "template"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.skipping = 0

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag in self._SKIP:
            self.skipping += 1
        elif tag in self._BLOCK:
            self.out.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP:
            self.skipping = max(0, self.skipping - 1)
        elif tag in self._BLOCK:
            self.out.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.out.append(data)


def html_to_text(html: str) -> str:
    """Visible text of an HTML body, one paragraph per line."""
    parser = _HTMLText()
    try:
        parser.feed(html)
        parser.close()
    except Exception:  # noqa: BLE001 -- html.parser is forgiving, but be sure
        return re.sub(r"<[^>]*>", " ", html)
    lines = [" ".join(line.split()) for line in "".join(parser.out).splitlines()]
    text = "\n".join(lines)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


@dataclass
class _Walk:
    texts: list[str] = field(default_factory=list)
    htmls: list[str] = field(default_factory=list)
    files: list[Attachment] = field(default_factory=list)
    defects: list[str] = field(default_factory=list)


def _content_type(part: Message) -> str:
    try:
        return part.get_content_type().lower()
    except Exception:  # noqa: BLE001
        return "application/octet-stream"


def _disposition(part: Message) -> str | None:
    try:
        return part.get_content_disposition()
    except Exception:  # noqa: BLE001
        return None


def _filename(part: Message) -> str | None:
    try:
        name = part.get_filename()
    except Exception:  # noqa: BLE001
        name = None
    if not name:
        try:
            name = part.get_param("name")  # old clients put it on Content-Type only
            if isinstance(name, tuple):
                name = email.utils.collapse_rfc2231_value(name)
        except Exception:  # noqa: BLE001
            name = None
    if not name:
        return None
    text = str(name)
    try:
        text = str(make_header(decode_header(text)))  # encoded-words inside a parameter
    except Exception:  # noqa: S110
        pass
    return clean_text(text)


def _payload(part: Message) -> bytes:
    try:
        data = part.get_payload(decode=True)
    except Exception:  # noqa: BLE001
        data = None
    if isinstance(data, bytes):
        return data
    try:
        raw = part.get_payload()
        if isinstance(raw, str):
            return raw.encode("utf-8", "surrogateescape")
    except Exception:  # noqa: S110
        pass
    return b""


def _message_bytes(part: Message) -> bytes:
    """The bytes of a forwarded message part, as close to what was sent as possible."""
    inner = part.get_payload()
    if isinstance(inner, list) and inner:
        inner = inner[0]
    if isinstance(inner, Message):
        for render in (
            lambda: inner.as_bytes(policy=policy.compat32),
            lambda: inner.as_string(policy=policy.compat32).encode("utf-8", "surrogateescape"),
        ):
            try:
                return render()
            except Exception:  # noqa: BLE001,S112 -- try the next rendering
                continue
    return _payload(part)


def _made_up_name(content_type: str, number: int) -> str:
    if content_type in ("message/rfc822", "message/global"):
        ext = ".eml"
    elif content_type == "text/calendar":
        ext = ".ics"
    else:
        ext = mimetypes.guess_extension(content_type, strict=False) or ".bin"
    stem = "invite" if ext == ".ics" else "message" if ext == ".eml" else "attachment"
    return f"{stem}-{number}{ext}"


def _content_id(part: Message) -> str | None:
    value = header(part, "Content-ID")
    if not value:
        return None
    ids = _ids(value)
    return ids[0] if ids else value.strip("<> ") or None


def _add_file(walk: _Walk, part: Message, ctype: str, data: bytes, name: str | None) -> None:
    if not name:
        name = _made_up_name(ctype, len(walk.files) + 1)
    walk.files.append(
        Attachment(
            filename=display_name(name),
            content_type=ctype,
            data=data,
            content_id=_content_id(part),
            inline=False,
        )
    )


def _tnef(walk: _Walk, part: Message, data: bytes, name: str | None) -> None:
    """Unpack winmail.dat; keep the blob itself when the library cannot read it."""
    try:
        from tnefparse import TNEF

        tnef = TNEF(data, do_checksum=False)
        found = []
        for att in tnef.attachments:
            att_name = att.long_filename() or att.name
            if isinstance(att_name, bytes):
                att_name = decode_bytes(att_name.rstrip(b"\x00"), None)
            att_data = att.data if isinstance(att.data, bytes) else b""
            found.append((str(att_name or "").rstrip("\x00"), att_data))
        body = tnef.body
        html = tnef.htmlbody
    except Exception as exc:  # noqa: BLE001 -- a broken blob is kept as it is
        walk.defects.append(f"TNEF unreadable: {type(exc).__name__}")
        _add_file(walk, part, "application/ms-tnef", data, name or "winmail.dat")
        return
    for att_name, att_data in found:
        ctype = mimetypes.guess_type(att_name)[0] or "application/octet-stream"
        walk.files.append(
            Attachment(
                display_name(att_name) if att_name else _made_up_name(ctype, len(walk.files) + 1),
                ctype,
                att_data,
                None,
                False,
            )
        )
    if body:
        walk.texts.append(decode_bytes(body, None) if isinstance(body, bytes) else str(body))
    if html:
        walk.htmls.append(decode_bytes(html, None) if isinstance(html, bytes) else str(html))


def _walk(part: Message, walk: _Walk, depth: int) -> None:
    if depth > MAX_DEPTH:
        walk.defects.append("multipart nesting too deep")
        return
    ctype = _content_type(part)
    try:
        is_multi = part.is_multipart()
    except Exception:  # noqa: BLE001
        is_multi = False
    if ctype in ("message/rfc822", "message/global") and is_multi:
        inner = part.get_payload()
        subject = ""
        if isinstance(inner, list) and inner and isinstance(inner[0], Message):
            subject = header(inner[0], "Subject") or ""
        name = _filename(part) or (f"{subject[:80]}.eml" if subject.strip() else None)
        _add_file(walk, part, "message/rfc822", _message_bytes(part), name)
        return
    if ctype == "message/external-body":
        # RFC 2046 5.2.3: the data lives elsewhere (FTP, a local file, a mail server); the
        # part holds only where. Kept as a file named as its Content-Type says.
        inner = part.get_payload()
        inner_type = "message/external-body"
        if isinstance(inner, list) and inner and isinstance(inner[0], Message):
            inner_type = _content_type(inner[0])
        _add_file(walk, part, inner_type, _message_bytes(part), _filename(part))
        return
    if is_multi:
        children = part.get_payload()
        if not isinstance(children, list):
            return
        for child in children:
            if isinstance(child, Message):
                _walk(child, walk, depth + 1)
        return
    disposition = _disposition(part)
    name = _filename(part)
    data = _payload(part)
    if ctype == "application/ms-tnef" or (name or "").lower() == "winmail.dat":
        _tnef(walk, part, data, name)
        return
    if ctype in ("text/plain", "text/html") and disposition != "attachment" and not name:
        try:
            charset = part.get_content_charset()
        except Exception:  # noqa: BLE001
            charset = None
        text = decode_bytes(data, charset)
        (walk.texts if ctype == "text/plain" else walk.htmls).append(text)
        return
    _add_file(walk, part, ctype, data, name)


def _defects(msg: Message) -> list[str]:
    found: list[str] = []
    try:
        for part in msg.walk():
            for defect in getattr(part, "defects", []):
                label = type(defect).__name__
                if label not in found:
                    found.append(label)
    except Exception:  # noqa: S110
        pass
    return found


def _has_headers(msg: Message) -> bool:
    try:
        keys = [
            k.lower()
            for k, _ in (msg.raw_items() if isinstance(msg, EmailMessage) else msg.items())
        ]
    except Exception:  # noqa: BLE001
        return False
    known = {
        "from",
        "to",
        "subject",
        "date",
        "message-id",
        "received",
        "return-path",
        "content-type",
        "mime-version",
        "sender",
        "reply-to",
        "cc",
        "delivered-to",
    }
    return any(k in known for k in keys)


def _mark_inline(files: Iterable[Attachment], html: str | None) -> list[Attachment]:
    """An image referenced as ``cid:`` from the HTML body is inline; the rest are files."""
    lowered = (html or "").lower()
    out = []
    for att in files:
        inline = bool(
            att.content_id
            and att.content_type.startswith("image/")
            and f"cid:{att.content_id.lower()}" in lowered
        )
        out.append(Attachment(att.filename, att.content_type, att.data, att.content_id, inline))
    return out


def parse_message(raw: bytes) -> ParsedMail:
    """Read a message; raise only ``MailUnreadable`` (no headers at all, or parser crash)."""
    try:
        return _parse(raw)
    except MailUnreadable:
        raise
    except (Exception, RecursionError) as exc:  # noqa: BLE001 -- the contract: never else
        raise MailUnreadable(f"{type(exc).__name__}: {exc}"[:300]) from exc


def _parse(raw: bytes) -> ParsedMail:
    data = normalise_raw(raw)
    if not data.strip():
        raise MailUnreadable("empty message")
    shortened, runs = _shortcut_runs(data)
    msg = email.message_from_bytes(shortened, policy=POLICY)
    if not _has_headers(msg):
        # Obsolete syntax (RFC 822 allowed space before the colon): read the header
        # block again with it removed; the stored bytes stay as received.
        match = re.search(rb"\r?\n\r?\n", shortened)
        cut = match.start() if match else len(shortened)
        fixed = _OBS_HEADER.sub(rb"\1:", shortened[:cut]) + shortened[cut:]
        msg = email.message_from_bytes(fixed, policy=POLICY)
    _restore_runs(msg, runs)
    if not isinstance(msg, EmailMessage) or not _has_headers(msg):
        raise MailUnreadable("no mail headers found")
    walk = _Walk()
    try:
        _walk(msg, walk, 0)
    except Exception as exc:  # noqa: BLE001 -- keep what the body gives as text
        walk.defects.append(f"body unreadable: {type(exc).__name__}")
        walk.texts = [decode_bytes(data.partition(b"\n\n")[2], None)]
    html = "\n".join(walk.htmls) if walk.htmls else None
    texts = [t for t in walk.texts if t.strip()]
    text = "\n\n".join(texts) if texts else (html_to_text(html) if html else "")
    from_pairs = _addresses(msg, "From") or _addresses(msg, "Sender")
    from_name, from_address = from_pairs[0] if from_pairs else (None, None)
    delivered = []
    for name in ("Delivered-To", "X-Original-To", "Envelope-To"):
        for _, addr in _addresses(msg, name):
            if addr not in delivered:
                delivered.append(addr)
    message_ids = _ids(header(msg, "Message-ID"))
    return ParsedMail(
        raw=data,
        sha256=hashlib.sha256(data).hexdigest(),
        message=msg,
        message_id=message_ids[0] if message_ids else None,
        in_reply_to=_ids(header(msg, "In-Reply-To")),
        references=_ids(" ".join(header_values(msg, "References"))),
        subject=header(msg, "Subject") or "",
        from_address=from_address,
        from_name=from_name or None,
        to=[a for _, a in _addresses(msg, "To")],
        cc=[a for _, a in _addresses(msg, "Cc")],
        reply_to=[a for _, a in _addresses(msg, "Reply-To")],
        delivered_to=delivered,
        date=_date(msg),
        text=text,
        html=html,
        attachments=_mark_inline(walk.files, html),
        defects=_defects(msg) + walk.defects,
    )
