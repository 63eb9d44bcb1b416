"""The Pending sweep: follow-up reminders and auto-closes that are due (``app.tickets.pending``).

Runs every minute from ``app.jobs.schedule``. Each ticket is claimed by a conditional
UPDATE in the domain and committed on its own, so two sweeps at once act once on each
ticket, one ticket that fails (logged, rolled back) does not hold back the others and is
tried again next minute, and a sweep that did not run for a while catches up: the ranges
have no lower bound, and the job keeps taking batches until nothing is due. The Redis
lock only spares a second worker the empty pass; correctness does not depend on it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from app.extensions import db, redis_client
from app.jobs import job
from app.models.types import utcnow
from app.tickets import pending

log = logging.getLogger(__name__)

LOCK = "vaultdesk:lock:pending-sweep"
TIMEOUT = 600


@dataclass
class Swept:
    reminded: int = 0
    closed: int = 0


def _each(
    find: Callable[[datetime], list[int]], act: Callable[[int, datetime], bool], now: datetime
) -> int:
    """Act on every due ticket, one commit each; batches until none is left."""
    done, seen = 0, set()
    while True:
        batch = [i for i in find(now) if i not in seen]  # each ticket once per pass
        if not batch:
            return done
        for ticket_id in batch:
            seen.add(ticket_id)
            try:
                if act(ticket_id, now):
                    done += 1
                db.session.commit()
            except Exception:  # one broken ticket must not stop the sweep
                db.session.rollback()
                log.exception("pending sweep: ticket %s failed; tried again next run", ticket_id)


def sweep(now: datetime | None = None) -> Swept:
    """One pass over everything due at ``now``; safe to run in several workers at once."""
    now = now or utcnow()
    swept = Swept()
    swept.reminded = _each(lambda at: pending.due_reminders(at), pending.remind, now)
    swept.closed = _each(lambda at: pending.due_auto_closes(at), pending.auto_close, now)
    return swept


@job("sweeps", timeout=TIMEOUT)
def sweep_pending_tickets() -> dict[str, int]:
    """The periodic job: remind and auto-close what is due; counts of each."""
    lock = redis_client.connection.lock(LOCK, timeout=TIMEOUT)
    if not lock.acquire(blocking=False):
        return {"reminded": 0, "closed": 0}
    try:
        swept = sweep()
        return {"reminded": swept.reminded, "closed": swept.closed}
    finally:
        lock.release()
