"""Each agent's choice per kind of notification: in the app, by mail, both or neither.

Defaults (no row stored): what is addressed to me personally (assigned to me, mentioned,
my task due, my reply failed, my pending ticket's follow-up date) comes in the app *and*
by mail, because it needs me even when I am not looking at the desk; what is about my work
in general (a new ticket in my team or for dispatch, a customer wrote on my ticket) only in
the app: a busy team would drown in such mail, and a customer's mail on my ticket is
already passed on to me by mail (``outbound.queue_distribution``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from sqlalchemy import select

from app.extensions import db
from app.models.notifications import NotificationKind, NotificationPreference
from app.models.people import User


@dataclass(frozen=True)
class Choice:
    in_app: bool
    by_mail: bool


DEFAULTS: dict[NotificationKind, Choice] = {
    NotificationKind.NEW_TICKET: Choice(in_app=True, by_mail=False),
    NotificationKind.ASSIGNED: Choice(in_app=True, by_mail=True),
    NotificationKind.CUSTOMER_WROTE: Choice(in_app=True, by_mail=False),
    NotificationKind.MENTIONED: Choice(in_app=True, by_mail=True),
    NotificationKind.TASK_DUE: Choice(in_app=True, by_mail=True),
    NotificationKind.REPLY_FAILED: Choice(in_app=True, by_mail=True),
    NotificationKind.FOLLOW_UP_DUE: Choice(in_app=True, by_mail=True),
    NotificationKind.SLA_ESCALATION: Choice(in_app=True, by_mail=True),
}


def choices_for(users: Iterable[User], kind: NotificationKind) -> dict[int, Choice]:
    """What each of ``users`` wants for ``kind``: one query for all of them."""
    ids = [u.id for u in users]
    if not ids:
        return {}
    stored = {
        row.user_id: Choice(row.in_app, row.by_mail)
        for row in db.session.scalars(
            select(NotificationPreference).where(
                NotificationPreference.user_id.in_(ids),
                NotificationPreference.kind == kind.value,
            )
        )
    }
    return {i: stored.get(i, DEFAULTS[kind]) for i in ids}


def preferences_of(user: User) -> dict[NotificationKind, Choice]:
    """Every kind for one agent (the preferences page), defaults where nothing is stored."""
    stored = {
        row.kind: Choice(row.in_app, row.by_mail)
        for row in db.session.scalars(
            select(NotificationPreference).where(NotificationPreference.user_id == user.id)
        )
    }
    return {kind: stored.get(kind.value, DEFAULTS[kind]) for kind in NotificationKind}


def save_preferences(user: User, choices: Mapping[NotificationKind, Choice]) -> None:
    """Store the kinds given; a choice equal to the default removes the row, so a later
    change of the defaults reaches everyone who never chose otherwise."""
    rows = {
        row.kind: row
        for row in db.session.scalars(
            select(NotificationPreference).where(NotificationPreference.user_id == user.id)
        )
    }
    for kind, choice in choices.items():
        row = rows.get(kind.value)
        if choice == DEFAULTS[kind]:
            if row is not None:
                db.session.delete(row)
            continue
        if row is None:
            row = NotificationPreference(user_id=user.id, kind=kind.value)
            db.session.add(row)
        row.in_app, row.by_mail = choice.in_app, choice.by_mail
