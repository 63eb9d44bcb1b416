"""Handing one finished message to the world: an SMTP server, or a folder of .eml files.

Why the folder: a fresh install has no mail server, yet sign-in links and invitations must
still be readable somewhere. With ``SMTP_URL`` unset every message is written to
``instance/outbox/`` (folder 0700, files 0600, because the mails carry sign-in links) and an
admin reads them at ``/admin/outbox``.

``send_mail`` sends synchronously and does not retry: the portal's transactional mails (sign-in
links, resets, invitations) call it from their jobs, which retry. Ticket replies go through
outbox rows and the relay (``app.mail.relay``), which uses ``connect_smtp`` and
``write_outbox`` from here.
"""

from __future__ import annotations

import os
import re
import secrets
import smtplib
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import format_datetime, make_msgid, parseaddr, parsedate_to_datetime
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from flask import current_app

from app.errors import DomainError
from app.mail.addresses import domain_of

SMTP_TIMEOUT = 10
# <UTC timestamp with microseconds>-<16 hex>.eml: sortable by name, never guessable, and the
# only names the outbox viewer accepts (nothing else can reach the file system through it).
OUTBOX_NAME = re.compile(r"\d{8}T\d{12}Z-[0-9a-f]{16}\.eml")


class MailNotSent(DomainError):
    """The SMTP server could not be reached or refused the message.

    A ``DomainError`` so a view that lets it through answers with a page, not a crash; the
    message names the server but never the credentials.
    """

    status = 502


@dataclass(frozen=True)
class SmtpSettings:
    """``SMTP_URL`` taken apart: ``smtp://user:pass@host:port?starttls=1`` or ``smtps://…``."""

    host: str
    port: int
    implicit_tls: bool
    starttls: bool
    username: str | None
    password: str | None


def parse_smtp_url(url: str) -> SmtpSettings:
    """Read an SMTP URL; default ports are 465 (smtps), 587 (starttls) and 25."""
    parts = urlsplit(url)
    if parts.scheme not in {"smtp", "smtps"} or not parts.hostname:
        raise ValueError("SMTP_URL must look like smtp://user:pass@host:port or smtps://…")
    implicit_tls = parts.scheme == "smtps"
    flag = parse_qs(parts.query).get("starttls", ["0"])[-1].lower()
    starttls = not implicit_tls and flag in {"1", "true", "yes", "on"}
    default_port = 465 if implicit_tls else 587 if starttls else 25
    return SmtpSettings(
        host=parts.hostname,
        port=parts.port or default_port,
        implicit_tls=implicit_tls,
        starttls=starttls,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
    )


def build_message(to: str, subject: str, text: str, *, html: str | None = None) -> EmailMessage:
    """A UTF-8 message from ``MAIL_FROM`` with Date and a Message-ID in the sender's domain."""
    sender = current_app.config["MAIL_FROM"]
    domain = domain_of(parseaddr(sender)[1])
    message = EmailMessage(policy=policy.SMTP)
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = format_datetime(datetime.now(UTC))
    message["Message-ID"] = make_msgid(domain=domain)
    # Transactional mail: out-of-office robots must not answer it (RFC 3834).
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(text, charset="utf-8")
    if html is not None:
        message.add_alternative(html, subtype="html", charset="utf-8")
    return message


def send_mail(to: str, subject: str, text: str, *, html: str | None = None) -> str:
    """Send (or file) one message and return its Message-ID; ``MailNotSent`` on failure."""
    message = build_message(to, subject, text, html=html)
    url = current_app.config.get("SMTP_URL")
    if url:
        _send_smtp(parse_smtp_url(url), message)
    else:
        write_outbox(message)
    return str(message["Message-ID"])


def connect_smtp(settings: SmtpSettings, timeout: float = SMTP_TIMEOUT) -> smtplib.SMTP:
    """An open, greeted (and, as configured, encrypted and logged-in) SMTP connection.

    The relay keeps one open for a batch of messages; ``send_mail`` opens one per message.
    """
    if settings.implicit_tls:
        client: smtplib.SMTP = smtplib.SMTP_SSL(
            settings.host, settings.port, timeout=timeout, context=ssl.create_default_context()
        )
    else:
        client = smtplib.SMTP(settings.host, settings.port, timeout=timeout)
    try:
        client.ehlo_or_helo_if_needed()
        if settings.starttls:
            client.starttls(context=ssl.create_default_context())
            client.ehlo()
        if settings.username:
            client.login(settings.username, settings.password or "")
    except BaseException:
        client.close()
        raise
    return client


def _send_smtp(settings: SmtpSettings, message: EmailMessage) -> None:
    where = f"{settings.host}:{settings.port}"
    try:
        with connect_smtp(settings) as client:
            client.send_message(message)
    except (smtplib.SMTPException, OSError) as exc:
        raise MailNotSent(f"The mail server {where} did not accept the message: {exc}") from exc


def outbox_dir() -> Path:
    return Path(current_app.instance_path) / "outbox"


def write_outbox(message: EmailMessage | bytes) -> Path:
    folder = outbox_dir()
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    folder.chmod(0o700)  # mkdir's mode is filtered by the umask
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    path = folder / f"{stamp}-{secrets.token_hex(8)}.eml"
    # O_EXCL: never overwrite; 0600 from the first byte, not chmod-ed afterwards.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        if isinstance(message, bytes):
            handle.write(message.replace(b"\r\n", b"\n"))
        else:
            handle.write(message.as_bytes(policy=policy.default))
    return path


@dataclass(frozen=True)
class FiledMailEntry:
    """What the admin list shows of one filed message."""

    name: str
    date: datetime | None
    to: str
    subject: str


def _read(name: str, headers_only: bool) -> EmailMessage | None:
    if not OUTBOX_NAME.fullmatch(name):
        return None
    path = outbox_dir() / name
    try:
        with path.open("rb") as handle:
            parsed = BytesParser(policy=policy.default).parse(handle, headersonly=headers_only)
    except (FileNotFoundError, NotADirectoryError):
        return None
    return parsed if isinstance(parsed, EmailMessage) else None


def _date(message: EmailMessage) -> datetime | None:
    try:
        return parsedate_to_datetime(str(message["Date"]))
    except (TypeError, ValueError):
        return None


def list_filed_mail() -> list[FiledMailEntry]:
    """Filed messages, newest first (names start with the UTC time they were written)."""
    folder = outbox_dir()
    if not folder.is_dir():
        return []
    entries = []
    for name in sorted((p.name for p in folder.iterdir()), reverse=True):
        message = _read(name, headers_only=True)
        if message is not None:
            entries.append(
                FiledMailEntry(
                    name, _date(message), str(message["To"] or ""), str(message["Subject"] or "")
                )
            )
    return entries


@dataclass(frozen=True)
class FiledMail:
    entry: FiledMailEntry
    sender: str
    text: str


def read_filed_mail(name: str) -> FiledMail | None:
    """One filed message's headers and text part; None for any name we did not write."""
    message = _read(name, headers_only=False)
    if message is None:
        return None
    body = message.get_body(preferencelist=("plain",))
    text = body.get_content() if body is not None else ""
    entry = FiledMailEntry(
        name, _date(message), str(message["To"] or ""), str(message["Subject"] or "")
    )
    return FiledMail(entry, str(message["From"] or ""), text)


__all__ = [
    "MailNotSent",
    "FiledMailEntry",
    "FiledMail",
    "build_message",
    "connect_smtp",
    "list_filed_mail",
    "parse_smtp_url",
    "read_filed_mail",
    "send_mail",
    "write_outbox",
]
