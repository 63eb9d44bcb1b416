"""RQ queues and enqueueing that waits for the transaction.

A job enqueued before its data is committed can run before the commit and find nothing;
one enqueued inside a transaction that then rolls back acts on data that never existed.
``enqueue_after_commit`` parks the job on the session and hands it to Redis only when the
session commits (dropped on rollback).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rq import Queue
from sqlalchemy import event
from sqlalchemy.orm import Session

from app.extensions import db, redis_client

QUEUES = ("mail", "vault", "sweeps", "ai", "default")
_PENDING = "vaultdesk_pending_jobs"


def queue(name: str) -> Queue:
    if name not in QUEUES:
        raise ValueError(f"unknown queue {name!r}; known: {', '.join(QUEUES)}")
    return Queue(name, connection=redis_client.connection)


def enqueue_after_commit(
    queue_name: str, func: Callable[..., Any], *args: Any, **kwargs: Any
) -> None:
    """Enqueue ``func(*args, **kwargs)`` on ``queue_name`` once the current session commits."""
    queue(queue_name)  # fail now, in the request, on a typo
    session = db.session()
    if not session.in_transaction():
        # A rollback with no transaction open fires no event, which would keep the job.
        session.begin()
    session.info.setdefault(_PENDING, []).append((queue_name, func, args, kwargs))


@event.listens_for(Session, "after_commit")
def _flush_pending(session: Session) -> None:
    pending = session.info.pop(_PENDING, [])
    for queue_name, func, args, kwargs in pending:
        queue(queue_name).enqueue(func, *args, **kwargs)


@event.listens_for(Session, "after_soft_rollback")
def _drop_pending(session: Session, previous_transaction: Any) -> None:
    """Drop parked jobs when the whole transaction rolls back (not a savepoint inside it)."""
    if session.in_transaction():
        return
    session.info.pop(_PENDING, None)
