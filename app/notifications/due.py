"""A task of mine is due: found by a periodic sweep, told once per task."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update

from app.actor import Actor
from app.extensions import db
from app.models.notifications import NotificationKind
from app.models.tickets import Task
from app.models.types import utcnow
from app.notifications.core import notify


def tasks_due(now: datetime | None = None, limit: int = 500) -> int:
    """Tell each assignee of an open task whose due time has passed; returns how many.

    Each task is taken by one conditional UPDATE on ``due_notified_at`` before anyone is
    told, so two sweeps running at once (two schedulers, a slow worker) tell once. A task
    made due again later (reopened) is not told again: the reminder is about reaching the
    due time, once.
    """
    now = now or utcnow()
    candidates = db.session.scalars(
        select(Task.id)
        .where(
            Task.done_at.is_(None),
            Task.due_at.is_not(None),
            Task.due_at <= now,
            Task.due_notified_at.is_(None),
            Task.assignee_id.is_not(None),
        )
        .order_by(Task.due_at, Task.id)
        .limit(limit)
    ).all()
    told = 0
    for task_id in candidates:
        taken = db.session.execute(
            update(Task)
            .where(Task.id == task_id, Task.due_notified_at.is_(None))
            .values(due_notified_at=now)
            .execution_options(synchronize_session=False)
        )
        if not taken.rowcount:  # type: ignore[attr-defined]
            continue
        task = db.session.get(Task, task_id)
        if task is None or task.assignee is None:
            continue
        notify(
            NotificationKind.TASK_DUE,
            task.ticket,
            Actor.system(),
            users=[task.assignee],
            title=task.title,
            task_id=task.id,
            due_at=task.due_at.strftime("%Y-%m-%d %H:%M") if task.due_at else None,
        )
        told += 1
    return told
