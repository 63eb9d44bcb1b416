"""Jobs on the ``mail`` queue: everything the desk mails goes out from here, never from a
request, so pages never wait on a mail server and a refused send is retried; and mail
coming in from IMAP mailboxes and the drop folder."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from flask import current_app
from redis.exceptions import RedisError
from rq import Retry, get_current_job
from rq.exceptions import NoSuchJobError

from app.accounts import emailed_links, staff_links
from app.extensions import db, redis_client
from app.files import recipients
from app.files.vault_links import Client
from app.jobs import enqueue, job
from app.mail import relay
from app.mail.drop import sweep_drop_folder
from app.mail.imap import POLL_JOB_SECONDS
from app.mail.imap import poll_mailbox as poll_domain
from app.mail.mailboxes import due_mailboxes
from app.models.inbound import Mailbox
from app.models.tickets import Ticket
from app.models.types import utcnow

log = logging.getLogger(__name__)

# A sign-in link is worth sending for minutes, an invitation for days: the schedule covers
# a mail server that restarts or greylists, not one that is down for the day.
LINK_RETRY = Retry(max=4, interval=[10, 30, 120, 300])


@job("mail", retry=LINK_RETRY, timeout=60)
def send_requested_link(kind: str, email: str, client_address: str | None) -> str:
    """A sign-in or reset link a visitor asked for (or only the audit row, see the domain)."""
    if emailed_links.MailRequest(kind) is emailed_links.MailRequest.SIGN_IN:
        outcome = emailed_links.deliver_sign_in_link(email, client_address)
    else:
        outcome = emailed_links.deliver_password_reset(email, client_address)
    db.session.commit()
    return outcome


@job("mail", retry=LINK_RETRY, timeout=60)
def send_invitation(user_id: int, inviter: str | None, ticket_id: int | None) -> str:
    """A portal invitation an agent sent; a final failure is noted on the ticket."""
    outcome = emailed_links.deliver_invitation(user_id, inviter, ticket_id)
    db.session.commit()
    return outcome


@job("mail", retry=LINK_RETRY, timeout=60)
def send_staff_link(user_id: int, kind: str, inviter: str | None) -> str:
    """A staff invitation or an admin's password reset (``app.accounts.staff_links``)."""
    outcome = staff_links.deliver(user_id, kind, inviter)
    db.session.commit()
    return outcome


# A code lives ten minutes: retrying past a few minutes would mail a code nobody waits for.
CODE_RETRY = Retry(max=3, interval=[5, 20, 60])


@job("mail", retry=CODE_RETRY, timeout=60)
def send_link_code(
    link_id: str, browser: str, client_address: str | None, user_agent: str | None
) -> str:
    """A one-time code for a recipient-bound file link, to the link's recipient only."""
    outcome = recipients.deliver_code(link_id, browser, Client(client_address, user_agent))
    db.session.commit()
    return outcome


AUTORESPONSE_LOCK = "vaultdesk:lock:autoresponse:{address}"


@job("mail", retry=LINK_RETRY, timeout=60)
def send_autoresponse(ticket_id: int) -> str:
    """The acknowledgement for a new ticket (mail or portal): queued in the outbox, or
    the reason not, noted on the ticket (``app.mail.autoresponse``).

    A Redis lock per sender address is held across the decision and the commit, so two
    new tickets of one sender handled at once give one autoresponse within the period.
    """
    from app.mail import autoresponse

    ticket = db.session.get(Ticket, ticket_id)
    address = autoresponse.sender_address(ticket) if ticket is not None else None
    return _locked(address, lambda: autoresponse.respond(ticket_id))


@job("mail", retry=LINK_RETRY, timeout=60)
def send_reopen_notice(ticket_id: int, entry_id: int) -> str:
    """Tell a customer their message reopened a solved or closed ticket (the autoresponse's
    rules: ``app.mail.autoresponse.reopen_notice``), under the same per-sender lock."""
    from app.mail import autoresponse
    from app.models.tickets import StreamEntry

    ticket = db.session.get(Ticket, ticket_id)
    entry = db.session.get(StreamEntry, entry_id)
    address = autoresponse.sender_address(ticket, entry) if ticket and entry else None
    return _locked(address, lambda: autoresponse.reopen_notice(ticket_id, entry_id))


def _locked(address: str | None, decide: Callable[[], str]) -> str:
    """Decide and commit holding the sender's lock (none to take without an address)."""
    if address is None:
        outcome = decide()
        db.session.commit()
        return str(outcome)
    lock = redis_client.connection.lock(
        AUTORESPONSE_LOCK.format(address=address), timeout=60, blocking_timeout=30
    )
    with lock:  # LockError after 30 s: RQ retries the job
        outcome = decide()
        db.session.commit()
    return str(outcome)


# -- mail in: polling IMAP mailboxes and sweeping the drop folder ---------------------------
#
# ``enqueue_due_polls`` runs every minute (``app.jobs.schedule``) and enqueues one
# ``poll_mailbox`` per active mailbox whose interval has passed. A Redis key per mailbox,
# set when its poll is enqueued and living a few intervals, keeps a slow poll (or a slow
# worker) from piling up copies of the same job; the poll itself also takes a lock, so
# several schedulers and workers are safe.

QUEUED_KEY = "vaultdesk:mailbox-poll-queued:{id}"


@job("mail", timeout=POLL_JOB_SECONDS)
def poll_mailbox(mailbox_id: int) -> dict[str, Any]:
    """Poll one mailbox now; progress (messages fetched, batches) is in the job's meta."""
    redis = redis_client.connection
    mailbox = db.session.get(Mailbox, mailbox_id)
    if mailbox is None or not mailbox.active:
        redis.delete(QUEUED_KEY.format(id=mailbox_id))
        return {"mailbox_id": mailbox_id, "skipped": True}
    current = get_current_job()

    def progress(count: int) -> None:
        if current is not None:
            current.meta["fetched"] = int(current.meta.get("fetched", 0)) + count
            current.meta["batches"] = int(current.meta.get("batches", 0)) + 1
            current.save_meta()

    try:
        report = poll_domain(mailbox, redis, on_fetched=progress)
        db.session.commit()
    finally:
        redis.delete(QUEUED_KEY.format(id=mailbox_id))
    return {
        "mailbox_id": report.mailbox_id,
        "skipped": report.skipped,
        "error": report.error,
        "found": report.found,
        "filed": report.filed,
        "marked": report.marked,
        "outcomes": report.outcomes,
    }


@job("mail", timeout=120)
def enqueue_due_polls() -> list[int]:
    """Enqueue a poll for every active mailbox whose interval has passed; their ids."""
    redis = redis_client.connection
    enqueued = []
    for mailbox in due_mailboxes():
        key = QUEUED_KEY.format(id=mailbox.id)
        if redis.set(key, "1", nx=True, ex=max(mailbox.poll_interval_s, 60) * 5):
            enqueue(poll_mailbox, args=(mailbox.id,))
            enqueued.append(mailbox.id)
    db.session.rollback()  # read only
    return enqueued


@job("mail", timeout=30 * 60)
def sweep_mail_drop() -> dict[str, Any]:
    """File the messages waiting in ``MAIL_DROP_DIR``."""
    report = sweep_drop_folder(Path(current_app.config["MAIL_DROP_DIR"]), redis_client.connection)
    return {
        "skipped": report.skipped,
        "filed": report.filed,
        "failed": report.failed,
        "left": report.left,
        "outcomes": report.outcomes,
    }
# --- The relay: ticket replies from the outbox -----------------------------------------
#
# Retries are not RQ's: a failed try puts the row back to ``queued`` with its next time
# and enqueues a delayed job (``relay.send_claimed``), so the database, not Redis, knows
# what is owed, and the sweep can rebuild every job Redis lost.

SEND_JOB_TIMEOUT = 120  # well inside the relay's lease (5 minutes)


def send_job_id(message_id: int, attempts: int) -> str:
    """The job that makes try ``attempts + 1`` of a row: one id, so duplicates are visible."""
    return f"outbox-{message_id}-{attempts}"


def enqueue_send(message_id: int, attempts: int, *, at: datetime | None = None) -> None:
    """After the commit, a job for the row's next try (at ``at``, else now)."""
    from app.jobs import EnqueueOptions, enqueue_after_commit

    delay = None
    if at is not None:
        delay = max(timedelta(0), at - utcnow())
        if delay <= timedelta(0):
            delay = None
    enqueue_after_commit(
        send_outbox,
        args=(message_id,),
        options=EnqueueOptions(job_id=send_job_id(message_id, attempts), delay=delay),
    )


def _drop_queued_jobs(claims: list[relay.Claim]) -> None:
    """Rows sent by another row's job: remove their own jobs if still waiting (LREM is
    atomic, so a job a worker already took is left alone and will find nothing to do)."""
    from app.jobs import queue

    connection = redis_client.connection
    key = queue("mail").key
    job_ids = [send_job_id(c.message_id, c.attempt - 1) for c in claims]
    try:
        with connection.pipeline(transaction=False) as pipe:
            for job_id in job_ids:
                pipe.lrem(key, 1, job_id)
            removed = pipe.execute()
        gone = [f"rq:job:{j}" for j, n in zip(job_ids, removed, strict=True) if n]
        if gone:
            connection.delete(*gone)
    except RedisError:
        log.warning("could not drop the queued jobs %s", job_ids)


@job("mail", timeout=SEND_JOB_TIMEOUT, sweepable=True)
def send_outbox(message_id: int) -> list[dict[str, object]]:
    """Send one outbox row, then other due rows over the same connection (a batch)."""
    via = relay.transport()
    try:
        outcomes = relay.drain(message_id, via, on_claimed=_drop_queued_jobs)
    finally:
        via.close()
    return [
        {"id": o.message_id, "status": o.status, "sent": o.sent, "error": o.error} for o in outcomes
    ]


SWEEP_LOCK = "vaultdesk:lock:outbox-sweep"


@job("sweeps", timeout=120)
def sweep_outbox() -> int:
    """Enqueue a send job for every row left behind (Redis was down, a worker died).

    A row whose next job is already waiting is left alone; a second job would find the
    row claimed or sent and do nothing, so a lost race here costs one empty job.
    """
    from rq.job import Job, JobStatus

    from app.jobs import EnqueueOptions, enqueue

    connection = redis_client.connection
    lock = connection.lock(SWEEP_LOCK, timeout=120)
    if not lock.acquire(blocking=False):
        return 0
    try:
        enqueued = 0
        waiting = {JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.STARTED, JobStatus.DEFERRED}
        for message_id, attempts in relay.left_behind():
            job_id = send_job_id(message_id, attempts)
            try:
                existing = Job.fetch(job_id, connection=connection)
            except NoSuchJobError:
                existing = None
            if existing is not None and existing.get_status(refresh=False) in waiting:
                continue
            if existing is not None:
                existing.delete()
            enqueue(send_outbox, args=(message_id,), options=EnqueueOptions(job_id=job_id))
            enqueued += 1
        return enqueued
    finally:
        lock.release()
