"""Periodic work: what runs when, in one list, enqueued by RQ's own cron scheduler.

``vaultdesk cron`` starts an ``rq.cron.CronScheduler`` with these entries (``scripts/run``
starts one next to the worker). The scheduler only enqueues; workers run the jobs. Every
periodic job is idempotent and takes a Redis lock where running twice at once would do
harm, so starting a second scheduler (or a second machine) is safe: at worst a sweep runs
twice and finds nothing the second time. Cron expressions are read in the scheduler
machine's local time, as RQ does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from redis import Redis
from rq.cron import CronScheduler

from app.jobs import enqueue, spec_of
from app.jobs.mail import enqueue_due_polls, sweep_mail_drop, sweep_outbox
from app.jobs.notify import notify_due_tasks
from app.jobs.pending import sweep_pending_tickets
from app.jobs.sla import sweep_escalations
from app.jobs.vault import sweep_orphan_blobs


@dataclass(frozen=True)
class Periodic:
    func: Callable[..., Any]
    cron: str | None = None  # e.g. "17 3 * * *"
    interval: int | None = None  # seconds, for work that runs every few minutes


PERIODIC: tuple[Periodic, ...] = (
    # Nightly, off the hour so several installations on one storage do not collide.
    Periodic(sweep_orphan_blobs, cron="17 3 * * *"),
    # Each mailbox has its own interval; this only enqueues the polls that are due.
    Periodic(enqueue_due_polls, cron="* * * * *"),
    Periodic(sweep_mail_drop, cron="* * * * *"),
    # Replies left queued (Redis down at commit, a worker gone past its lease).
    Periodic(sweep_outbox, interval=60),
    # Tasks that reached their due time: each assignee is told once (``notifications.due``).
    Periodic(notify_due_tasks, cron="* * * * *"),
    # Pending tickets: follow-up reminders and the auto-close (``tickets.pending``).
    Periodic(sweep_pending_tickets, cron="* * * * *"),
    # SLA breaches and warnings: recorded, then told at each recipient's working time.
    Periodic(sweep_escalations, cron="* * * * *"),
)


def cron_scheduler(connection: Redis) -> CronScheduler:
    """A scheduler with every periodic job registered on its job's own queue."""
    scheduler = CronScheduler(connection=connection)
    for entry in PERIODIC:
        spec = spec_of(entry.func)
        scheduler.register(
            entry.func,
            queue_name=spec.queue,
            cron=entry.cron,
            interval=entry.interval,
            job_timeout=spec.timeout,
            failure_ttl=spec.failure_ttl,
        )
    return scheduler


def enqueue_all_now() -> list[str]:
    """Enqueue every periodic job once, now (``vaultdesk cron --once``): ids of the jobs."""
    return [enqueue(entry.func).id for entry in PERIODIC]
