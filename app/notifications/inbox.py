"""Reading one's own notifications: the bell's count and tag, the list, marking read.

Every function takes the reader: a notification of someone else is as absent as one that
never existed (``NotFound``, 404), so ids reveal nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask_babel import gettext as _
from sqlalchemy import func, select, update
from sqlalchemy.orm import joinedload

from app.errors import NotFound
from app.extensions import db
from app.models.notifications import Notification
from app.models.people import User
from app.models.types import utcnow


@dataclass(frozen=True)
class Bell:
    unread: int
    tag: str  # changes when a notification arrives or is read: part of the polls' ETags


def bell(user: User) -> Bell:
    """Unread count and a fingerprint, from the (user_id, read_at) index."""
    unread, newest = db.session.execute(
        select(
            select(func.count(Notification.id))
            .where(Notification.user_id == user.id, Notification.read_at.is_(None))
            .scalar_subquery(),
            select(func.max(Notification.id))
            .where(Notification.user_id == user.id)
            .scalar_subquery(),
        )
    ).one()
    return Bell(int(unread or 0), f"n{newest or 0}u{unread or 0}")


def notifications_of(user: User, *, page: int, per_page: int) -> tuple[list[Notification], int]:
    """One page of the reader's notifications, newest first, and how many there are."""
    total = (
        db.session.scalar(
            select(func.count(Notification.id)).where(Notification.user_id == user.id)
        )
        or 0
    )
    rows = db.session.scalars(
        select(Notification)
        .where(Notification.user_id == user.id)
        .options(joinedload(Notification.ticket))
        .order_by(Notification.id.desc())
        .limit(per_page)
        .offset((page - 1) * per_page)
    ).all()
    return list(rows), int(total)


def notification_of(user: User, notification_id: int) -> Notification:
    """The reader's own notification, else NotFound (also for other people's)."""
    row = db.session.get(Notification, notification_id)
    if row is None or row.user_id != user.id:
        raise NotFound(_("There is no such notification."))
    return row


def mark_read(row: Notification) -> None:
    if row.read_at is None:
        row.read_at = utcnow()


def mark_all_read(user: User) -> int:
    """Everything of the reader's read now; returns how many were unread."""
    result = db.session.execute(
        update(Notification)
        .where(Notification.user_id == user.id, Notification.read_at.is_(None))
        .values(read_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
