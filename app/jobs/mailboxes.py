"""Jobs that bring mail in: polling IMAP mailboxes and sweeping the drop folder.

``enqueue_due_polls`` runs every minute (``app.jobs.schedule``) and enqueues one
``poll_mailbox`` per active mailbox whose interval has passed. A Redis key per mailbox,
set when its poll is enqueued and living one interval, keeps a slow poll (or a slow
worker) from piling up copies of the same job; the poll itself also takes a lock, so
several schedulers and workers are safe.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import current_app
from rq import get_current_job

from app.extensions import db, redis_client
from app.jobs import enqueue, job
from app.mail.drop import sweep_drop_folder
from app.mail.imap import POLL_JOB_SECONDS
from app.mail.imap import poll_mailbox as poll_domain
from app.mail.mailboxes import due_mailboxes
from app.models.inbound import Mailbox

QUEUED_KEY = "vaultdesk:mailbox-poll-queued:{id}"


@job("mail", timeout=POLL_JOB_SECONDS)
def poll_mailbox(mailbox_id: int) -> dict[str, Any]:
    """Poll one mailbox now; progress (messages fetched) is in the job's meta."""
    redis = redis_client.connection
    mailbox = db.session.get(Mailbox, mailbox_id)
    if mailbox is None or not mailbox.active:
        redis.delete(QUEUED_KEY.format(id=mailbox_id))
        return {"mailbox_id": mailbox_id, "skipped": True}
    current = get_current_job()

    def progress(count: int) -> None:
        if current is not None:
            current.meta["fetched"] = int(current.meta.get("fetched", 0)) + count
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
