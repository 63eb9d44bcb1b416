"""Robot mail: bounces, auto-replies, our own mail coming back, mailing-list traffic.

A help desk that answers robots talks to itself forever: an out-of-office reply to our
autoresponse gets an autoresponse, whose out-of-office reply ... So every incoming message
is asked "did a machine write this?" before anything answers it. ``detect_robot`` says
which kind of robot and why (the reason is shown to admins in the mail log), and for
bounces it digs out who could not be reached and which of our messages bounced, so the
bounce can be filed on the ticket it is about and the contact flagged.

What counts, and why (decisions the issue left open):

* **Bounces** (delivery status notifications). ``multipart/report`` with
  ``report-type=delivery-status`` or any ``message/delivery-status`` part (RFC 3464) is
  parsed properly. The common non-standard bounces are recognised too: a sender whose
  local part is ``MAILER-DAEMON`` (only servers use it), an ``X-Failed-Recipients``
  header (Exim), and a ``postmaster``/"Mail Delivery System" sender or a null return path
  together with a bounce subject or the phrases qmail, Exim, Postfix, Sendmail and
  Exchange write. Recipients, status and diagnostic then come from the text.
  Only recipients whose action is ``failed`` (or who have a 5.x.x status) are listed in
  ``Bounce.recipients``: a "delayed" or "delivered" notice is a robot, but nobody's
  address is wrong, so no contact should be flagged for it.
* **Auto-replies** (RFC 3834 and the de-facto headers): ``Auto-Submitted`` other than
  ``no``; ``X-Autoreply``, ``X-Autorespond``, ``X-Autoresponder``; ``Precedence`` bulk or
  junk (list is a list); ``X-Auto-Response-Suppress`` with any value but ``None``
  (Exchange puts it on its own automatic replies; a person's mail does not carry it);
  the usual vacation subjects in English and German, matched at the start of the subject
  only, so a customer writing "Question about my vacation booking" is still a customer.
  Feedback reports (ARF, ``report-type=feedback-report``) and read receipts
  (``disposition-notification``) are machine reports about a message, not failed
  deliveries: they count as auto-replies, so no contact is flagged for them.
* **Own mail**: the From (or Sender) is one of ``own_addresses`` -- our mail came back,
  a loop in the making.
* **Mailing lists**: ``List-Id`` (RFC 2919), ``Precedence: list``, ``X-Mailing-List`` /
  ``Mailing-List`` (ezmlm), ``X-Mailman-Version``/``X-BeenThere``
  (Mailman, digests too), ``X-MLServer`` (fml), or ``List-Unsubscribe`` together with
  ``List-Post`` or a bulk ``Precedence``. ``List-Unsubscribe`` *alone* is not enough:
  sales and CRM tools (HubSpot, Outlook plug-ins) add it to mail a real person writes to
  us one to one, and turning away a customer is worse than filing one newsletter.
  A ``List-Id``/``List-Post`` that names one of our own addresses is *our* group
  relaying customer mail (support@ set up as a Google Group that forwards to the desk),
  so it does not make the message a robot.

Everything here reads raw header text (``raw_items``), so a malformed header that makes
``policy.default`` raise on access cannot make robot detection raise.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from email.header import decode_header, make_header
from email.message import Message
from email.parser import BytesHeaderParser, HeaderParser
from email.utils import getaddresses

__all__ = ["Bounce", "Robot", "RobotKind", "detect_robot"]


class RobotKind(enum.StrEnum):
    BOUNCE = "bounce"
    AUTO_REPLY = "auto_reply"
    LIST = "list"
    OWN = "own"


@dataclass(frozen=True)
class Bounce:
    """What a delivery failure report says: who failed, why, and which message bounced."""

    recipients: list[str]
    status: str | None
    diagnostic: str | None
    original_message_id: str | None
    original_subject: str | None


@dataclass(frozen=True)
class Robot:
    """A machine wrote the message; ``reason`` says how we know (shown to admins)."""

    kind: RobotKind
    reason: str
    bounce: Bounce | None = None


# -- header helpers -------------------------------------------------------------------


def _raw_headers(message: Message) -> list[tuple[str, str]]:
    try:
        return [(str(k), str(v)) for k, v in message.raw_items()]
    except Exception:  # a header we cannot even list is no robot sign
        return []


def _decode(value: str) -> str:
    """Decode RFC 2047 words; never raise (a broken word stays as written)."""
    try:
        return str(make_header(decode_header(value)))
    except Exception:
        return value


class _Headers:
    """Case-insensitive access to the raw, unfolded header values of one message."""

    def __init__(self, message: Message) -> None:
        self._items: dict[str, list[str]] = {}
        for name, value in _raw_headers(message):
            unfolded = re.sub(r"\r?\n[ \t]+", " ", value).strip()
            self._items.setdefault(name.strip().lower(), []).append(unfolded)

    def first(self, name: str) -> str | None:
        values = self._items.get(name.lower())
        return values[0] if values else None

    def all(self, name: str) -> list[str]:
        return list(self._items.get(name.lower(), []))

    def has(self, name: str) -> bool:
        return name.lower() in self._items


def _addresses(values: Iterable[str]) -> list[tuple[str, str]]:
    """(display name, lower-cased address) pairs; tolerant of junk."""
    try:
        pairs = getaddresses([_decode(v) for v in values])
    except Exception:
        return []
    return [(name.strip(), addr.strip().lower()) for name, addr in pairs if name or addr]


def _strip_id(value: str | None) -> str | None:
    if not value:
        return None
    match = re.search(r"<([^<>\s]+)>", value)
    cleaned = match.group(1) if match else value.strip().split()[0] if value.strip() else ""
    return cleaned or None


# -- auto-reply -----------------------------------------------------------------------

# Subjects auto-responders write, in English and German (Outlook, Exchange, Gmail,
# Apple Mail, Thunderbird, Zimbra, GMX/Web.de, Open-Xchange, Lotus Notes), anchored at the
# start so a customer's own words later in the subject never match.
_AUTO_SUBJECT = re.compile(
    r"""^\s*(?:
        automatic\s+reply | auto(?:matic)?[\s-]*(?:reply|response|antwort)\b | autoreply
      | (?:i\s+am\s+|i'm\s+)?out\s+of\s+(?:the\s+)?office | ooo\s*: | on\s+vacation\b
      | away\s+from\s+(?:the\s+|my\s+)?(?:office|desk|e-?mail)
      | vacation\s*(?:reply|notice|message|auto-?reply)?\s*: | holiday\s+(?:notice|reply)
      | abwesenheits?(?:notiz|nachricht|meldung|info) | automatische\s+antwort
      | automatische\s+(?:abwesenheits|r[üu]ck)\w* | abwesend\b | nicht\s+im\s+b[üu]ro
      | ich\s+bin\s+(?:zur\s+zeit\s+|zurzeit\s+|derzeit\s+|momentan\s+)?
        (?:nicht\s+im|abwesend|im\s+urlaub)
      | urlaubs?(?:notiz|abwesenheit|antwort|meldung|info|hinweis)?\s*: | r[eé]ponse\s+automatique
    )""",
    re.IGNORECASE | re.VERBOSE,
)


def _auto_reply(headers: _Headers, subject: str) -> str | None:
    auto_submitted = (headers.first("Auto-Submitted") or "").strip().lower()
    if auto_submitted and auto_submitted.split(";")[0].strip() != "no":
        return f"Auto-Submitted: {auto_submitted[:60]}"
    for name in ("X-Autoreply", "X-Autorespond", "X-Autoresponder", "X-Autogenerated"):
        value = headers.first(name)
        if value is not None and value.strip().lower() not in ("no", "false", "0"):
            return f"{name} header"
    precedence = (headers.first("Precedence") or "").strip().lower()
    if precedence in ("bulk", "junk", "auto_reply", "auto-reply"):
        return f"Precedence: {precedence}"
    suppress = headers.first("X-Auto-Response-Suppress")
    if suppress is not None and suppress.strip().lower() not in ("", "none"):
        return f"X-Auto-Response-Suppress: {suppress.strip()[:40]}"
    if _AUTO_SUBJECT.match(subject):
        return f"auto-reply subject “{subject[:80]}”"
    return None


# -- mailing lists --------------------------------------------------------------------


def _names_own(value: str, own: Collection[str]) -> bool:
    """Does a List-Id / List-Post value name one of our addresses (our own group)?"""
    lowered = value.lower()
    for address in own:
        if address in lowered or address.replace("@", ".") in lowered:
            return True
    return False


# Headers only list managers write: ezmlm, Mailman (also on digests), fml.
LIST_HEADERS = ("X-Mailing-List", "Mailing-List", "X-Mailman-Version", "X-BeenThere", "X-MLServer")


def _mailing_list(headers: _Headers, own: Collection[str]) -> str | None:
    list_id = headers.first("List-Id")
    list_post = headers.first("List-Post") or ""
    if list_id is not None and (_names_own(list_id, own) or _names_own(list_post, own)):
        return None
    if list_id is not None:
        return f"List-Id: {list_id[:80]}"
    if (headers.first("Precedence") or "").strip().lower() == "list":
        return "Precedence: list"
    for name in LIST_HEADERS:
        if headers.has(name):
            return f"{name} header"
    if headers.has("List-Unsubscribe") and headers.has("List-Post"):
        if _names_own(list_post, own):
            return None
        return "List-Unsubscribe with List-Post"
    return None


# -- bounces --------------------------------------------------------------------------

_DAEMON_LOCALPARTS = {"mailer-daemon", "mailer_daemon", "mailerdaemon", "mail-daemon"}
# Servers' senders that a person may also read; they need a bounce subject or text too.
_POSTMASTER_LOCALPARTS = {
    "postmaster",
    "post_master",
    "mail-delivery",
    "maildelivery",
    "bounce",
    "bounces",
    "no-reply",
    "noreply",
    "do-not-reply",
    "donotreply",
}
_DAEMON_NAMES = re.compile(
    r"mail\s*delivery\s*(?:system|subsystem|service|notification)|mailer[\s-]*daemon"
    r"|postmaster|delivery\s+status\s+notification|mail\s+administrator",
    re.IGNORECASE,
)
_BOUNCE_SUBJECT = re.compile(
    r"undeliver|undelivered|not\s+delivered|delivery\s+(?:status\s+notification|failure|failed"
    r"|report|problem|notification|has\s+failed)|returned\s+mail|return(?:ed)?\s+to\s+sender"
    r"|failure\s+notice|mail\s+delivery\s+failed|could\s+not\s+be\s+delivered|mail\s+failure"
    r"|delivery\s+error|nondeliverable|non[\s-]?delivery|warning:\s+could\s+not\s+send"
    r"|unzustellbar|nicht\s+zustellbar|zustellung\s+fehlgeschlagen|unzustellbare"
    r"|non\s+remis|échec\s+de\s+la\s+remise|message\s+not\s+delivered|rejected|bounce"
    r"|mail\s+system\s+error|delivery\s+notification|permanent\s+error|error\s+sending"
    r"|メールエラー|配信エラー|不達",
    re.IGNORECASE,
)
# Phrases the common MTAs write in non-standard bounces (the start of their bodies).
_BOUNCE_BODY = re.compile(
    r"this\s+is\s+the\s+qmail-send\s+program|this\s+message\s+was\s+created\s+automatically\s+by"
    r"\s+mail\s+delivery\s+software|this\s+is\s+the\s+mail\s+system\s+at\s+host"
    r"|the\s+original\s+message\s+was\s+received\s+at|i'm\s+sorry\s+to\s+have\s+to\s+inform\s+you"
    r"|delivery\s+has\s+failed\s+to\s+these\s+recipients|your\s+message\s+(?:did\s+not|could\s+not"
    r"|wasn't|was\s+not|cannot)\s+be\s+delivered|could\s+not\s+be\s+delivered\s+to\s+(?:one|the)"
    r"|unable\s+to\s+deliver|permanent\s+(?:fatal\s+)?error|delivery\s+to\s+the\s+following"
    r"\s+recipients?\s+failed|message\s+(?:could\s+not|cannot)\s+be\s+delivered"
    r"|following\s+addresses\s+had\s+(?:permanent\s+)?(?:fatal\s+)?errors"
    r"|undeliverable|returned\s+to\s+sender|user\s+unknown|mailbox\s+(?:unavailable|full|is\s+full)"
    r"|your\s+message\s+to\s+.{1,120}\s+has\s+been\s+rejected|delivery\s+failure"
    r"|did\s+not\s+reach\s+the\s+following\s+recipient|invalid\s+(?:user|recipient)\s+address"
    r"|could\s+not\s+be\s+delivered\s+to|konnte\s+nicht\s+zugestellt\s+werden"
    r"|送信できませんでした|配信できませんでした|届きませんでした|宛先不明",
    re.IGNORECASE,
)
_STATUS = re.compile(r"\b([245]\.\d{1,3}\.\d{1,3})\b")
_ADDRESS_IN_TEXT = re.compile(
    r"<?((?:\"[^\"<>\r\n]{1,64}\"|[A-Za-z0-9._%+=/'-]+)@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?)>?"
)
_COPY_MARKERS = re.compile(
    r"^(?:-+\s*)?(?:below\s+this\s+line\s+is\s+a\s+copy\s+of\s+the\s+message"
    r"|this\s+is\s+a\s+copy\s+of\s+the\s+message|original\s+message\s+follows|the\s+original"
    r"\s+message\s+(?:headers?\s+)?(?:was\s+|were\s+|is\s+|are\s+)?(?:as\s+follows|below"
    r"|attached|included)"
    r"|undelivered\s+message\s+headers?\s+follows?|unsent\s+message\s+below"
    r"|original\s+message\s+headers?|headers\s+of\s+the\s+original\s+message"
    r"|returned\s+message\s+follows).*$",
    re.IGNORECASE | re.MULTILINE,
)


def _part_text(part: Message) -> str:
    try:
        payload = part.get_payload(decode=True)
    except Exception:
        payload = None
    if payload is None:
        raw = part.get_payload()
        return raw if isinstance(raw, str) else ""
    try:
        charset = part.get_content_charset() or "utf-8"
    except Exception:
        charset = "utf-8"
    try:
        return payload.decode(charset, errors="replace")
    except LookupError:
        return payload.decode("utf-8", errors="replace")


def _is_leaf_text(part: Message) -> bool:
    """A text part, or a multipart whose boundary is missing (its body is text to us)."""
    ctype = _content_type(part)
    if ctype.startswith("text/") and ctype not in ("text/rfc822-headers", "text/calendar"):
        return True
    return ctype.startswith("multipart/") and isinstance(part.get_payload(), str)


def _first_text(message: Message) -> str:
    """The first plain-text body (else the first text body with tags removed)."""
    leaves = [part for part in _walk(message) if _is_leaf_text(part)]
    for part in leaves:
        if _content_type(part) != "text/html":
            return _part_text(part)
    for part in leaves:
        return re.sub(r"<[^>]+>", " ", _part_text(part))
    return ""


def _content_type(part: Message) -> str:
    try:
        return part.get_content_type()
    except Exception:
        return "text/plain"


def _param(part: Message, name: str) -> str:
    try:
        value = part.get_param(name)
    except Exception:
        return ""
    if isinstance(value, tuple):
        value = value[2]
    return str(value or "").strip().lower()


def _walk(message: Message) -> list[Message]:
    try:
        return list(message.walk())
    except Exception:
        return [message]


def _status_blocks(part: Message) -> list[dict[str, str]]:
    """The field blocks of a message/delivery-status part (per-message, per-recipient)."""
    payload = part.get_payload()
    blocks: list[dict[str, str]] = []
    if isinstance(payload, list):
        for block in payload:
            if isinstance(block, Message):
                headers = _Headers(block)
                blocks.append({k: v[0] for k, v in headers._items.items() if v})
        if any(blocks):
            return blocks
    text = _part_text(part) if not isinstance(payload, list) else ""
    for chunk in re.split(r"\r?\n\s*\r?\n", text.strip()):
        fields: dict[str, str] = {}
        current = None
        for line in chunk.splitlines():
            if line[:1] in (" ", "\t") and current:
                fields[current] += " " + line.strip()
                continue
            name, sep, value = line.partition(":")
            if sep and name.strip():
                current = name.strip().lower()
                fields[current] = value.strip()
        if fields:
            blocks.append(fields)
    return blocks


def _typed_address(value: str) -> str | None:
    """``rfc822; <a@b>`` -> ``a@b``."""
    _, _, rest = value.partition(";")
    match = _ADDRESS_IN_TEXT.search(rest or value)
    return match.group(1).strip(".").lower() if match else None


def _original_headers(message: Message) -> tuple[str | None, str | None]:
    """Message-ID and subject of the returned message, if the bounce carries it."""
    for part in _walk(message)[1:]:
        ctype = _content_type(part)
        if ctype in ("message/rfc822", "message/global"):
            payload = part.get_payload()
            inner = payload[0] if isinstance(payload, list) and payload else None
            if isinstance(inner, Message):
                return _id_and_subject(_Headers(inner))
        if ctype in (
            "text/rfc822-headers",
            "message/rfc822-headers",
            "text/rfc822-header",
            "message/global-headers",
        ):
            return _headers_from_text(_part_text(part))
    # Non-standard bounces quote the original after a marker line in the text.
    for part in _walk(message):
        if _content_type(part) != "text/plain":
            continue
        text = _part_text(part)
        marker = _COPY_MARKERS.search(text)
        if marker:
            found = _headers_from_text(text[marker.end() :].lstrip("\r\n -"))
            if found != (None, None):
                return found
    # Last resort: a quoted Message-ID line anywhere in the bounce's text.
    for part in _walk(message):
        if not _content_type(part).startswith("text/"):
            continue
        text = _part_text(part)
        found_id = re.search(r"^[ \t>]*Message-Id:\s*(<[^<>\s]+>)", text, re.I | re.M)
        if found_id:
            found_subject = re.search(r"^[ \t>]*Subject:[ \t]*(.*)$", text, re.I | re.M)
            subject = _decode(found_subject.group(1).strip()) if found_subject else None
            return _strip_id(found_id.group(1)), subject
    return None, None


def _headers_from_text(text: str) -> tuple[str | None, str | None]:
    # Quoted headers are sometimes indented by two spaces; undo that, keep continuations.
    stripped = "\n".join(
        line[2:] if line.startswith("  ") and ":" in line[:40] else line
        for line in text.splitlines()
    )
    try:
        parsed = HeaderParser().parsestr(stripped.lstrip(), headersonly=True)
    except Exception:
        return None, None
    return _id_and_subject(_Headers(parsed))


def _id_and_subject(headers: _Headers) -> tuple[str | None, str | None]:
    message_id = _strip_id(headers.first("Message-ID"))
    subject = headers.first("Subject")
    return message_id, _decode(subject) if subject is not None else None


def _dsn_bounce(message: Message) -> Robot | None:
    """A standard RFC 3464 report, or ``None`` when there is no delivery-status part."""
    status_part = None
    for part in _walk(message):
        if _content_type(part) in ("message/delivery-status", "message/global-delivery-status"):
            status_part = part
            break
    if status_part is None:
        return None
    recipients: list[str] = []
    status: str | None = None
    diagnostic: str | None = None
    any_failed = False
    for block in _status_blocks(status_part):
        recipient = block.get("final-recipient") or block.get("original-recipient")
        if not recipient:
            continue
        action = (block.get("action") or "").strip().lower()
        block_status = _STATUS.search(block.get("status") or "")
        code = block_status.group(1) if block_status else None
        failed = action.startswith("fail") or (not action and bool(code and code[0] == "5"))
        if action and not failed and action not in ("delayed", "delivered", "relayed", "expanded"):
            failed = bool(code and code[0] in "45")
        if not failed and not any_failed and status is None:
            status, diagnostic = code, block.get("diagnostic-code")
        if failed:
            address = _typed_address(recipient)
            if address and address not in recipients:
                recipients.append(address)
            if not any_failed:
                status, diagnostic = code, block.get("diagnostic-code")
            any_failed = True
    if diagnostic:
        diagnostic = _decode(diagnostic)[:500]
    if any_failed and not recipients:
        # The report names the recipient in a form we cannot read ("@mx.example.org");
        # the human-readable part usually names it plainly.
        headers = _Headers(message)
        own = {a for _, a in _addresses(headers.all("From") + headers.all("To"))}
        recipients = _recipients_in_text(_report_text(_first_text(message)), own)
    original_id, original_subject = _original_headers(message)
    kind = "delivery failure" if any_failed else "delivery status notification"
    return Robot(
        RobotKind.BOUNCE,
        f"{kind} (RFC 3464 report)" + (f", status {status}" if status else ""),
        Bounce(recipients, status, diagnostic, original_id, original_subject),
    )


def _report_text(body: str) -> str:
    """The bounce's own words, without the copy of the returned message after them."""
    marker = _COPY_MARKERS.search(body)
    return body[: marker.start()] if marker else body


def _recipients_in_text(report: str, exclude: set[str]) -> list[str]:
    """Failed addresses as qmail, Postfix, Exim and Sendmail write them in plain text."""
    recipients: list[str] = []
    # qmail "<a@b>:", Postfix "<a@b>: host ... said", Exim and Sendmail indented or
    # ">>>"-marked addresses, "RCPT TO: a@b" transcripts.
    for match in re.finditer(
        r"^(?:\s*>>>)?\s*<?([^\s<>@]+@[^\s<>:]+?)>?(?:\s+<[^<>]+>)?:?\s*$"
        r"|^<([^\s<>@]+@[^\s<>]+)>:|^\s*RCPT\s+TO:\s*<?([^\s<>@]+@[^\s<>]+?)>?\s*$",
        report,
        re.MULTILINE | re.IGNORECASE,
    ):
        address = (match.group(1) or match.group(2) or match.group(3)).strip(".").lower()
        if address not in recipients and address not in exclude:
            recipients.append(address)
    return recipients or _addresses_in_report(report, exclude)


def _addresses_in_report(report: str, exclude: set[str]) -> list[str]:
    """Last resort: the addresses a bounce text names, less its own and the servers'."""
    found: list[str] = []
    for match in _ADDRESS_IN_TEXT.finditer(report):
        address = match.group(1).strip(".'").lower()
        local = address.partition("@")[0]
        if (
            address in exclude
            or address in found
            or local in _DAEMON_LOCALPARTS
            or local in _POSTMASTER_LOCALPARTS
            or "." not in address.partition("@")[2]
        ):
            continue
        found.append(address)
    return found[:20]


def _text_bounce(message: Message, headers: _Headers, why: str) -> Robot:
    """A non-standard bounce: recipients, status and diagnostic read from the text."""
    recipients: list[str] = []
    for value in headers.all("X-Failed-Recipients"):
        for _, address in _addresses([value]):
            if address and address not in recipients:
                recipients.append(address)
    report = _report_text(_first_text(message))
    sender = {addr for _, addr in _addresses(headers.all("From") + headers.all("To"))}
    original_id, original_subject = _original_headers(message)
    if not recipients:
        recipients = _recipients_in_text(report, sender)
    status_match = _STATUS.search(report)
    status = status_match.group(1) if status_match else None
    diagnostic = None
    diag = re.search(r"^.*\b(?:[45]\d\d)[\s-].{4,}$", report, re.MULTILINE)
    if diag:
        diagnostic = diag.group(0).strip()[:500]
    return Robot(
        RobotKind.BOUNCE,
        f"delivery failure ({why})" + (f", status {status}" if status else ""),
        Bounce(recipients, status, diagnostic, original_id, original_subject),
    )


def _bounce_hint(message: Message, headers: _Headers, subject: str) -> str | None:
    """Why a message without an RFC 3464 part is still a bounce, or ``None``."""
    senders = _addresses(headers.all("From") + headers.all("Sender"))
    if any(addr.partition("@")[0] in _DAEMON_LOCALPARTS for _, addr in senders):
        return "sent by MAILER-DAEMON"
    if headers.has("X-Failed-Recipients"):
        return "X-Failed-Recipients header"
    return_path = headers.first("Return-Path")
    null_sender = return_path is not None and return_path.strip() in ("<>", "")
    daemon_sender = any(
        addr.partition("@")[0] in _POSTMASTER_LOCALPARTS or _DAEMON_NAMES.search(name or "")
        for name, addr in senders
    )
    if not (null_sender or daemon_sender or not senders):
        return None
    if _BOUNCE_SUBJECT.search(subject):
        return "bounce subject from " + ("a null sender" if null_sender else "a mail server")
    if daemon_sender or null_sender or not senders:
        if _BOUNCE_BODY.search(_first_text(message)[:4000]):
            return "bounce text from a mail server"
    return None


_SES_START = re.compile(r'^\s*\{\s*"notificationType"\s*:\s*"(\w+)"')


def _ses_notification(message: Message) -> Robot | None:
    """Amazon SES event notifications delivered by mail (SNS e-mail subscriptions).

    Desks that send through SES often subscribe a mailbox to its bounce topic; the body is
    one JSON document, followed by SNS's unsubscribe footer.
    """
    body = _first_text(message)
    start = _SES_START.match(body)
    if start is None:
        return None
    kind = start.group(1).lower()
    try:
        data, _ = json.JSONDecoder().raw_decode(body.strip())
    except ValueError:
        # Some relays fold the long JSON line; join the lines up to SNS's footer.
        joined = "".join(line.strip() for line in body.split("\n--")[0].splitlines())
        try:
            data, _ = json.JSONDecoder().raw_decode(joined)
        except ValueError:
            data = {}
    if kind == "complaint":
        return Robot(RobotKind.AUTO_REPLY, "Amazon SES complaint notification")
    mail = data.get("mail") if isinstance(data, dict) else None
    common = (mail or {}).get("commonHeaders") or {} if isinstance(mail, dict) else {}
    original_id = _strip_id(common.get("messageId")) if isinstance(common, dict) else None
    subject = common.get("subject") if isinstance(common, dict) else None
    recipients: list[str] = []
    status = diagnostic = None
    bounce = data.get("bounce") if isinstance(data, dict) else None
    if kind == "bounce" and isinstance(bounce, dict):
        permanent = str(bounce.get("bounceType", "")).lower() == "permanent"
        for item in bounce.get("bouncedRecipients") or []:
            if not isinstance(item, dict):
                continue
            address = str(item.get("emailAddress") or "").strip().lower()
            status = status or item.get("status")
            diagnostic = diagnostic or item.get("diagnosticCode")
            if address and (permanent or str(item.get("status", "")).startswith("5")):
                recipients.append(address)
    return Robot(
        RobotKind.BOUNCE,
        f"Amazon SES {kind} notification",
        Bounce(recipients, status, diagnostic, original_id, subject),
    )


# -- the entry point ------------------------------------------------------------------


def detect_robot(message: Message, own_addresses: Collection[str]) -> Robot | None:
    """Say whether a machine wrote ``message`` and which kind; ``None`` for a person.

    ``own_addresses`` are the desk's own addresses (mailboxes, sender identities), in any
    case. Checked in this order because it decides what the desk does with the message:
    a bounce (filed on its ticket, recipient flagged) before an auto-reply header that
    many bounces also carry; our own address before everything else a loop could look
    like; lists last. Never raises for a malformed message.
    """
    own = {address.strip().lower() for address in own_addresses if address}
    headers = _Headers(message)
    subject = _decode(headers.first("Subject") or "").strip()

    report_type = (
        _param(message, "report-type") if _content_type(message) == "multipart/report" else ""
    )
    dsn = _dsn_bounce(message)
    if dsn is not None:
        return dsn
    if report_type in ("feedback-report",):
        return Robot(RobotKind.AUTO_REPLY, "feedback report (ARF): a complaint, not a bounce")
    if report_type in ("disposition-notification",):
        return Robot(RobotKind.AUTO_REPLY, "read receipt (message disposition notification)")
    if re.match(r"complaint\s+about\s+message\s+from\b", subject, re.IGNORECASE):
        return Robot(RobotKind.AUTO_REPLY, "feedback report (Hotmail complaint)")
    ses = _ses_notification(message)
    if ses is not None:
        return ses
    hint = _bounce_hint(message, headers, subject)
    if hint is not None:
        return _text_bounce(message, headers, hint)

    senders = _addresses(headers.all("From") + headers.all("Sender"))
    for _, address in senders:
        if address in own:
            return Robot(RobotKind.OWN, f"sent from our own address {address}")

    auto = _auto_reply(headers, subject)
    if auto is not None:
        return Robot(RobotKind.AUTO_REPLY, auto)

    listed = _mailing_list(headers, own)
    if listed is not None:
        return Robot(RobotKind.LIST, listed)
    return None


def detect_robot_in_bytes(raw: bytes, own_addresses: Collection[str]) -> Robot | None:
    """Convenience for tools and tests: the same answer from raw bytes (headers only parse
    is not enough for bounces, so the whole message is read)."""
    from email import message_from_bytes, policy

    try:
        message = message_from_bytes(raw, policy=policy.default)
    except Exception:
        try:
            message = BytesHeaderParser().parsebytes(raw)
        except Exception:
            return None
    return detect_robot(message, own_addresses)
