"""Filing received mail: one pipeline for IMAP, the MTA pipe, the import command and drops.

``file_message`` (one message, one commit) and ``file_batch`` (many messages, one commit,
a savepoint each) do the same thing per message:

1. **One row per message, claimed first.** An ``InboundMail`` row is inserted with
   ``ON CONFLICT DO NOTHING`` on its unique ``dedupe_key`` (``mid:`` + Message-ID, or
   ``sha:`` + SHA-256 of the bytes when there is none). No row inserted means the message
   was already received -- by this mailbox, another mailbox or an earlier run killed before
   it marked the message on the server -- and nothing else is written (``duplicate``).
   The database decides, so two workers cannot both pass a check. (An INSERT rather than a
   savepoint also starts SQLite's transaction, so the savepoints below never commit early.)
2. **The original, always.** The raw bytes go to the vault (``mail_original``, encrypted,
   whatever the upload limit) and the row points at them before anything can go wrong with
   the content. A vault that refuses to store is an outage, not bad mail: the error goes
   to the caller (the pipe exits 75, IMAP leaves the message unmarked) and nothing commits.
3. **Everything else in a savepoint**: throttle, robots, threading, contact, ticket, entry,
   files. Any error in there (a part the vault cannot take, a bug on strange input) rolls
   back to the savepoint and the message is ``quarantined`` with the reason, original kept.
   Errors that mean the database itself is gone are raised, never turned into quarantine.

Decisions (where the issue leaves room):

- **Unknown sender**: a new contact, ``verified=False``, without an account (a From header
  proves nothing, so it is not matched to an account by domain), and an unassigned ticket.
- **Employee mail** (From is an active staff user): filed on the ticket it threads to as a
  staff entry. With the support address in To it is *distributed* -- sent to the ticket's
  recipients through ``replies.answer`` from the mailbox's identity (or the default one);
  with the support address only in Cc/Bcc the people it was written to have it already,
  so it is filed, not sent. Staff mail that names no ticket goes to review: the desk
  cannot tell who the customer is.
- **Bcc**: when no address of ours is in To or Cc, the mail reached us by Bcc; the To/Cc
  people did not write to the desk, so none of them becomes a recipient, and a follow-up
  ticket keeps the old ticket's customer.
- **Cc'd people** of a customer mail (and other To addresses) become Cc recipients of the
  ticket, except our own addresses and staff.
- **Customer mail on a worked ticket** (one with a manager or subscribers) is passed on to
  them by mail (``outbound.queue_distribution``: manager in To, the others in Cc,
  automatic). A new ticket has nobody yet: the dispatcher's inbox covers it.
- **Robots** never notify, answer or put a ticket in the inbox. A bounce is filed as an
  internal entry on the ticket its original message names (Message-ID, else subject tag)
  and the failed recipients' contacts get ``mail_bounced_at``; when the returned
  Message-ID is one of our sent copies, that copy is marked bounced and the ticket goes to
  the inbox with a note (``bounces.mark_bounced``), since the customer never got the
  answer; an auto-reply or list mail
  that threads onto a ticket is filed there internally; mail from our own addresses and
  robots matching no ticket are ``ignored`` (row and original kept).
- **Throttle**: more than ``MAIL_SENDER_LIMIT_PER_HOUR`` rows from one sender within the
  last hour (staff excepted) quarantine further mail from them, with that reason.
- Held mail (review, quarantine, ignored) stores only the original; its attachments are
  read from it again when an agent files it (``held``).
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_for
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from flask import current_app
from flask_babel import gettext as _
from redis.exceptions import RedisError
from sqlalchemy import bindparam, func, insert, inspect, select, update
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from app import audit, batch_memo
from app.actor import Actor
from app.errors import InvalidInput
from app.extensions import db
from app.files.names import display_name
from app.files.store import deferred_durability, get_vault, store_upload
from app.mail import threading
from app.mail.content import has_remote_images, sanitise_mail_html
from app.mail.parsing import MailUnreadable, ParsedMail, parse_message
from app.mail.robots import Bounce, Robot, RobotKind, detect_robot
from app.models.files import FileKind, VaultFile
from app.models.inbound import InboundMail, Mailbox, MailOutcome, MailSource
from app.models.mail import SenderIdentity
from app.models.people import STAFF_ROLES, Contact, User, UserRole
from app.models.tickets import Channel, EntryKind, RecipientKind, StreamEntry, Ticket
from app.models.types import utcnow
from vault import StoredFile, Vault

log = logging.getLogger(__name__)

NO_SUBJECT = "(no subject)"
ORIGINAL_WRITERS = 8  # threads putting a batch's originals into the vault at once
_WRITERS: dict[int, ThreadPoolExecutor] = {}  # process id -> its pool of original writers


def _original_writers() -> ThreadPoolExecutor:
    """The process's pool of original writers, started once and kept between batches.

    A pool per batch started eight threads per batch, and starting a thread waits for it
    to run, which on a busy machine cost more than a tenth of a plain message's time
    (``bench/mail_ingest.py``). Keyed by process id: a forked worker inherits the parent's
    pool object but none of its threads, so it starts its own.
    """
    pid = os.getpid()
    pool = _WRITERS.get(pid)
    if pool is None:
        _WRITERS.clear()
        pool = _WRITERS[pid] = ThreadPoolExecutor(
            ORIGINAL_WRITERS, thread_name_prefix="mail-original"
        )
    return pool
_PRELOAD_CHUNK = 500  # senders per IN (...) list of Context.preload


@dataclass(frozen=True)
class Filed:
    """What became of one message; the CLI prints it, IMAP marks the message after it."""

    outcome: MailOutcome
    inbound_id: int | None
    ticket_number: str | None
    subject: str
    from_address: str | None
    attachments: list[str]
    reason: str | None

    def as_json(self, file: str | None) -> dict[str, Any]:
        """The JSON line of ``vaultdesk mail pipe/import --json`` (format from the issue)."""
        return {
            "file": file,
            "outcome": MailOutcome(self.outcome).value,
            "ticket": self.ticket_number,
            "subject": self.subject,
            "from": self.from_address,
            "attachments": list(self.attachments),
            "reason": self.reason,
        }


def database_down(error: BaseException) -> bool:
    """Errors after which no quarantine row could be written either: let the caller retry."""
    if isinstance(error, OperationalError | InterfaceError):
        return True
    return isinstance(error, DBAPIError) and bool(error.connection_invalidated)


@dataclass
class Context:
    """What stays the same for every message of a batch (looked up once)."""

    source: MailSource
    mailbox: Mailbox | None
    own: frozenset[str]
    limit: int
    identity_id: int | None
    recent: dict[str, int] = field(default_factory=dict)  # sender -> mails in the last hour
    threads: BatchTickets | None = None  # file_batch: the batch's ticket lookups
    staff_ids: dict[str, int | None] = field(default_factory=dict)  # address -> staff user id
    # address -> the contact find_contact would return (None: it would find none), for the
    # senders of the batch; kept up to date as contacts are made (contact_for).
    contacts: dict[str, Contact | None] = field(default_factory=dict)

    def preload(self, senders: Sequence[str]) -> None:
        """Look up what ``route`` asks about each sender in three queries for the batch.

        Staff status, the throttle's count of the last hour and the contact were one query
        each per message (or per sender); for a batch of 200 that was most of its
        statements (``bench/mail_ingest.py``). The answers are the ones the per-message
        queries give, as long as the batch's own writes are accounted for, which they are:
        the throttle counts each message it sees (``_throttled``), new contacts are added
        by ``contact_for``, and nothing else in ingestion creates contacts or staff.
        """
        wanted = sorted({a for a in senders if a} - self.staff_ids.keys())
        for start in range(0, len(wanted), _PRELOAD_CHUNK):
            chunk = wanted[start : start + _PRELOAD_CHUNK]
            self.staff_ids.update(dict.fromkeys(chunk))
            rows = db.session.execute(
                select(User.email, func.min(User.id))
                .join(UserRole, UserRole.user_id == User.id)
                .where(
                    User.email.in_(chunk),
                    User.active.is_(True),
                    UserRole.role.in_([r.value for r in STAFF_ROLES]),
                )
                .group_by(User.email)
            )
            self.staff_ids.update({email: user_id for email, user_id in rows})
            if self.limit > 0:
                unknown = [a for a in chunk if a not in self.recent]
                since = utcnow() - timedelta(hours=1)
                counts = dict.fromkeys(unknown, 0)
                counts.update(
                    db.session.execute(
                        select(InboundMail.from_address, func.count(InboundMail.id))
                        .where(
                            InboundMail.from_address.in_(unknown),
                            InboundMail.received_at >= since,
                        )
                        .group_by(InboundMail.from_address)
                    ).all()
                )
                self.recent.update(counts)
            found: dict[str, Contact | None] = dict.fromkeys(chunk)
            for contact in db.session.execute(
                select(Contact)
                .where(Contact.email.in_(chunk))
                .order_by(Contact.verified.desc(), Contact.id)
            ).scalars():
                if found[contact.email] is None:
                    found[contact.email] = contact
            self.contacts.update(found)

    def contact(self, address: str) -> Contact | None:
        """The sender's contact as ``find_contact`` gives it, from the batch's cache."""
        if address in self.contacts:
            contact = self.contacts[address]
            if contact is None:
                return None
            state = inspect(contact)
            # Made in a savepoint that rolled back (quarantine), or deleted: ask again.
            if state.persistent and not state.deleted and contact.email == address:
                return contact
        contact = find_contact(address)
        self.contacts[address] = contact
        return contact

    def staff(self, address: str | None) -> User | None:
        """The active staff user with this address, looked up once per batch."""
        if not address:
            return None
        if address not in self.staff_ids:
            user = threading.staff_user(address)
            self.staff_ids[address] = user.id if user is not None else None
        user_id = self.staff_ids[address]
        return db.session.get(User, user_id) if user_id is not None else None

    @classmethod
    def load(cls, source: MailSource, mailbox: Mailbox | None) -> Context:
        own = set(db.session.execute(select(Mailbox.address)).scalars())
        own |= set(db.session.execute(select(SenderIdentity.address)).scalars())
        if mailbox is not None:
            own.add(mailbox.address)
        identity_id = mailbox.identity_id if mailbox is not None else None
        if identity_id is None:
            identity_id = db.session.execute(
                select(SenderIdentity.id)
                .where(SenderIdentity.active.is_(True))
                .order_by(SenderIdentity.is_default.desc(), SenderIdentity.id)
                .limit(1)
            ).scalar_one_or_none()
        return cls(
            source=MailSource(source),
            mailbox=mailbox,
            own=frozenset(a.lower() for a in own),
            limit=int(current_app.config.get("MAIL_SENDER_LIMIT_PER_HOUR", 30)),
            identity_id=identity_id,
        )


class BatchTickets:
    """The tickets a batch's messages may thread to, looked up in three queries up front.

    Per message, threading asked for the ticket by number, the tickets of cited
    Message-IDs (two queries) and distribution loaded the ticket's subscribers: three or
    four statements a reply (``bench/mail_ingest.py``). The answers are the ones
    ``threading.ticket_by_headers``/``ticket_by_number`` give, because the batch's own
    writes are accounted for: every message the batch files on a ticket is noted
    (``filed``), so a reply later in the batch to a mail earlier in it threads as before;
    a Message-ID of our own outgoing mail cannot be cited before that mail was sent,
    which is after the commit; a number not found up front is asked for again.
    """

    def __init__(self) -> None:
        self.tickets: dict[int, Ticket] = {}
        self.numbers: dict[str, Ticket] = {}
        self.keys: dict[str, int] = {}  # inbound dedupe key -> ticket id
        self.outbox: dict[str, int] = {}  # our Message-ID as stored -> ticket id

    @classmethod
    def load(cls, prepared: Sequence[Prepared]) -> BatchTickets:
        from sqlalchemy import or_
        from sqlalchemy.orm import selectinload

        from app.models.mail import OutboxMessage

        found = cls()
        numbers: set[str] = set()
        cited: set[str] = set()
        for p in prepared:
            if p.parsed is None:
                continue
            numbers.update(threading.subject_numbers(p.parsed.subject))
            cited.update(threading.referenced_ids(p.parsed.in_reply_to, p.parsed.references))
        ids = sorted(cited)
        for start in range(0, len(ids), _PRELOAD_CHUNK):
            chunk = ids[start : start + _PRELOAD_CHUNK]
            keys = [threading.key_for_message_id(m) for m in chunk]
            found.keys.update(
                db.session.execute(
                    select(InboundMail.dedupe_key, InboundMail.ticket_id).where(
                        InboundMail.dedupe_key.in_(keys), InboundMail.ticket_id.is_not(None)
                    )
                ).all()
            )
            found.outbox.update(
                db.session.execute(
                    select(OutboxMessage.message_id, OutboxMessage.ticket_id).where(
                        OutboxMessage.message_id.in_([f"<{m}>" for m in chunk] + chunk),
                        OutboxMessage.ticket_id.is_not(None),
                    )
                ).all()
            )
        ticket_ids = sorted({*found.keys.values(), *found.outbox.values()})
        wanted = sorted(numbers)
        for start in range(0, max(len(ticket_ids), len(wanted)), _PRELOAD_CHUNK):
            id_chunk = ticket_ids[start : start + _PRELOAD_CHUNK]
            number_chunk = wanted[start : start + _PRELOAD_CHUNK]
            for ticket in db.session.execute(
                select(Ticket)
                .where(or_(Ticket.id.in_(id_chunk), Ticket.number.in_(number_chunk)))
                .options(selectinload(Ticket.subscribers))
            ).scalars():
                found.tickets[ticket.id] = ticket
                found.numbers[ticket.number] = ticket
        return found

    def filed(self, key: str, ticket_id: int | None) -> None:
        """A message of the batch was filed on ``ticket_id``: later citations find it."""
        if ticket_id is not None:
            self.keys[key] = ticket_id

    def by_headers(self, ids: Sequence[str]) -> Ticket | None:
        """``threading.ticket_by_headers``, answered from the batch's lookups."""
        if not ids:
            return None
        rank = {mid: i for i, mid in enumerate(ids)}
        found: list[tuple[int, int]] = []
        for i, mid in enumerate(ids):
            ticket_id = self.keys.get(threading.key_for_message_id(mid))
            if ticket_id is not None:
                found.append((i, ticket_id))
            for stored in (f"<{mid}>", mid):
                ticket_id = self.outbox.get(stored)
                if ticket_id is not None:
                    found.append((rank.get(stored.strip("<>"), len(ids)), ticket_id))
        if not found:
            return None
        ticket_id = min(found)[1]
        return self.tickets.get(ticket_id) or db.session.get(Ticket, ticket_id)

    def by_number(self, number: str) -> Ticket | None:
        """``threading.ticket_by_number``: found up front, else asked again."""
        ticket = self.numbers.get(number)
        return ticket if ticket is not None else threading.ticket_by_number(number)


@dataclass
class Result:
    outcome: MailOutcome
    reason: str | None = None
    ticket: Ticket | None = None
    entry_id: int | None = None
    entry: StreamEntry | None = None  # when the id is not known yet: read after the flush
    robot: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    attachments: list[str] = field(default_factory=list)
    jobs: list[tuple[str, int]] = field(default_factory=list)


def file_message(
    raw: bytes,
    *,
    source: MailSource,
    mailbox: Mailbox | None = None,
    source_ref: str | None = None,
) -> Filed:
    """Parse, thread, store and COMMIT one message; return only after the commit.

    Never raises for bad mail (it is quarantined); raises when the database or the vault
    is unreachable, with nothing committed, so the sender (MTA, IMAP) tries again.
    """
    try:
        # The original and the files: flushed before the commit; the audit rows and the
        # search index: written together before the commit.
        with deferred_durability(), deferred_writes():
            filed = file_one(raw, Context.load(source, mailbox), source_ref)
    except BaseException:
        db.session.rollback()
        raise
    _commit()
    return filed


@contextmanager
def deferred_writes() -> Iterator[None]:
    """Audit rows and search-index rows of the block: one write each, before the commit.

    Both stay in the filing's transaction (``audit.deferred``, ``search.deferred_reindex``);
    a message whose savepoint rolls back takes its audit rows with it (``attempt``).
    Which staff a new ticket concerns, and what they chose, is asked once per block
    (``notifications.batch``): filing mail changes no user, role or preference; nor does
    it change SLA policies or assignment rules, whose answers ``batch_memo`` keeps.
    """
    from app.notifications import batch as notify_batch
    from app.tickets.search import deferred_reindex

    with audit.deferred(), deferred_reindex(), notify_batch(), batch_memo.batch():
        yield


def _commit() -> None:
    """Commit the filing; a Redis outage after it does not undo what is filed.

    The follow-up jobs (classification, acknowledgement) go to Redis in the after-commit
    hook, so a ``RedisError`` out of ``commit`` means the mail *is* committed. Reporting
    a failure then would make the MTA or IMAP deliver it again only to hear "duplicate";
    so the filing stands, the missing jobs are logged, and the session is reset for the
    next message.
    """
    try:
        db.session.commit()
    except RedisError as error:
        log.error("mail filed, but its follow-up jobs could not be queued: %s", error)
        db.session.close()
    except BaseException:
        db.session.rollback()
        raise


def file_batch(
    items: Sequence[tuple[bytes, str | None]],
    *,
    source: MailSource,
    mailbox: Mailbox | None = None,
) -> list[Filed]:
    """File many messages in one transaction (a savepoint each), then commit once.

    The originals of the batch are encrypted into the vault first, by a few threads at
    once, overlapping the database work of the messages before them. Every blob of the
    batch (originals and attachments) is written without its own flush to the device and
    all are flushed together before the commit (``deferred_durability``): once this
    returns, every blob its rows name is durable; a crash before leaves only orphan blobs.
    A duplicate's blob is shredded again.
    """
    try:
        context = Context.load(source, mailbox)
        prepared = [prepare(raw) for raw, _ in items]
        context.preload([p.parsed.from_address for p in prepared if p.parsed is not None])
        context.threads = BatchTickets.load(prepared)
        with deferred_durability(), deferred_writes():
            vault = get_vault()
            pool = _original_writers()
            futures: list[Future[StoredFile]] = [
                pool.submit(put_original, vault, p) for p in prepared
            ]
            try:
                # Filing waits for each original only when it comes to it: the database
                # work of one message overlaps the vault writes of the next ones.
                results = [
                    file_one(raw, context, ref, prepared=p, stored=f.result())
                    for (raw, ref), p, f in zip(items, prepared, futures, strict=True)
                ]
            finally:
                # As a pool of the batch's own did on leaving: no write outlives the batch
                # (on failure too, so the blobs' flush and the rollback come after them).
                wait_for(futures)
    except BaseException:
        db.session.rollback()
        raise
    _commit()
    return results


@dataclass(frozen=True)
class Prepared:
    """A message read: parsed (or why not), its hash and its dedupe key."""

    raw: bytes  # what is stored: the message without an mbox envelope line
    parsed: ParsedMail | None
    unreadable: str | None
    sha256: str
    key: str


def prepare(raw: bytes) -> Prepared:
    try:
        parsed = parse_message(raw)
    except MailUnreadable as error:
        sha = hashlib.sha256(raw).hexdigest()
        return Prepared(raw, None, str(error) or "unreadable", sha, f"sha:{sha}")
    key = (
        threading.key_for_message_id(parsed.message_id)
        if parsed.message_id
        else f"sha:{parsed.sha256}"
    )
    return Prepared(parsed.raw, parsed, None, parsed.sha256, key)


def put_original(vault: Vault, prepared: Prepared) -> StoredFile:
    """Encrypt the original into the vault (no size limit: the mail has arrived)."""
    return vault.put(io.BytesIO(prepared.raw), max_size=2**62, mime_type="message/rfc822")


# The statements every message runs are built once and executed on the connection: built
# per message and run through the session, their construction, cache-key computation and
# the ORM's autoflush cost more than SQLite's work (``bench/mail_ingest.py``). Nothing they
# write or read is pending in the session: the inbound row is only ever written this way.
_INBOUND = InboundMail.__table__
_CLAIM: dict[str, Any] = {}  # dialect name -> INSERT ... ON CONFLICT DO NOTHING RETURNING id
_FINISH = update(_INBOUND).where(_INBOUND.c.id == bindparam("inbound_id"))


def _claim_statement(dialect: str) -> Any:
    statement = _CLAIM.get(dialect)
    if statement is None:
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as dialect_insert
        else:
            from sqlalchemy.dialects.sqlite import insert as dialect_insert
        statement = (
            dialect_insert(_INBOUND)
            .on_conflict_do_nothing(index_elements=["dedupe_key"])
            .returning(_INBOUND.c.id)
        )
        _CLAIM[dialect] = statement
    return statement


def _claim(values: dict[str, Any]) -> int | None:
    """Insert the row unless its dedupe key exists; its id, or None for a duplicate."""
    connection = db.session.connection()
    statement = _claim_statement(connection.dialect.name)
    return connection.execute(statement, values).scalar_one_or_none()


def _duplicate(key: str, parsed: ParsedMail | None) -> Filed:
    existing = db.session.execute(
        select(InboundMail.subject, InboundMail.from_address, Ticket.number)
        .outerjoin(Ticket, Ticket.id == InboundMail.ticket_id)
        .where(InboundMail.dedupe_key == key)
    ).first()
    subject = threading.normalise_subject(parsed.subject) if parsed else ""
    return Filed(
        MailOutcome.DUPLICATE,
        None,
        existing.number if existing else None,
        subject or (existing.subject if existing else ""),
        parsed.from_address if parsed else None,
        [],
        "already received",
    )


def file_one(
    raw: bytes,
    context: Context,
    source_ref: str | None = None,
    *,
    prepared: Prepared | None = None,
    stored: StoredFile | None = None,
) -> Filed:
    """File one message in the caller's transaction (no commit): see the module.

    ``prepared``/``stored``: the message already parsed and its original already in the
    vault (``file_batch``); otherwise both happen here.
    """
    prepared = prepared or prepare(raw)
    parsed, unreadable, sha, key = (
        prepared.parsed,
        prepared.unreadable,
        prepared.sha256,
        prepared.key,
    )
    subject = threading.normalise_subject(parsed.subject) if parsed else ""
    inbound_id = _claim(
        {
            "dedupe_key": key,
            "message_id": parsed.message_id if parsed else None,
            "sha256": sha,
            "source": context.source.value,
            "source_ref": (source_ref or None) and source_ref[:1024],
            "mailbox_id": context.mailbox.id if context.mailbox else None,
            "from_address": parsed.from_address if parsed else None,
            "subject": (subject or (parsed.subject if parsed else ""))[:400],
            "size": len(raw),
            "outcome": MailOutcome.QUARANTINED.value,
            "reason": "being filed",
            "received_at": utcnow(),
        }
    )
    if inbound_id is None:
        if stored is not None:
            get_vault().shred(stored.blob_id)
        return _duplicate(key, parsed)
    if stored is None:
        stored = put_original(get_vault(), prepared)
    original_id = record_original(stored, f"message-{sha[:16]}.eml")
    if parsed is None:
        result = Result(MailOutcome.QUARANTINED, f"unreadable: {unreadable}")
    else:
        result = attempt(lambda: route(parsed, context, inbound_id), key)
    filed = finish(inbound_id, parsed, result, raw_file_id=original_id)
    if context.threads is not None and result.ticket is not None:
        context.threads.filed(key, result.ticket.id)
    return filed


_INSERT_FILE = insert(VaultFile).returning(VaultFile.id, VaultFile.public_id)
MAIL_IN = Actor.system("Mail in")


def record_original(stored: StoredFile, filename: str) -> int:
    """The ``mail_original`` row and its audit row, as INSERT statements.

    ``store.record_stored`` does the same through the ORM; for every received message
    the unit of work cost more than the two statements (``bench/mail_ingest.py``).
    """
    file_id, public_id = db.session.connection().execute(
        _INSERT_FILE,
        {
            "blob_id": stored.blob_id,
            "original_name": filename,
            "display_name": display_name(filename),
            "size": stored.size,
            "mime_type": "message/rfc822",
            "sha256": stored.sha256,
            "kind": FileKind.MAIL_ORIGINAL.value,
            "uploaded_by_id": None,
            "uploaded_by_label": MAIL_IN.label,
        },
    ).one()
    audit.record_now(MAIL_IN, "file.upload", "file", public_id, size=stored.size,
                     sha256=stored.sha256)  # fmt: skip
    return file_id


def attempt(decide: Callable[[], Result], label: str) -> Result:
    """Run ``decide`` in a savepoint; any failure but a lost database becomes quarantine."""
    mark = audit.pending_mark()
    try:
        with db.session.begin_nested():
            return decide()
    except Exception as error:
        audit.discard_pending(mark)  # rows of what the savepoint undid
        if database_down(error):
            raise
        _forget_undone_tickets()
        current_app.logger.exception("mail %s could not be filed", label)
        return Result(
            MailOutcome.QUARANTINED, f"could not be filed: {type(error).__name__}: {error}"
        )


def _forget_undone_tickets() -> None:
    """Take tickets whose rows the savepoint's rollback removed out of the session.

    Ticket creation puts its ticket into the session as a loaded object (its rows are
    plain INSERTs), so a rollback to the savepoint does not expunge it as it does objects
    it saw being added; SQLite then gives the next ticket the same id, and the stale
    object made every later message of the batch fail ("another instance with key").
    """
    newest = db.session.connection().execute(select(func.max(Ticket.id))).scalar() or 0
    for obj in list(db.session.identity_map.values()):
        if isinstance(obj, Ticket) and inspect(obj).key[1][0] > newest:
            db.session.expunge(obj)


def finish(
    inbound_id: int, parsed: ParsedMail | None, result: Result, *, raw_file_id: int | None
) -> Filed:
    """Record the outcome on the row, park the jobs for after the commit, say what happened."""
    details = dict(result.details)
    if parsed is not None:
        details.setdefault("to", parsed.to)
        details.setdefault("cc", parsed.cc)
        # Filed: the files stored with the entry; held: what the message carries.
        details["attachments"] = (
            list(result.attachments)
            if result.ticket is not None
            else [a.filename for a in parsed.attachments if not a.inline]
        )
        if parsed.defects:
            details["defects"] = parsed.defects[:20]
    if result.entry is not None and result.entry.id is None:
        db.session.flush()  # filed outside a savepoint (held mail): its entry needs its id
    db.session.connection().execute(
        _FINISH,
        {
            "inbound_id": inbound_id,
            "outcome": result.outcome.value,
            "reason": (result.reason or None) and result.reason[:2000],
            "robot": result.robot,
            "ticket_id": result.ticket.id if result.ticket else None,
            "entry_id": result.entry.id if result.entry is not None else result.entry_id,
            "raw_file_id": raw_file_id,
            "details": details or None,
        },
    )
    held = db.session.identity_map.get(db.session.identity_key(InboundMail, inbound_id))
    if held is not None:
        db.session.expire(held)
    _enqueue(result.jobs)
    subject = threading.normalise_subject(parsed.subject) if parsed else ""
    return Filed(
        result.outcome,
        inbound_id,
        result.ticket.number if result.ticket else None,
        subject or (NO_SUBJECT if parsed else ""),
        parsed.from_address if parsed else None,
        result.attachments,
        result.reason,
    )


def _enqueue(jobs: list[tuple[str, int]]) -> None:
    if not jobs:
        return
    from app.jobs import ai as ai_jobs
    from app.jobs import enqueue_after_commit
    from app.jobs import mail as mail_jobs

    for name, ticket_id in jobs:
        func = ai_jobs.classify_ticket if name == "classify" else mail_jobs.send_autoresponse
        enqueue_after_commit(func, (ticket_id,))


# --- routing -------------------------------------------------------------------------


def _throttled(address: str | None, context: Context, inbound_id: int) -> bool:
    """Whether the sender already sent ``limit`` mails within the hour (this one excluded).

    Counted once per sender and batch, then kept up to date in the batch's context.
    """
    if not address or context.limit <= 0:
        return False
    count = context.recent.get(address)
    if count is None:
        since = utcnow() - timedelta(hours=1)
        count = db.session.execute(
            select(func.count(InboundMail.id)).where(
                InboundMail.from_address == address,
                InboundMail.received_at >= since,
                InboundMail.id != inbound_id,
            )
        ).scalar_one()
    context.recent[address] = count + 1
    return count >= context.limit


def addressed_as(parsed: ParsedMail, own: frozenset[str]) -> str:
    """How the desk was addressed: "to", "cc", "bcc", or "unknown" (no own address known)."""
    if not own:
        return "unknown"
    if own.intersection(parsed.to):
        return "to"
    if own.intersection(parsed.cc):
        return "cc"
    return "bcc"


def _detect_robot(parsed: ParsedMail, own: frozenset[str]) -> Robot | None:
    return detect_robot(parsed.message, own)


def find_contact(address: str) -> Contact | None:
    return db.session.execute(
        select(Contact)
        .where(Contact.email == address)
        .order_by(Contact.verified.desc(), Contact.id)
        .limit(1)
    ).scalar_one_or_none()


def contact_for(parsed: ParsedMail, context: Context | None = None) -> Contact:
    """The sender's contact; an unknown sender gets a new, unverified one (no account).

    With the batch's ``context`` the lookup is answered from its cache (``preload``).
    """
    address = parsed.from_address or ""
    contact = context.contact(address) if context is not None else find_contact(address)
    if contact is None:
        name = " ".join((parsed.from_name or address.partition("@")[0] or address).split())
        contact = Contact(name=name[:200] or address, email=address, verified=False)
        db.session.add(contact)
        if context is not None:
            context.contacts[address] = contact
    return contact


def entry_data(parsed: ParsedMail, parts: StoredParts) -> dict[str, Any]:
    """The stream entry's ``data`` (storage convention shared with the content branch)."""
    return {
        "from": parsed.from_address,
        "to": parsed.to,
        "cc": parsed.cc,
        "message_id": parsed.message_id,
        "subject": parsed.subject,
        "inline": parts.inline,
        "remote_images": has_remote_images(parts.html),
    }


@dataclass
class StoredParts:
    """The message's files in the vault and its HTML, sanitised against them."""

    files: list[VaultFile]
    inline: dict[str, str]  # content-id -> public_id
    html: str | None  # sanitise_mail_html's output: what StreamEntry.body_html stores

    @property
    def names(self) -> list[str]:
        return [f.display_name for f in self.files if f.kind == FileKind.ATTACHMENT.value]

    def attach(self, ticket: Ticket, entry: StreamEntry | int) -> None:
        for file in self.files:
            file.ticket = ticket
            if isinstance(entry, int):
                file.entry_id = entry
            else:
                file.entry = entry


def store_parts(parsed: ParsedMail, actor: Actor) -> StoredParts:
    """Attachments (kind attachment) and cid images (kind inline) into the vault."""
    files: list[VaultFile] = []
    inline: dict[str, str] = {}
    for part in parsed.attachments:
        kind = FileKind.INLINE if part.inline else FileKind.ATTACHMENT
        stored = store_upload(
            io.BytesIO(part.data), part.filename, actor, kind=kind, enforce_limit=False
        )
        files.append(stored)
        if part.inline and part.content_id:
            inline[part.content_id] = stored.public_id
    html = sanitise_mail_html(parsed.html, inline) if parsed.html else None
    return StoredParts(files, inline, html)


def body_text(parsed: ParsedMail, parts: StoredParts | None = None) -> str:
    text = parsed.text.strip()
    if text:
        return parsed.text
    names = parts.names if parts else [a.filename for a in parsed.attachments if not a.inline]
    return ("Attached: " + ", ".join(names)) if names else "(empty message)"


_ENTRIES = StreamEntry.__table__
_SET_FIRST_ENTRY = (
    update(_ENTRIES)
    .where(
        _ENTRIES.c.id
        == select(_ENTRIES.c.id)
        .where(_ENTRIES.c.ticket_id == bindparam("b_ticket_id"))
        .order_by(_ENTRIES.c.id)
        .limit(1)
        .scalar_subquery()
    )
    .returning(_ENTRIES.c.id)
)
_SET_ENTRY = update(_ENTRIES).where(_ENTRIES.c.id == bindparam("b_entry_id"))


def _set_first_entry(ticket_id: int, parsed: ParsedMail, parts: StoredParts) -> int:
    """``_set_entry`` on a new ticket's first entry, found in the same statement; its id.

    ``create_ticket`` writes the entry with a bare INSERT; finding it by a query of its
    own was one more statement per new ticket (``bench/mail_ingest.py``).
    """
    entry_id: int = (
        db.session.connection()
        .execute(
            _SET_FIRST_ENTRY,
            {"b_ticket_id": ticket_id, "data": entry_data(parsed, parts), "body_html": parts.html},
        )
        .scalar_one()
    )
    entry = db.session.identity_map.get(db.session.identity_key(StreamEntry, entry_id))
    if entry is not None:
        db.session.expire(entry, ["data", "body_html"])
    return entry_id


def _set_entry(entry_id: int, parsed: ParsedMail, parts: StoredParts) -> None:
    db.session.flush()  # the entry's row as the ORM left it, before it is overwritten
    db.session.connection().execute(
        _SET_ENTRY,
        {"b_entry_id": entry_id, "data": entry_data(parsed, parts), "body_html": parts.html},
    )
    entry = db.session.identity_map.get(db.session.identity_key(StreamEntry, entry_id))
    if entry is not None:
        db.session.expire(entry, ["data", "body_html"])


def route(
    parsed: ParsedMail, context: Context, inbound_id: int, *, throttle: bool = True
) -> Result:
    """Decide and write where one parsed message goes (inside the caller's savepoint).

    ``throttle=False`` when an admin retries a held message: they have looked at it.
    """
    sender = parsed.from_address
    staff = context.staff(sender)
    if throttle and staff is None and _throttled(sender, context, inbound_id):
        return Result(
            MailOutcome.QUARANTINED,
            f"throttled: more than {context.limit} mails from {sender} within an hour",
        )
    robot = _detect_robot(parsed, context.own)
    thread = threading.find_thread(
        parsed.subject, sender, parsed.in_reply_to, parsed.references, lookup=context.threads
    )
    if robot is not None:
        return _file_robot(parsed, robot, thread)
    if sender is None:
        return Result(MailOutcome.QUARANTINED, "no sender address")
    if thread.suspected is not None:
        return Result(
            MailOutcome.REVIEW,
            f"{sender} is not a participant of {thread.suspected.number}",
            details={"suspected_ticket": thread.suspected.number},
        )
    if staff is not None:
        return _file_staff(parsed, staff, thread.ticket, context)
    return file_customer(parsed, thread.ticket, context)


def _robot_details(robot: Robot) -> dict[str, Any]:
    details: dict[str, Any] = {"kind": str(robot.kind), "reason": robot.reason}
    if robot.bounce is not None:
        b = robot.bounce
        details.update(
            recipients=list(b.recipients),
            status=b.status,
            diagnostic=(b.diagnostic or "")[:500] or None,
            original_message_id=b.original_message_id,
            original_subject=b.original_subject,
        )
    return details


def _file_robot(parsed: ParsedMail, robot: Robot, thread: threading.Threading) -> Result:
    kind = RobotKind(robot.kind)
    details = {"robot": _robot_details(robot)}
    ticket = thread.ticket
    if kind is RobotKind.BOUNCE and robot.bounce is not None:
        bounce = robot.bounce
        if ticket is None and bounce.original_message_id:
            ticket = threading.ticket_by_headers([bounce.original_message_id])
        if ticket is None and bounce.original_subject:
            for number in threading.subject_numbers(bounce.original_subject):
                ticket = threading.ticket_by_number(number)
                if ticket is not None:
                    break
        if ticket is None and thread.suspected is not None:
            ticket = thread.suspected  # a bounce of our own mail about that ticket
        reason = bounce.diagnostic or bounce.status or robot.reason
        flag_bounced(bounce.recipients, reason)
        ours = mark_outbox_bounced(bounce, reason)
        if ticket is None and ours is not None:
            ticket = ours
    if kind is RobotKind.OWN or ticket is None:
        if thread.suspected is not None:
            details["suspected_ticket"] = thread.suspected.number
        return Result(MailOutcome.IGNORED, robot.reason, robot=kind.value, details=details)
    from app.tickets.stream import add_entry

    actor = Actor.system("Mail delivery" if kind is RobotKind.BOUNCE else "Automatic reply")
    parts = store_parts(parsed, actor)
    entry = add_entry(
        ticket,
        EntryKind.MAIL_IN,
        actor,
        body_text=body_text(parsed, parts),
        internal=True,
        data={**entry_data(parsed, parts), "robot": details["robot"]},
    )
    db.session.flush()
    parts.attach(ticket, entry.id)
    entry.body_html = parts.html
    return Result(
        MailOutcome.APPENDED,
        robot.reason,
        ticket=ticket,
        entry_id=entry.id,
        robot=kind.value,
        details=details,
        attachments=parts.names,
    )


def mark_outbox_bounced(bounce: Bounce, reason: str) -> Ticket | None:
    """A DSN about one of our own sent copies: the outbox row and its ticket learn of it.

    ``mail.bounces.mark_bounced`` marks the copy bounced and puts the ticket in the inbox
    with a note, so the agent who answered finds out the customer never got it. The
    ticket it names, or None when the returned Message-ID is not one of ours.
    """
    from app.mail.bounces import mark_bounced

    if not bounce.original_message_id:
        return None
    ticket: Ticket | None = None
    for address in bounce.recipients:
        message = mark_bounced(bounce.original_message_id, address, reason)
        if message is not None and message.ticket is not None:
            ticket = message.ticket
    return ticket


def flag_bounced(addresses: Sequence[str], reason: str | None) -> None:
    """Mark the contacts behind failed recipients, so agents see the address is wrong."""
    wanted = [a.lower() for a in addresses if a]
    if not wanted:
        return
    db.session.execute(
        update(Contact)
        .where(Contact.email.in_(wanted))
        .values(mail_bounced_at=utcnow(), mail_bounce_reason=(reason or "bounced")[:500])
        .execution_options(synchronize_session="fetch")
    )


def _file_staff(parsed: ParsedMail, staff: User, ticket: Ticket | None, context: Context) -> Result:
    if ticket is None:
        return Result(MailOutcome.REVIEW, f"mail from staff member {staff.email} names no ticket")
    from app.tickets.replies import answer
    from app.tickets.stream import add_entry

    actor = Actor.staff(staff)
    parts = store_parts(parsed, actor)
    how = addressed_as(parsed, context.own)
    identity = db.session.get(SenderIdentity, context.identity_id) if context.identity_id else None
    distributed = how == "to" and identity is not None and identity.active
    text = body_text(parsed, parts)
    if distributed:
        files = [f for f in parts.files if f.kind == FileKind.ATTACHMENT.value]
        entry = answer(ticket, actor, text, internal=False, identity=identity, files=files)
    else:
        entry = add_entry(ticket, EntryKind.MAIL_IN, actor, body_text=text)
    db.session.flush()
    parts.attach(ticket, entry.id)
    _set_entry(entry.id, parsed, parts)
    return Result(
        MailOutcome.APPENDED,
        None if distributed else f"staff mail filed without sending (desk in {how})",
        ticket=ticket,
        entry_id=entry.id,
        details={"staff": staff.email, "distributed": distributed},
        attachments=parts.names,
    )


def file_customer(parsed: ParsedMail, ticket: Ticket | None, context: Context | None) -> Result:
    """A customer's mail: onto ``ticket`` (customer-writes rule) or a new ticket."""
    from app.tickets.creation import create_ticket
    from app.tickets.customer_writes import customer_writes

    if not parsed.from_address:
        raise InvalidInput(_("The message has no sender address to file it for."))
    # No flush of its own on the way: the new contact, the entry and its files are
    # written by the one flush the savepoint's end (or ticket creation) does anyway; each
    # flush here was a unit of work over the whole session (``bench/mail_ingest.py``).
    contact = contact_for(parsed, context)
    actor = Actor.customer(contact.user, name=contact.name, email=parsed.from_address)
    parts = store_parts(parsed, actor)
    text = body_text(parsed, parts)
    how = addressed_as(parsed, context.own) if context else "unknown"
    entry: StreamEntry | int
    if ticket is not None:
        written = customer_writes(
            ticket,
            actor,
            Channel.MAIL,
            body_text=text,
            body_html=parts.html,  # sanitised by mail.content; storing it again is idempotent
            files=parts.files,
            contact=None if how == "bcc" else contact,
            data=entry_data(parsed, parts),
        )
        target, created, entry = written.ticket, written.new_ticket, written.entry
    else:
        target = create_ticket(
            Channel.MAIL,
            actor,
            subject=threading.normalise_subject(parsed.subject) or NO_SUBJECT,
            body_text=text,
            contact=contact,
        )
        entry = _set_first_entry(target.id, parsed, parts)
        parts.attach(target, entry)
        created = True
    if how != "bcc":
        add_cc_recipients(target, actor, parsed, context.own if context else frozenset(), context)
    if not created:
        assert isinstance(entry, StreamEntry)  # noqa: S101 -- an append has its object
        distribute(target, entry, context)
    jobs = [("classify", target.id)]
    if created:
        jobs.append(("autoresponse", target.id))
    return Result(
        MailOutcome.CREATED if created else MailOutcome.APPENDED,
        None,
        ticket=target,
        entry_id=entry if isinstance(entry, int) else None,
        entry=entry if isinstance(entry, StreamEntry) else None,
        attachments=parts.names,
        jobs=jobs,
    )


def distribute(ticket: Ticket, entry: StreamEntry, context: Context | None) -> None:
    """Pass the customer's mail on to the ticket's manager (To) and subscribers (Cc).

    Only for mail on an existing ticket: a new one has nobody yet (the dispatcher's inbox
    and, later, notifications cover it). The copy is automatic, so no out-of-office answers.
    """
    from app.mail.outbound import queue_distribution

    if ticket.assignee_id is None and not ticket.subscribers:
        return
    identity = None
    if context is not None and context.identity_id:
        identity = db.session.get(SenderIdentity, context.identity_id)
    queue_distribution(ticket, entry, identity)


def add_cc_recipients(
    ticket: Ticket,
    actor: Actor,
    parsed: ParsedMail,
    own: frozenset[str],
    context: Context | None = None,
) -> None:
    """Other people the customer wrote to become Cc recipients (not us, not staff)."""
    from app.tickets import recipients

    candidates = [a for a in [*parsed.to, *parsed.cc] if a not in own and a != parsed.from_address]
    if not candidates:
        return
    known = {r.address for r in ticket.recipients}
    contact = ticket.contact
    if contact is not None:
        known.add(contact.email.lower())
    for address in dict.fromkeys(candidates):
        staff = context.staff(address) if context is not None else threading.staff_user(address)
        if address in known or staff is not None:
            continue
        recipients.add_recipient(ticket, actor, RecipientKind.CC, address)
        known.add(address)
