"""The message one recipient receives, built from an outbox row: headers and both parts.

Why headers are built here and nowhere else: every value that reaches a header comes from
someone we do not control (a customer's subject, a contact's name, a Message-ID quoted
from their mail). Python's email package refuses raw CR/LF, but it *decodes* RFC 2047
encoded words in the strings it is given and then writes the decoded text back, so
``=?utf-8?q?x=0D=0ABcc:_evil@example.test?=`` in a subject or a display name would become
a real ``Bcc`` line. So:

- text for headers (subjects, names) is decoded first, stripped of every control
  character, and any encoded word that survives is broken (``header_text``);
- addresses must pass ``mail.addresses.is_address`` (no whitespace, no brackets);
- Message-IDs must be one ``<left@right>`` of printable ASCII, else they are left out;
- finally the serialised message is parsed back and must have exactly the headers we set,
  with exactly the recipients we meant (``check_structure``): a mistake anywhere above
  refuses the mail instead of sending something else.

The HTML part is rendered from the text (escaped, paragraphs, links), never from HTML
someone typed. Fixed words (the files heading) are in the row's language, the identity's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email import policy
from email.errors import HeaderParseError
from email.header import decode_header, make_header
from email.headerregistry import Address, Group
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import format_datetime

from markupsafe import escape

from app.errors import DomainError
from app.mail.addresses import is_address
from app.models.mail import OutboxMessage, OutboxRecipient

# Fixed words of a reply, per language. System mail templates (editable by admins) will
# replace this table; until then English and German, falling back to English.
WORDS: dict[str, dict[str, str]] = {
    "en": {"files": "Files (secure download links):"},
    "de": {"files": "Dateien (sichere Download-Links):"},
}

CONTROL = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]")
MESSAGE_ID = re.compile(r"<[\x21-\x3b\x3d\x3f-\x7e]{1,250}@[\x21-\x3b\x3d\x3f-\x7e]{1,250}>")
URL = re.compile(r"https?://[^\s<>\"']+")
NAME_LIMIT = 200
SUBJECT_LIMIT = 400
SEND_POLICY = policy.SMTP  # CRLF line ends, 78-column folding, no raw CR/LF accepted


class UnsafeHeader(DomainError):
    """A value cannot be put into a header safely; the mail is refused, never altered."""

    status = 422


@dataclass(frozen=True)
class Built:
    """A copy ready to send: the message and its bytes, serialised (and checked) once."""

    mail: EmailMessage
    raw: bytes


@dataclass(frozen=True)
class FileLink:
    """One file as this recipient sees it in the mail."""

    name: str
    url: str


def words(language: str | None) -> dict[str, str]:
    return WORDS.get((language or "en")[:2].lower(), WORDS["en"])


def header_text(value: str | None, limit: int = SUBJECT_LIMIT) -> str:
    """``value`` as plain text that cannot break out of its header.

    Encoded words are decoded (up to three nested rounds) and every control character is
    turned into a space after each round; an encoded word still left is broken apart
    (``=?`` becomes ``= ?``) so the email package cannot decode it into new lines later.
    """
    text = CONTROL.sub(" ", value or "")
    if "=?" not in text:  # nothing to decode: the common case, and a fast one
        return " ".join(text.split())[:limit]
    for _round in range(3):
        try:
            decoded = str(make_header(decode_header(text)))
        except (HeaderParseError, LookupError, UnicodeError, ValueError):
            decoded = text
        decoded = CONTROL.sub(" ", decoded)
        if decoded == text:
            break
        text = decoded
    text = " ".join(text.replace("=?", "= ?").split())
    return text[:limit]


def checked_address(address: str | None) -> str:
    """An address as stored (validated again here: it goes into a header and the envelope)."""
    cleaned = (address or "").strip()
    if not is_address(cleaned) or CONTROL.search(cleaned):
        raise UnsafeHeader(f"Refused to send to or from an invalid address: {cleaned[:80]!r}")
    return cleaned


def mailbox(name: str | None, address: str | None) -> Address:
    addr = checked_address(address)
    local, _, domain = addr.rpartition("@")
    return Address(display_name=header_text(name, NAME_LIMIT), username=local, domain=domain)


def message_ids(text: str | None) -> list[str]:
    """The valid ``<id@domain>`` tokens in ``text``; anything else is left out."""
    return MESSAGE_ID.findall(text or "")


def render_text(message: OutboxMessage, links: list[FileLink]) -> str:
    """The plain-text part: the words, this recipient's links, the signature (RFC 3676)."""
    parts = [message.body_text.rstrip()]
    if links:
        lines = [f"- {link.name}: {link.url}" for link in links]
        parts.append(words(message.language)["files"] + "\n" + "\n".join(lines))
    if (message.signature or "").strip():
        parts.append("-- \n" + (message.signature or "").strip())
    return "\n\n".join(parts) + "\n"


def _paragraphs(text: str) -> str:
    """Escaped text as paragraphs with line breaks; web addresses become links."""
    out = []
    for block in re.split(r"\n\s*\n", text.strip()):
        escaped = str(escape(block))
        linked = URL.sub(lambda m: f'<a href="{m.group(0)}">{m.group(0)}</a>', escaped)
        out.append("<p>" + linked.replace("\n", "<br>\n") + "</p>")
    return "\n".join(out)


def render_html(message: OutboxMessage, links: list[FileLink]) -> str:
    """The HTML part, made from the same text: nothing typed is ever taken as markup."""
    language = escape((message.language or "en")[:8])
    # System mail brings its own HTML part, rendered by its template with autoescaping
    # in the sandbox (``app.mail.system_mail``); everything else is made from the text.
    body = [message.body_html if message.body_html else _paragraphs(message.body_text)]
    if links:
        items = "".join(
            f'<li><a href="{escape(link.url)}">{escape(link.name)}</a></li>' for link in links
        )
        body.append(f"<p><strong>{escape(words(message.language)['files'])}</strong></p>")
        body.append(f"<ul>{items}</ul>")
    if (message.signature or "").strip():
        signature = str(escape((message.signature or "").strip())).replace("\n", "<br>\n")
        body.append(f'<p class="signature">-- <br>\n{signature}</p>')
    title = escape(header_text(message.subject))
    return (
        f'<!DOCTYPE html>\n<html lang="{language}"><head><meta charset="utf-8">'
        f"<title>{title}</title></head>\n<body>\n" + "\n".join(body) + "\n</body></html>\n"
    )


def build_copy(message: OutboxMessage, delivery: OutboxRecipient, links: list[FileLink]) -> Built:
    """The copy ``delivery`` receives: same headers for everyone, Bcc never shown."""
    visible = [d for d in message.deliveries if d.kind in ("to", "cc")]
    to = [mailbox(d.name, d.address) for d in visible if d.kind == "to"]
    cc = [mailbox(d.name, d.address) for d in visible if d.kind == "cc"]
    mail = EmailMessage(policy=SEND_POLICY)
    mail["From"] = mailbox(message.from_name, message.from_address)
    if to:
        mail["To"] = to
    elif not cc:
        mail["To"] = Group("undisclosed-recipients")
    if cc:
        mail["Cc"] = cc
    if message.reply_to:
        mail["Reply-To"] = mailbox(None, message.reply_to)
    mail["Subject"] = header_text(message.subject)
    mail["Date"] = format_datetime(message.created_at)
    (own_id,) = message_ids(message.message_id) or [None]
    if own_id is None:
        raise UnsafeHeader("The outbox row has no valid Message-ID.")
    mail["Message-ID"] = own_id
    parent = message_ids(message.in_reply_to)
    if parent:
        mail["In-Reply-To"] = parent[0]
    references = message_ids(message.references)
    if references:
        mail["References"] = " ".join(references)
    if message.auto_submitted in ("auto-replied", "auto-generated"):
        mail["Auto-Submitted"] = message.auto_submitted
        mail["X-Auto-Response-Suppress"] = "All"
    mail.set_content(render_text(message, links), charset="utf-8", cte="quoted-printable")
    mail.add_alternative(
        render_html(message, links), subtype="html", charset="utf-8", cte="quoted-printable"
    )
    # After the parts exist: set_content would move a Content-* header into the first part.
    mail["Content-Language"] = header_text(message.language or "en", 8) or "en"
    raw = mail.as_bytes(policy=SEND_POLICY)
    check_structure(raw, {a.addr_spec for a in to}, {a.addr_spec for a in cc})
    return Built(mail, raw)


EXPECTED_HEADERS = {
    "from",
    "to",
    "cc",
    "reply-to",
    "subject",
    "date",
    "message-id",
    "in-reply-to",
    "references",
    "auto-submitted",
    "x-auto-response-suppress",
    "content-language",
    "mime-version",
    "content-type",
}


def check_structure(raw: bytes, to: set[str], cc: set[str]) -> None:
    """Parse the bytes as a receiver would: only our headers, once each, our recipients."""
    parsed = BytesParser(policy=policy.default).parsebytes(raw, headersonly=True)
    names = [name.lower() for name in parsed.keys()]
    if len(names) != len(set(names)) or not set(names) <= EXPECTED_HEADERS:
        raise UnsafeHeader(f"Refused a mail whose headers came out as {sorted(names)}.")
    if "bcc" in names:
        raise UnsafeHeader("Refused a mail with a Bcc header.")

    def addresses(header: str) -> set[str]:
        value = parsed[header]
        if value is None:
            return set()
        return {a.addr_spec.lower() for a in value.addresses}  # type: ignore[attr-defined]

    if addresses("to") != {a.lower() for a in to} or addresses("cc") != {a.lower() for a in cc}:
        raise UnsafeHeader("Refused a mail whose recipients came out different from the row.")
