"""Jobs for agent notifications: the periodic "a task of mine is due" sweep."""

from __future__ import annotations

from app.extensions import db, redis_client
from app.jobs import job
from app.notifications import tasks_due

DUE_LOCK = "vaultdesk:lock:tasks-due"


@job("sweeps", timeout=120)
def notify_due_tasks() -> int:
    """Tell assignees whose tasks reached their due time; returns how many were told.

    Idempotent without the lock (each task is taken by a conditional UPDATE); the lock
    only spares a second worker the empty pass.
    """
    lock = redis_client.connection.lock(DUE_LOCK, timeout=120)
    if not lock.acquire(blocking=False):
        return 0
    try:
        told = tasks_due()
        db.session.commit()
        return told
    finally:
        lock.release()
