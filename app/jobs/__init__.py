"""Background work on RQ: queues named by purpose, jobs declared with their options.

A job is a plain function in a module of this package (one module per queue: ``mail``,
``vault``, ``sweeps``, …) that takes ids and plain values, calls the domain and commits.
It is declared with ``@job(queue, retry=…, timeout=…)``, so how a job is retried lives
beside the job and every caller gets the same behaviour.

Enqueueing waits for the transaction: a job enqueued before its data is committed can run
before the commit and find nothing; one enqueued inside a transaction that then rolls back
acts on data that never existed. ``enqueue_after_commit`` parks the job on the session and
hands it to Redis only when the session commits (dropped on rollback). The job's own
arguments and RQ's options are kept apart (``args``/``kwargs`` versus keyword options),
so a job may have a parameter called ``timeout`` or ``job_id`` without confusing RQ.

Periodic work (sweeps) is declared in ``app.jobs.schedule`` and enqueued by RQ's own cron
scheduler, started by ``vaultdesk cron`` (``scripts/run`` starts one).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, ParamSpec, TypeVar

from redis.exceptions import RedisError
from rq import Queue, Retry
from rq.job import Job
from sqlalchemy import event
from sqlalchemy.orm import Session

from app.extensions import db, redis_client

log = logging.getLogger(__name__)

QUEUES = ("mail", "vault", "sweeps", "ai", "default")
_PENDING = "vaultdesk_pending_jobs"

P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True)
class JobSpec:
    """How a job runs: its queue, retries, time limit and how long RQ keeps its traces."""

    queue: str
    retry: Retry | None = None
    timeout: int | None = None  # seconds; RQ's default (180) when None
    failure_ttl: int = 7 * 24 * 3600  # failed jobs stay visible a week
    result_ttl: int = 3600
    # True when a periodic sweep finds the work from the database anyway (the relay's
    # outbox rows): if Redis is down at commit time the job is logged and skipped instead
    # of failing a request whose data is already committed.
    sweepable: bool = False


@dataclass(frozen=True)
class EnqueueOptions:
    """Per-call options: a fixed job id (idempotent enqueueing) or a delay."""

    job_id: str | None = None
    delay: timedelta | None = None


@dataclass
class _Parked:
    func: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)
    options: EnqueueOptions = field(default_factory=EnqueueOptions)


def job(
    queue_name: str,
    *,
    retry: Retry | None = None,
    timeout: int | None = None,
    failure_ttl: int = 7 * 24 * 3600,
    sweepable: bool = False,
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Declare a job function: the queue it runs on and how it is retried."""
    if queue_name not in QUEUES:
        raise ValueError(f"unknown queue {queue_name!r}; known: {', '.join(QUEUES)}")

    def declare(func: Callable[P, R]) -> Callable[P, R]:
        func.job_spec = JobSpec(  # type: ignore[attr-defined]
            queue_name, retry, timeout, failure_ttl, sweepable=sweepable
        )
        return func

    return declare


def spec_of(func: Callable[..., Any]) -> JobSpec:
    spec = getattr(func, "job_spec", None)
    if not isinstance(spec, JobSpec):
        raise TypeError(f"{func.__qualname__} is not declared with @job(queue, ...)")
    return spec


def queue(name: str) -> Queue:
    if name not in QUEUES:
        raise ValueError(f"unknown queue {name!r}; known: {', '.join(QUEUES)}")
    return Queue(name, connection=redis_client.connection)


def enqueue(
    func: Callable[..., Any],
    args: tuple[Any, ...] = (),
    kwargs: Mapping[str, Any] | None = None,
    options: EnqueueOptions | None = None,
) -> Job:
    """Hand a declared job to Redis now (for callers outside a transaction)."""
    spec = spec_of(func)
    options = options or EnqueueOptions()
    rq_options: dict[str, Any] = {
        "retry": spec.retry,
        "job_timeout": spec.timeout,
        "failure_ttl": spec.failure_ttl,
        "result_ttl": spec.result_ttl,
        "job_id": options.job_id,
    }
    target = queue(spec.queue)
    if options.delay is not None:
        return target.enqueue_in(
            options.delay, func, args=args, kwargs=dict(kwargs or {}), **rq_options
        )
    return target.enqueue(func, args=args, kwargs=dict(kwargs or {}), **rq_options)


def enqueue_after_commit(
    func: Callable[..., Any],
    args: tuple[Any, ...] = (),
    kwargs: Mapping[str, Any] | None = None,
    options: EnqueueOptions | None = None,
) -> None:
    """Enqueue ``func(*args, **kwargs)`` once the current session commits."""
    spec_of(func)  # fail now, in the request, on an undeclared function
    session = db.session()
    if not session.in_transaction():
        # A rollback with no transaction open fires no event, which would keep the job.
        session.begin()
    parked = _Parked(func, tuple(args), dict(kwargs or {}), options or EnqueueOptions())
    session.info.setdefault(_PENDING, []).append(parked)


@event.listens_for(Session, "after_commit")
def _flush_pending(session: Session) -> None:
    # SQLAlchemy 2.1 fires after_commit for a savepoint's release too: the data is not
    # committed yet then, so the jobs wait for the outermost commit.
    if session.in_nested_transaction():
        return
    parked = session.info.pop(_PENDING, [])
    if len(parked) == 1:
        _enqueue_or_leave_to_sweep(parked)
    elif parked:
        _enqueue_together(parked)


def _enqueue_or_leave_to_sweep(items: list[_Parked]) -> None:
    """Enqueue one parked job; a sweepable one survives Redis being down.

    The data is committed already; a job whose work a periodic sweep finds again in the
    database (the outbox) is not worth failing the request for.
    """
    item = items[0]
    try:
        enqueue(item.func, item.args, item.kwargs, item.options)
    except RedisError as error:
        _leave_to_sweep(items, error)


def _leave_to_sweep(items: list[_Parked], error: RedisError) -> None:
    if not all(spec_of(item.func).sweepable for item in items):
        raise error
    for item in items:
        log.warning(
            "Redis is unreachable; %s%r is left to the sweep", item.func.__qualname__, item.args
        )


def _enqueue_together(parked: list[_Parked]) -> None:
    """Many jobs from one commit (a batch of mail): one Redis round trip per queue.

    Delayed jobs go one by one (they go to the scheduler's registry, not the queue).
    """
    by_queue: dict[str, list[_Parked]] = {}
    for item in parked:
        if item.options.delay is not None:
            _enqueue_or_leave_to_sweep([item])
        else:
            by_queue.setdefault(spec_of(item.func).queue, []).append(item)
    for name, items in by_queue.items():
        target = queue(name)
        datas = []
        for item in items:
            spec = spec_of(item.func)
            datas.append(
                Queue.prepare_data(
                    item.func,
                    args=item.args,
                    kwargs=item.kwargs,
                    timeout=spec.timeout,
                    result_ttl=spec.result_ttl,
                    failure_ttl=spec.failure_ttl,
                    job_id=item.options.job_id,
                    retry=spec.retry,
                )
            )
        try:
            target.enqueue_many(datas)
        except RedisError as error:
            _leave_to_sweep(items, error)


@event.listens_for(Session, "after_soft_rollback")
def _drop_pending(session: Session, previous_transaction: Any) -> None:
    """Drop parked jobs when the whole transaction rolls back (not a savepoint inside it)."""
    if session.in_transaction():
        return
    session.info.pop(_PENDING, None)


def is_last_try() -> bool:
    """Inside a job: whether a failure now is final (no retry left), e.g. to tell someone."""
    from rq import get_current_job

    current = get_current_job()
    return current is None or not current.retries_left
