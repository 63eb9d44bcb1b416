"""The relay: outbox rows out to the mail server (or the outbox folder), each exactly once.

How a row is sent:

1. **Claim.** One conditional UPDATE moves the row from ``queued`` (and due) to
   ``sending`` with a random ``claim_token`` and a lease (``claimed_until``), and counts
   the attempt; it is committed before anything is sent. Whichever worker's UPDATE
   changes the row owns it; the other sees 0 rows and does nothing. The same statement
   runs on SQLite and PostgreSQL (on PostgreSQL the second UPDATE waits for the first and
   re-checks the condition). A claim past its lease (a worker that died) can be taken.
2. **Send** each recipient's copy still owed, over one connection kept for the batch.
   Each accepted copy is committed at once with the server's answer, so a retry never
   sends it again. A 5xx for one address marks that recipient refused; a 4xx, a dropped
   connection or an unreachable server is temporary for the whole row.
3. **Finish** (only while holding the claim): ``sent`` when no copy is owed; after a
   temporary failure ``queued`` again with an exponential wait (``MAIL_RETRY_BASE_SECONDS``
   times 4 per try) and a delayed job, or ``failed`` after ``MAIL_MAX_ATTEMPTS``; a mail
   that cannot be built safely (``UnsafeHeader``) fails at once.

What is guaranteed (README): a committed reply is never lost (the row is written with the
reply; a job is enqueued after the commit, and the sweep enqueues any row left queued or
claimed past its lease); one worker at a time holds a row. Not guaranteed: a worker that
dies after the server accepted a copy but before that was committed leaves the copy
owed, so it is sent again, with the same Message-ID (clients show one message).

No ``SMTP_URL``: the same copies are written as ``.eml`` files into ``instance/outbox/``.
"""

from __future__ import annotations

import logging
import secrets
import smtplib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import selectinload
from sqlalchemy.sql.elements import ColumnElement

from app import audit, notifications
from app.actor import Actor
from app.errors import InvalidInput
from app.extensions import db
from app.files import vault_links
from app.mail.compose import FileLink, UnsafeHeader, build_copy
from app.mail.sending import SmtpSettings, connect_smtp, parse_smtp_url, write_outbox
from app.models.files import VaultLink
from app.models.mail import OutboxMessage, OutboxRecipient, OutboxStatus, RecipientStatus
from app.models.tickets import Ticket
from app.models.types import utcnow

log = logging.getLogger(__name__)

LEASE = timedelta(minutes=5)  # far longer than a send job may run (its timeout)
BATCH_SECONDS = 60.0  # a batch claims no new rows after this (half the job's time limit)
ANSWER_LIMIT = 1000


class TemporaryFailure(Exception):
    """The server or the way to it failed in a way worth trying again (4xx, network)."""


class PermanentRefusal(Exception):
    """The server refused this copy for good (5xx)."""


class Transport(Protocol):
    def send(self, sender: str, recipient: str, raw: bytes) -> str:
        """Hand one copy over for one envelope recipient; the server's answer."""
        ...

    def close(self) -> None: ...


def _answer(code: int, text: bytes | str) -> str:
    raw = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    return f"{code} {' '.join(raw.split())}"[:ANSWER_LIMIT]


class SmtpTransport:
    """One SMTP connection for a batch, opened on first use and re-opened after a drop."""

    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings
        self._client: smtplib.SMTP | None = None

    @property
    def where(self) -> str:
        return f"{self.settings.host}:{self.settings.port}"

    def _connection(self) -> smtplib.SMTP:
        if self._client is None:
            try:
                self._client = connect_smtp(self.settings)
            except (smtplib.SMTPException, OSError) as exc:
                raise TemporaryFailure(f"{self.where}: {exc}") from exc
        return self._client

    def send(self, sender: str, recipient: str, raw: bytes) -> str:
        client = self._connection()
        try:
            code, text = client.mail(sender)
            if code == 250:
                code, text = client.rcpt(recipient)
                if code in (250, 251, 252):
                    code, text = client.data(raw)
            if code == 250:
                return _answer(code, text)
        except smtplib.SMTPServerDisconnected as exc:
            self._drop()
            raise TemporaryFailure(f"{self.where}: connection lost ({exc})") from exc
        except smtplib.SMTPDataError as exc:  # data() raises on a non-354 start
            code, text = exc.smtp_code, exc.smtp_error
        except (smtplib.SMTPException, OSError) as exc:
            self._drop()
            raise TemporaryFailure(f"{self.where}: {exc}") from exc
        try:
            client.rset()
        except (smtplib.SMTPException, OSError):
            self._drop()
        answer = _answer(code, text)
        if 500 <= code <= 599:
            raise PermanentRefusal(answer)
        raise TemporaryFailure(answer)

    def _drop(self) -> None:
        if self._client is not None:
            try:
                self._client.close()
            finally:
                self._client = None

    def close(self) -> None:
        if self._client is not None:
            try:
                self._client.quit()
            except (smtplib.SMTPException, OSError):
                pass
            self._drop()


class FolderTransport:
    """No mail server configured: each copy becomes an ``.eml`` file in the outbox folder."""

    def send(self, sender: str, recipient: str, raw: bytes) -> str:
        path = write_outbox(raw)
        return f"filed as {path.name}"

    def close(self) -> None:
        return None


def transport() -> Transport:
    """SMTP when ``SMTP_URL`` is set, else the outbox folder."""
    url = current_app.config.get("SMTP_URL")
    return SmtpTransport(parse_smtp_url(url)) if url else FolderTransport()


def claimable(now: datetime) -> ColumnElement[bool]:
    """Rows a worker may take now: queued and due, or held past their lease."""
    return or_(
        and_(
            OutboxMessage.status == OutboxStatus.QUEUED.value,
            or_(OutboxMessage.next_attempt_at.is_(None), OutboxMessage.next_attempt_at <= now),
        ),
        and_(
            OutboxMessage.status == OutboxStatus.SENDING.value,
            or_(OutboxMessage.claimed_until.is_(None), OutboxMessage.claimed_until < now),
        ),
    )


@dataclass(frozen=True)
class Claim:
    message_id: int
    token: str
    attempt: int  # this try's number, 1 for the first


def claim(message_id: int) -> Claim | None:
    """Take the row for this worker (committed), or None if it is not ours to send."""
    now = utcnow()
    token = secrets.token_hex(16)
    result = db.session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == message_id, claimable(now))
        .values(
            status=OutboxStatus.SENDING.value,
            claim_token=token,
            claimed_until=now + LEASE,
            attempts=OutboxMessage.attempts + 1,
        )
        .returning(OutboxMessage.attempts)
        .execution_options(synchronize_session=False)
    )
    attempts = result.scalar_one_or_none()
    if attempts is None:
        db.session.rollback()
        return None
    db.session.commit()
    return Claim(message_id, token, int(attempts))


def retry_delay(attempt: int) -> timedelta:
    """Wait after try ``attempt`` failed: base, then 4 times longer each time."""
    base = int(current_app.config.get("MAIL_RETRY_BASE_SECONDS", 60))
    return timedelta(seconds=base * 4 ** max(0, attempt - 1))


def _links_for(delivery: OutboxRecipient) -> list[FileLink]:
    ids = [item["link_id"] for item in delivery.links or [] if item.get("link_id")]
    if not ids:
        return []
    found = db.session.scalars(select(VaultLink).where(VaultLink.id.in_(ids)))
    rows = {link.id: link for link in found}
    return [
        FileLink(item["name"], vault_links.link_url(rows[item["link_id"]]))
        for item in delivery.links
        if item.get("link_id") in rows
    ]


@dataclass
class Outcome:
    """What became of one row in one try (for the job's return value and the tests)."""

    message_id: int
    status: str
    sent: list[str] = field(default_factory=list)
    error: str | None = None
    retry_at: datetime | None = None


def _finish(claim_: Claim, values: dict[str, object]) -> bool:
    """Write the row's end state, only if this worker still holds it."""
    result = db.session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == claim_.message_id, OutboxMessage.claim_token == claim_.token)
        .values(claim_token=None, claimed_until=None, **values)
        .execution_options(synchronize_session=False)
    )
    finished = bool(result.rowcount)  # type: ignore[attr-defined]
    if finished and values.get("status") == OutboxStatus.FAILED.value:
        notifications.reply_failed(claim_.message_id, str(values.get("last_error") or ""))
    return finished


def _bump_ticket(ticket_id: int | None) -> None:
    """Let the agent's open ticket page notice (its poll compares the version)."""
    if ticket_id is not None:
        db.session.execute(
            update(Ticket).where(Ticket.id == ticket_id).values(version=Ticket.version + 1)
        )


def send_claimed(claim_: Claim, via: Transport, message: OutboxMessage | None = None) -> Outcome:
    """Send every copy still owed for a claimed row, then finish it (see the module doc)."""
    if message is None:
        message = db.session.get(
            OutboxMessage,
            claim_.message_id,
            populate_existing=True,
            options=[selectinload(OutboxMessage.deliveries)],
        )
    if message is None:  # deleted since the claim (nothing deletes queued rows today)
        return Outcome(claim_.message_id, "gone")
    outcome = Outcome(message.id, OutboxStatus.SENDING.value)
    temporary: str | None = None
    answers: list[str] = []
    last_answer: str | None = None
    for delivery in message.deliveries:
        if delivery.status != RecipientStatus.PENDING.value:
            continue
        try:
            built = build_copy(message, delivery, _links_for(delivery))
            answer = via.send(message.from_address, delivery.address, built.raw)
        except UnsafeHeader as refused:
            db.session.rollback()
            _finish(
                claim_,
                {"status": OutboxStatus.FAILED.value, "last_error": refused.message[:1000]},
            )
            _bump_ticket(message.ticket_id)
            db.session.commit()
            outcome.status, outcome.error = OutboxStatus.FAILED.value, refused.message
            return outcome
        except PermanentRefusal as refused:
            delivery.status = RecipientStatus.REFUSED.value
            delivery.answer = str(refused)
            answers.append(f"{delivery.address}: {refused}")
            db.session.commit()
            continue
        except TemporaryFailure as failure:
            temporary = str(failure)
            break
        delivery.status = RecipientStatus.SENT.value
        delivery.answer = answer
        delivery.sent_at = utcnow()
        outcome.sent.append(delivery.address)
        last_answer = answer
        if any(d.status == RecipientStatus.PENDING.value for d in message.deliveries):
            # This copy is delivered: no retry may send it again. (The last copy commits
            # together with the row's final state below, one commit instead of two.)
            db.session.commit()
    owed = [d for d in message.deliveries if d.status == RecipientStatus.PENDING.value]
    delivered = [d for d in message.deliveries if d.status == RecipientStatus.SENT.value]
    refused = "; ".join(answers) or None
    if temporary is None and not owed:
        status = OutboxStatus.SENT if delivered else OutboxStatus.FAILED
        _finish(
            claim_,
            {
                "status": status.value,
                "sent_at": utcnow() if delivered else None,
                "last_error": refused,
                "next_attempt_at": None,
                "server_answer": last_answer or refused,
            },
        )
        if status is OutboxStatus.FAILED:
            _bump_ticket(message.ticket_id)
        db.session.commit()
        outcome.status, outcome.error = status.value, refused
        return outcome
    error = temporary or refused or "not sent"
    if claim_.attempt >= int(current_app.config.get("MAIL_MAX_ATTEMPTS", 6)):
        _finish(
            claim_,
            {
                "status": OutboxStatus.FAILED.value,
                "last_error": f"{error} (gave up after {claim_.attempt} tries)",
                "server_answer": error,
                "next_attempt_at": None,
            },
        )
        _bump_ticket(message.ticket_id)
        db.session.commit()
        outcome.status, outcome.error = OutboxStatus.FAILED.value, error
        return outcome
    retry_at = utcnow() + retry_delay(claim_.attempt)
    if _finish(
        claim_,
        {
            "status": OutboxStatus.QUEUED.value,
            "last_error": error,
            "server_answer": error,
            "next_attempt_at": retry_at,
        },
    ):
        from app.jobs.mail import enqueue_send

        enqueue_send(message.id, claim_.attempt, at=retry_at)
    db.session.commit()
    outcome.status, outcome.error, outcome.retry_at = OutboxStatus.QUEUED.value, error, retry_at
    return outcome


def claim_due(limit: int) -> list[Claim]:
    """Take up to ``limit`` due rows at once (one UPDATE, committed), oldest due first.

    The same condition as ``claim`` is in the UPDATE itself, so on PostgreSQL a second
    worker whose sub-select saw the same rows skips those the first one took.
    """
    now = utcnow()
    token = secrets.token_hex(16)
    due = (
        select(OutboxMessage.id)
        .where(claimable(now))
        .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
        .limit(limit)
        .scalar_subquery()
    )
    rows = db.session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id.in_(due), claimable(now))
        .values(
            status=OutboxStatus.SENDING.value,
            claim_token=token,
            claimed_until=now + LEASE,
            attempts=OutboxMessage.attempts + 1,
        )
        .returning(OutboxMessage.id, OutboxMessage.attempts)
        .execution_options(synchronize_session=False)
    ).all()
    db.session.commit()
    return sorted((Claim(int(i), token, int(a)) for i, a in rows), key=lambda c: c.message_id)


def release(claims: list[Claim]) -> None:
    """Give back rows claimed but not tried (the server failed first): due again, this
    try not counted, and a job each, since the batch had removed theirs."""
    from app.jobs.mail import enqueue_send

    for taken in claims:
        if _finish(taken, {"status": OutboxStatus.QUEUED.value, "attempts": taken.attempt - 1}):
            enqueue_send(taken.message_id, taken.attempt - 1)
    db.session.commit()


def _load(claims: list[Claim]) -> dict[int, OutboxMessage]:
    ids = [c.message_id for c in claims]
    rows = db.session.scalars(
        select(OutboxMessage)
        .where(OutboxMessage.id.in_(ids))
        .options(selectinload(OutboxMessage.deliveries))
        .execution_options(populate_existing=True)
    )
    return {row.id: row for row in rows}


def drain(
    first_id: int | None,
    via: Transport,
    *,
    batch: int | None = None,
    on_claimed: Callable[[list[Claim]], None] | None = None,
) -> list[Outcome]:
    """Send ``first_id`` (if still due), then other due rows over the same connection.

    Stops after ``batch`` rows (``MAIL_BATCH``), after ``BATCH_SECONDS`` (a slow server
    must not run the job into its time limit), or at the first temporary failure: the
    server is unhappy; rows claimed for this batch but not tried are given back. Rows
    are claimed 20 at a time; ``on_claimed`` is told of each group (the job layer drops
    their queued jobs, since this job sends them). Objects are not expired on commit
    here: every state change is written by a statement, and re-reading each row after
    each commit would cost more than the sending.
    """
    limit = batch if batch is not None else int(current_app.config.get("MAIL_BATCH", 200))
    deadline = time.monotonic() + BATCH_SECONDS
    outcomes: list[Outcome] = []
    session = db.session()
    expire, session.expire_on_commit = session.expire_on_commit, False
    try:
        if first_id is not None:
            taken = claim(first_id)
            if taken is not None:
                outcomes.append(send_claimed(taken, via))
                if outcomes[-1].status == OutboxStatus.QUEUED.value:
                    return outcomes
        while len(outcomes) < limit and time.monotonic() < deadline:
            group = claim_due(min(20, limit - len(outcomes)))
            if not group:
                break
            if on_claimed is not None:
                on_claimed(group)
            rows = _load(group)
            for n, taken in enumerate(group):
                outcome = send_claimed(taken, via, rows.get(taken.message_id))
                outcomes.append(outcome)
                if outcome.status == OutboxStatus.QUEUED.value:
                    release(group[n + 1 :])
                    return outcomes
    finally:
        session.expire_on_commit = expire
    return outcomes


def send_again(message: OutboxMessage, actor: Actor) -> None:
    """An agent's "send again" on a failed mail: a fresh round of tries, refused ones too."""
    if message.status != OutboxStatus.FAILED.value:
        raise InvalidInput(_("Only a mail that failed can be sent again."))
    for delivery in message.deliveries:
        if delivery.status == RecipientStatus.REFUSED.value:
            delivery.status = RecipientStatus.PENDING.value
    message.status = OutboxStatus.QUEUED.value
    message.attempts = 0
    message.next_attempt_at = utcnow()
    message.last_error = None
    audit.record(
        actor,
        "mail.send_again",
        "outbox",
        message.id,
        ticket_id=message.ticket_id,
        message_id=message.message_id,
    )
    if message.ticket_id is not None:
        _bump_ticket(message.ticket_id)
    from app.jobs.mail import enqueue_send

    enqueue_send(message.id, 0)


def left_behind(limit: int = 1000) -> list[tuple[int, int]]:
    """(id, attempts) of rows due now that no worker holds: what the sweep enqueues."""
    rows = db.session.execute(
        select(OutboxMessage.id, OutboxMessage.attempts)
        .where(claimable(utcnow()))
        .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
        .limit(limit)
    ).all()
    return [(int(i), int(a or 0)) for i, a in rows]


def mails_by_entry(ticket: Ticket) -> dict[int, OutboxMessage]:
    """The reply mail of each stream entry of ``ticket``, for the agent's ticket page."""
    rows = db.session.scalars(
        select(OutboxMessage)
        .where(OutboxMessage.ticket_id == ticket.id, OutboxMessage.entry_id.is_not(None))
        .options(selectinload(OutboxMessage.deliveries))
    )
    return {row.entry_id: row for row in rows if row.entry_id is not None}


@dataclass(frozen=True)
class CopyPreview:
    """One recipient's copy as the admin outbox shows it."""

    kind: str
    address: str
    status: str
    answer: str | None
    text: str
    error: str | None = None


def preview_copies(message: OutboxMessage) -> list[CopyPreview]:
    """Each recipient's copy built as the relay would build it now (plain-text part)."""
    previews = []
    for delivery in message.deliveries:
        try:
            mail = build_copy(message, delivery, _links_for(delivery)).mail
        except UnsafeHeader as refused:
            text, error = "", refused.message
        else:
            body = mail.get_body(("plain",))
            text, error = (body.get_content() if body is not None else ""), None
        previews.append(
            CopyPreview(
                delivery.kind, delivery.address, delivery.status, delivery.answer, text, error
            )
        )
    return previews
