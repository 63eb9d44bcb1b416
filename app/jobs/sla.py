"""Jobs for SLA escalation: the periodic sweep, and the delivery of the notices it queued.

``sweep_escalations`` runs every minute (``app.jobs.schedule``): it records what is due
(``app.sla.escalation.sweep``), commits, and when notices are due hands them to
``deliver_escalations``. Both are safe to run on several workers at once without the lock
(unique rows and conditional claims, see ``app.sla.escalation``); the lock only spares a
second worker the same pass. A sweep missed (workers down over a weekend) catches up on
the next run, because it looks for "due and not yet recorded", not "due since last time".
"""

from __future__ import annotations

from app.extensions import db, redis_client
from app.jobs import enqueue_after_commit, job
from app.sla import escalation

SWEEP_LOCK = "vaultdesk:lock:sla-escalation-sweep"
DELIVER_LOCK = "vaultdesk:lock:sla-escalation-deliver"
BATCH = 500


@job("sweeps", timeout=300)
def sweep_escalations() -> int:
    """Record the escalations that are due; returns how many rows were written."""
    lock = redis_client.connection.lock(SWEEP_LOCK, timeout=300)
    if not lock.acquire(blocking=False):
        return 0
    try:
        result = escalation.sweep()
        if escalation.due_notices(limit=1):
            enqueue_after_commit(deliver_escalations)
        db.session.commit()
        return result.total
    finally:
        lock.release()


@job("sweeps", timeout=600)
def deliver_escalations() -> int:
    """Tell every notice whose time has come, one transaction each; returns how many."""
    lock = redis_client.connection.lock(DELIVER_LOCK, timeout=600)
    if not lock.acquire(blocking=False):
        return 0
    try:
        return deliver_due()
    finally:
        lock.release()


def deliver_due(batch: int = BATCH) -> int:
    """Deliver due notices until none is left (also called by tests and the CLI)."""
    told = 0
    while True:
        ids = escalation.due_notices(limit=batch)
        db.session.rollback()  # end the read: each claim starts its own write transaction
        if not ids:
            return told
        for escalation_id in ids:
            if escalation.deliver(escalation_id) == "sent":
                told += 1
            db.session.commit()
        if len(ids) < batch:
            return told
