"""Reading mail from IMAP mailboxes: connect, find what is new, file it, then mark it.

How new mail is found. ``UNSEEN`` is not enough: people often read the support box in a
mail client too, and a message they opened before the poll would be skipped for ever.
So the desk marks what it filed with its own keyword, ``$VaultdeskFiled``, and asks the
server for ``UID SEARCH NOT KEYWORD $VaultdeskFiled``. A server that cannot store
keywords (its ``PERMANENTFLAGS`` has neither ``\\*`` nor the keyword) is asked for
``UNSEEN`` instead, and the mailbox page says so; "move" or "delete" after import avoid
the problem altogether, since filed mail leaves the folder.

Order of work, which is what makes a crash harmless. Messages are fetched with
``BODY.PEEK[]`` (which changes nothing on the server) in batches bounded by count and
bytes, handed to ``app.mail.ingest.file_batch``, which commits, and only after it returned
is each message marked as the mailbox says (flag: ``\\Seen`` plus the keyword; move:
``UID MOVE``, or ``COPY`` + ``\\Deleted`` + ``UID EXPUNGE`` without the MOVE extension;
delete: ``\\Deleted`` + expunge). A worker killed before the commit leaves the messages
unmarked and they are fetched again; one killed after the commit but before marking gets
them again too, and ingest answers ``duplicate`` (the unique dedupe key), which counts as
filed, so they are marked then. Nothing is lost and nothing filed twice.

TLS uses the default SSL context (certificate and host name checked); ``MAIL_IMAP_CA_FILE``
adds a CA to trust, for a company CA or the tests' own.
"""

from __future__ import annotations

import base64
import imaplib
import logging
import re
import socket
import ssl
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from flask import current_app
from flask_babel import gettext as _
from redis import Redis
from redis.exceptions import LockError

from app.extensions import db
from app.mail.mailboxes import PasswordUnavailable, unseal_password
from app.models.inbound import AfterImport, Mailbox, MailSecurity, MailSource
from app.models.types import utcnow

log = logging.getLogger(__name__)

FILED_KEYWORD = "$VaultdeskFiled"
DEFAULT_TIMEOUT_S = 30.0
BATCH_MAX_COUNT = 25
BATCH_MAX_BYTES = 20 * 1024 * 1024
_SIZE = re.compile(rb"UID (\d+)[^)]*?RFC822\.SIZE (\d+)|RFC822\.SIZE (\d+)[^)]*?UID (\d+)")
_UID = re.compile(rb"UID (\d+)")


class ImapError(Exception):
    """A step failed; ``answer`` is what the server (or the network) said, for admins."""

    def __init__(self, step: str, answer: str) -> None:
        super().__init__(f"{step}: {answer}")
        self.step = step
        self.answer = answer


@dataclass(frozen=True)
class ImapSettings:
    host: str
    port: int
    security: str
    username: str
    password: str
    folder: str = "INBOX"
    timeout: float = DEFAULT_TIMEOUT_S
    ca_file: str | None = None


def _text(data: object) -> str:
    """The server's words from an imaplib answer (a list of bytes, or an exception)."""
    if isinstance(data, (list, tuple)):
        parts = [_text(item) for item in data if item is not None]
        return " ".join(p for p in parts if p)
    if isinstance(data, bytes):
        return data.decode("utf-8", "replace").strip()
    return str(data).strip()


def tls_context(ca_file: str | None) -> ssl.SSLContext:
    """The default context (verifying), trusting ``ca_file`` too when given."""
    context = ssl.create_default_context()
    if ca_file:
        context.load_verify_locations(cafile=ca_file)
    return context


def folder_name(name: str) -> str:
    """``name`` in IMAP's modified UTF-7 (RFC 3501, 5.1.3), as servers expect folder names:
    "Erledigt – ä" is sent as "Erledigt &ICAA5A-"; imaplib would refuse it as non-ASCII."""
    out: list[str] = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            encoded = base64.b64encode("".join(pending).encode("utf-16-be")).rstrip(b"=")
            out.append("&" + encoded.decode("ascii").replace("/", ",") + "-")
            pending.clear()

    for char in name:
        if 0x20 <= ord(char) <= 0x7E:
            flush()
            out.append("&-" if char == "&" else char)
        else:
            pending.append(char)
    flush()
    return "".join(out)


def _quote(folder: str) -> str:
    encoded = folder_name(folder)
    return '"' + encoded.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass
class Transcript:
    """What the server said at each step, shown by "Test connection"."""

    lines: list[str] = field(default_factory=list)

    def add(self, step: str, text: str) -> None:
        self.lines.append(f"{step}: {text}" if text else step)


class ImapMailbox:
    """One logged-in IMAP connection with the folder selected; use as a context manager."""

    def __init__(self, settings: ImapSettings, transcript: Transcript | None = None) -> None:
        self.settings = settings
        self.transcript = transcript or Transcript()
        self.conn: imaplib.IMAP4 | None = None
        self.capabilities: frozenset[str] = frozenset()
        self.keywords_allowed = False
        self.exists = 0

    # -- connection ---------------------------------------------------------------------
    def _open(self) -> imaplib.IMAP4:
        s = self.settings
        try:
            if s.security == MailSecurity.TLS.value:
                conn: imaplib.IMAP4 = imaplib.IMAP4_SSL(
                    s.host, s.port, ssl_context=tls_context(s.ca_file), timeout=s.timeout
                )
            else:
                conn = imaplib.IMAP4(s.host, s.port, timeout=s.timeout)
        except (OSError, imaplib.IMAP4.error) as error:
            raise ImapError(_("connect"), _describe(error)) from error
        self.transcript.add(_("connected"), _text(conn.welcome))
        if s.security == MailSecurity.STARTTLS.value:
            try:
                typ, data = conn.starttls(ssl_context=tls_context(s.ca_file))
            except (OSError, imaplib.IMAP4.error) as error:
                try:
                    conn.shutdown()
                except OSError:
                    pass  # the socket may be gone already after a failed handshake
                # Never carry on in plain text: the password would cross the wire in clear.
                raise ImapError("STARTTLS", _describe(error)) from error
            self.transcript.add("STARTTLS", _text(data))
        return conn

    def open(self) -> ImapMailbox:
        s = self.settings
        conn = self._open()
        self.conn = conn
        try:
            try:
                typ, data = _log_in(conn, s.username, s.password)
            except imaplib.IMAP4.error as error:
                answer = _describe(error)
                # imaplib drops the status word of a refused login; admins expect "NO …".
                if not answer.startswith(("NO", "BAD")) and "command error" not in answer:
                    answer = f"NO {answer}"
                raise ImapError("LOGIN", answer) from error
            self.transcript.add("LOGIN", _text(data))
            # The capabilities after login (servers announce MOVE, UIDPLUS… only then).
            typ, data = conn.capability()
            self.capabilities = frozenset(_text(data).upper().split()) | frozenset(
                c.upper() for c in conn.capabilities
            )
            typ, data = conn.select(_quote(s.folder))
            if typ != "OK":
                raise ImapError("SELECT", _text(data))
            count = _text(data[0]) if data and data[0] else "0"
            self.exists = int(count) if count.isascii() and count.isdigit() else 0
            permanent = _text(conn.untagged_responses.get("PERMANENTFLAGS", [])).strip("()")
            self.keywords_allowed = "\\*" in permanent.split() or FILED_KEYWORD in permanent
            self.transcript.add(
                "SELECT " + s.folder,
                _("%(count)d messages", count=self.exists),
            )
        except (OSError, imaplib.IMAP4.error) as error:
            self.close()
            raise ImapError(_("connection"), _describe(error)) from error
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        conn, self.conn = self.conn, None
        if conn is None:
            return
        try:
            conn.logout()
        except (OSError, imaplib.IMAP4.error):
            try:
                conn.shutdown()
            except OSError:
                pass

    def __enter__(self) -> ImapMailbox:
        return self.open() if self.conn is None else self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _conn(self) -> imaplib.IMAP4:
        if self.conn is None:
            raise ImapError(_("connection"), _("not connected"))
        return self.conn

    def _uid(self, command: str, *args: str) -> list[object]:
        try:
            typ, data = self._conn().uid(command, *args)
        except (OSError, imaplib.IMAP4.error) as error:
            raise ImapError(f"UID {command}", _describe(error)) from error
        if typ != "OK":
            raise ImapError(f"UID {command}", _text(data))
        return list(data)

    # -- finding and fetching -----------------------------------------------------------
    def unfiled_uids(self) -> list[int]:
        """UIDs of messages not yet filed, oldest first (see the module docstring)."""
        criteria = f"NOT KEYWORD {FILED_KEYWORD}" if self.keywords_allowed else "UNSEEN"
        data = self._uid("SEARCH", criteria)
        uids = sorted({int(x) for chunk in data if chunk for x in _text(chunk).split()})
        return uids

    def sizes(self, uids: Sequence[int]) -> dict[int, int]:
        if not uids:
            return {}
        found: dict[int, int] = {}
        for chunk in _chunks(list(uids), 500):
            for item in self._uid("FETCH", _uid_set(chunk), "(RFC822.SIZE)"):
                raw = item[0] if isinstance(item, tuple) else item
                if not isinstance(raw, bytes):
                    continue
                match = _SIZE.search(raw)
                if match:
                    uid = match.group(1) or match.group(4)
                    size = match.group(2) or match.group(3)
                    found[int(uid)] = int(size)
        return found

    def batches(
        self,
        uids: Sequence[int],
        max_count: int = BATCH_MAX_COUNT,
        max_bytes: int = BATCH_MAX_BYTES,
    ) -> Iterator[list[int]]:
        """``uids`` cut into batches of at most ``max_count`` messages and ``max_bytes``
        (a single larger message makes a batch of its own)."""
        sizes = self.sizes(uids)
        batch: list[int] = []
        total = 0
        for uid in uids:
            size = sizes.get(uid, 0)
            if batch and (len(batch) >= max_count or total + size > max_bytes):
                yield batch
                batch, total = [], 0
            batch.append(uid)
            total += size
        if batch:
            yield batch

    def fetch(self, uids: Sequence[int]) -> list[tuple[int, bytes]]:
        """The raw messages of ``uids`` (without touching \\Seen), in the order asked."""
        got: dict[int, bytes] = {}
        data = self._uid("FETCH", _uid_set(uids), "(UID BODY.PEEK[])")
        for index, item in enumerate(data):
            if not isinstance(item, tuple) or len(item) < 2 or not isinstance(item[1], bytes):
                continue
            # Most servers name the UID before the literal ("1 (UID 7 BODY[] {n}"); some
            # after it, in the closing part that imaplib hands over as the next element.
            match = _UID.search(item[0]) if isinstance(item[0], bytes) else None
            after = data[index + 1] if index + 1 < len(data) else None
            if match is None and isinstance(after, bytes):
                match = _UID.search(after)
            if match:
                got[int(match.group(1))] = item[1]
        return [(uid, got[uid]) for uid in uids if uid in got]

    # -- marking ------------------------------------------------------------------------
    def mark(self, uids: Sequence[int], after_import: str, move_to: str | None) -> None:
        """Mark filed messages as the mailbox says; only call after the filing committed."""
        if not uids:
            return
        uid_set = _uid_set(uids)
        action = AfterImport(after_import)
        if action is AfterImport.FLAG:
            flags = "(\\Seen " + FILED_KEYWORD + ")" if self.keywords_allowed else "(\\Seen)"
            self._uid("STORE", uid_set, "+FLAGS.SILENT", flags)
            return
        if action is AfterImport.MOVE:
            target = _quote(move_to or "")
            if "MOVE" in self.capabilities:
                self._uid("MOVE", uid_set, target)
                return
            self._uid("COPY", uid_set, target)
        self._uid("STORE", uid_set, "+FLAGS.SILENT", "(\\Deleted)")
        self._expunge(uid_set)

    def _expunge(self, uid_set: str) -> None:
        """Remove only our messages (UID EXPUNGE) where UIDPLUS allows, else EXPUNGE."""
        if "UIDPLUS" in self.capabilities:
            self._uid("EXPUNGE", uid_set)
            return
        try:
            typ, data = self._conn().expunge()
        except (OSError, imaplib.IMAP4.error) as error:
            raise ImapError("EXPUNGE", _describe(error)) from error
        if typ != "OK":
            raise ImapError("EXPUNGE", _text(data))

    def ensure_folder(self, folder: str) -> None:
        """Create ``folder`` if missing (moving into a folder that does not exist fails)."""
        conn = self._conn()
        typ, data = conn.list('""', _quote(folder))
        if typ == "OK" and any(d for d in data if d):
            return
        typ, data = conn.create(_quote(folder))
        if typ != "OK":
            raise ImapError("CREATE " + folder, _text(data))


def _log_in(conn: imaplib.IMAP4, username: str, password: str) -> tuple[str, list[Any]]:
    """LOGIN, or AUTHENTICATE PLAIN for names and passwords beyond ASCII.

    imaplib sends LOGIN arguments as ASCII (a password like "pässwort" would raise before
    anything reached the server); SASL PLAIN carries UTF-8, as RFC 4616 says.
    """
    if username.isascii() and password.isascii():
        return conn.login(username, password)
    if "AUTH=PLAIN" not in {c.upper() for c in conn.capabilities}:
        raise imaplib.IMAP4.error(
            _("the server offers no AUTH=PLAIN, which a password beyond ASCII needs")
        )
    secret = b"\0" + username.encode("utf-8") + b"\0" + password.encode("utf-8")
    return conn.authenticate("PLAIN", lambda _challenge: secret)


def _describe(error: BaseException) -> str:
    if isinstance(error, socket.timeout | TimeoutError):
        return _("no answer in time")
    if isinstance(error, ssl.SSLCertVerificationError):
        return f"TLS: {error.verify_message or error.reason}"
    if isinstance(error, ssl.SSLError):
        return f"TLS: {error.reason or error}"
    if isinstance(error, ConnectionRefusedError):
        return _("connection refused")
    if isinstance(error, socket.gaierror):
        return _("unknown host")
    text = _text(error.args[0]) if error.args else str(error)
    return text or type(error).__name__


def _uid_set(uids: Sequence[int]) -> str:
    return ",".join(str(u) for u in uids)


def _chunks(items: list[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def settings_for(
    host: str, port: int, security: str, username: str, password: str, folder: str
) -> ImapSettings:
    """Settings with the configured timeout and CA file."""
    config = current_app.config
    return ImapSettings(
        host=host,
        port=port,
        security=security,
        username=username,
        password=password,
        folder=folder,
        timeout=float(config.get("MAIL_IMAP_TIMEOUT", DEFAULT_TIMEOUT_S)),
        ca_file=config.get("MAIL_IMAP_CA_FILE") or None,
    )


@dataclass(frozen=True)
class ConnectionCheck:
    ok: bool
    lines: list[str]
    keywords: bool = False


def check_connection(settings: ImapSettings) -> ConnectionCheck:
    """Connect, log in, select the folder and log out; what the server said at each step."""
    transcript = Transcript()
    try:
        with ImapMailbox(settings, transcript) as box:
            keywords = box.keywords_allowed
            if not keywords:
                transcript.add(
                    _("note"),
                    _(
                        "the server cannot store our keyword %(keyword)s; mail read by "
                        "people before a poll is only found with move or delete after import",
                        keyword=FILED_KEYWORD,
                    ),
                )
    except ImapError as error:
        transcript.add(error.step, error.answer)
        return ConnectionCheck(False, transcript.lines)
    return ConnectionCheck(True, transcript.lines, keywords)


FileBatch = Callable[[list[tuple[bytes, str | None]]], Sequence[object]]


@dataclass
class PollResult:
    found: int = 0
    filed: int = 0
    marked: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    unfiled: list[str] = field(default_factory=list)  # messages left on the server, why


def _never_transient(error: BaseException) -> bool:
    return False


def poll(
    box: ImapMailbox,
    file_batch: FileBatch,
    *,
    after_import: str,
    move_to: str | None,
    on_fetched: Callable[[int], None] | None = None,
    transient: Callable[[BaseException], bool] = _never_transient,
) -> PollResult:
    """File every unfiled message of ``box`` through ``file_batch`` and mark it afterwards.

    ``file_batch`` gets ``(raw, source_ref)`` pairs (source_ref
    ``"<folder>:<uidvalidity>:<uid>"``) and must commit before it returns, one ``Filed``
    per pair. ``on_fetched`` is told how many messages were fetched and are about to be
    filed (job progress).

    When a batch raises, ``transient(error)`` decides: a database outage (True) ends the
    poll, nothing of the batch marked, to be fetched again next time. Anything else is a
    message the pipeline could not even quarantine; the batch is filed again one message
    at a time, so that one message stays unmarked on the server (reported in
    ``unfiled``) and the rest of the mailbox is not held back by it.
    """
    result = PollResult()
    uids = box.unfiled_uids()
    result.found = len(uids)
    if not uids:
        return result
    if AfterImport(after_import) is AfterImport.MOVE and move_to:
        box.ensure_folder(move_to)
    validity = _uidvalidity(box)
    for batch in box.batches(uids, BATCH_MAX_COUNT, BATCH_MAX_BYTES):
        messages = box.fetch(batch)
        if on_fetched is not None:
            on_fetched(len(messages))
        refs = [f"{box.settings.folder}:{validity}:{uid}" for uid, _raw in messages]
        items = [(raw, ref) for (_uid, raw), ref in zip(messages, refs, strict=True)]
        try:
            filed = list(file_batch(items))  # commits; raises when nothing was committed
            done = [uid for uid, _raw in messages]
        except Exception as error:
            if transient(error):
                raise
            filed, done = _one_by_one(file_batch, messages, items, transient, result)
        # Should the counts ever differ, marking nothing is the safe side: the next poll
        # fetches them again and they come back as duplicates.
        if len(filed) != len(done):
            log.error("file_batch returned %d results for %d messages", len(filed), len(done))
            continue
        result.filed += len(filed)
        for one in filed:
            outcome = str(getattr(getattr(one, "outcome", None), "value", "unknown"))
            result.outcomes[outcome] = result.outcomes.get(outcome, 0) + 1
        box.mark(done, after_import, move_to)
        result.marked += len(done)
    return result


def _one_by_one(
    file_batch: FileBatch,
    messages: list[tuple[int, bytes]],
    items: list[tuple[bytes, str | None]],
    transient: Callable[[BaseException], bool],
    result: PollResult,
) -> tuple[list[object], list[int]]:
    filed: list[object] = []
    done: list[int] = []
    for (uid, _raw), item in zip(messages, items, strict=True):
        try:
            got = list(file_batch([item]))
        except Exception as error:
            if transient(error):
                raise
            result.unfiled.append(f"UID {uid}: {type(error).__name__}: {error}")
            log.exception("IMAP message %s could not be filed", item[1])
            continue
        filed.extend(got)
        done.append(uid)
    return filed, done


def _uidvalidity(box: ImapMailbox) -> str:
    values = box._conn().untagged_responses.get("UIDVALIDITY") or []
    return _text(values[-1]) if values else "0"


def retry_later(error: BaseException) -> bool:
    """Whether filing failed for a reason outside the message: the database or the vault
    storage (disk, S3) is unreachable. Such mail is left where it is and tried again."""
    from app.mail.ingest import database_down
    from vault import BlobNotFound, IntegrityError, VaultError

    if database_down(error):
        return True
    if isinstance(error, IntegrityError | BlobNotFound):
        return False
    return isinstance(error, OSError | VaultError)


POLL_LOCK = "vaultdesk:mailbox-poll:{id}"
# Renewed after every batch, so a poll holds it as long as it works, while a worker killed
# mid-poll blocks its mailbox for at most this long.
POLL_LOCK_SECONDS = 5 * 60
POLL_JOB_SECONDS = 30 * 60


@dataclass(frozen=True)
class PollReport:
    """What one poll of a configured mailbox did (the job's result)."""

    mailbox_id: int
    skipped: bool = False  # another worker is polling it right now
    error: str | None = None
    found: int = 0
    filed: int = 0
    marked: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)


def poll_mailbox(
    mailbox: Mailbox, redis: Redis, *, on_fetched: Callable[[int], None] | None = None
) -> PollReport:
    """Poll one configured mailbox: file what is new, mark it, record how it went.

    Holds a Redis lock per mailbox, so two workers never poll one box at once (they
    would file the same messages in parallel; the dedupe key would catch it, but the
    second would mark and count them as duplicates). Connection and server errors are
    recorded in ``last_error`` (for the admin list) and returned, not raised: the next
    poll tries again. Database errors propagate, since nothing can be recorded then;
    the messages stay unmarked and are fetched again by a later poll.

    Commits: ``file_batch`` commits each batch, and the status is part of the session
    the caller commits.
    """
    from app.mail.ingest import file_batch  # the one ingest pipeline

    lock = redis.lock(POLL_LOCK.format(id=mailbox.id), timeout=POLL_LOCK_SECONDS)
    if not lock.acquire(blocking=False):
        return PollReport(mailbox.id, skipped=True)
    try:
        started = utcnow()
        mailbox_id = mailbox.id
        try:
            password = unseal_password(mailbox)
            settings = settings_for(
                mailbox.host,
                mailbox.port,
                mailbox.security,
                mailbox.username,
                password,
                mailbox.folder,
            )
            after_import, move_to = mailbox.after_import, mailbox.move_to
            with ImapMailbox(settings) as box:

                def file_and_renew(items: list[tuple[bytes, str | None]]) -> Sequence[object]:
                    filed = file_batch(items, source=MailSource.IMAP, mailbox=mailbox)
                    lock.reacquire()
                    return filed

                result = poll(
                    box,
                    file_and_renew,
                    after_import=after_import,
                    move_to=move_to,
                    on_fetched=on_fetched,
                    transient=retry_later,
                )
        except (ImapError, PasswordUnavailable) as error:
            db.session.rollback()  # nothing of a half-done batch; filed batches committed
            message = str(error)
            mailbox.last_polled_at = started
            mailbox.last_error = message[:2000]
            log.warning("mailbox %s: %s", mailbox_id, message)
            return PollReport(mailbox_id, error=message)
        mailbox.last_polled_at = started
        mailbox.last_success_at = utcnow()
        mailbox.last_error = None
        if result.unfiled:
            mailbox.last_error = _(
                "%(count)d messages could not be filed and stay on the server: %(which)s",
                count=len(result.unfiled),
                which="; ".join(result.unfiled),
            )[:2000]
        return PollReport(
            mailbox_id,
            error=mailbox.last_error,
            found=result.found,
            filed=result.filed,
            marked=result.marked,
            outcomes=result.outcomes,
        )
    finally:
        try:
            lock.release()
        except LockError:
            pass
