"""``notify``: from an event to in-app rows and mails, never to the one who acted.

Who is concerned, per kind (documented in the README):

- ``new_ticket``: the manager if the ticket was opened with one; else the agents and
  supervisors of its team; else (no team, no manager: it waits for dispatch) every active
  agent and supervisor, since anyone may dispatch.
- ``assigned``: the new manager, with the handover note when the assignment carries one.
- ``customer_wrote``: the manager of the ticket the customer wrote on (when a late reply
  opens a follow-up ticket, the old ticket's manager hears of the new one).
- ``mentioned``: the colleagues named with ``@`` in an internal note (``mentions``).
- ``task_due``: the task's assignee (``due.tasks_due``).
- ``reply_failed``: the author of the reply the relay gave up on (``reply_failed``).

Then everyone who is the actor, inactive, or not an agent/supervisor is dropped, each
person's preference (``preferences``) says in-app and/or mail, and mail is one outbox row
per person and event, ``Auto-Submitted: auto-generated``, in that person's language, from
the default sender identity (no identity: in-app only). Digests were not chosen: the
events that mail by default are personal and rare, and a digest would delay exactly those.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from flask_babel import force_locale
from flask_babel import gettext as _
from sqlalchemy import select

from app.actor import Actor
from app.extensions import db
from app.models.mail import OutboxMessage, OutboxRecipient, SenderIdentity
from app.models.notifications import Notification, NotificationKind
from app.models.people import Role, User, UserRole
from app.models.tickets import EntryKind, RecipientKind, Ticket
from app.models.types import utcnow
from app.notifications.mentions import mentioned_users
from app.notifications.preferences import choices_for
from app.notifications.texts import detail, headline
from app.urls import public_url

EXCERPT = 200


def _working_staff() -> Any:
    return select(UserRole.user_id).where(
        UserRole.role.in_((Role.AGENT.value, Role.SUPERVISOR.value))
    )


def _user(user_id: int | None) -> list[User]:
    user = db.session.get(User, user_id) if user_id is not None else None
    return [user] if user is not None else []


# Mail ingestion opens hundreds of tickets per transaction, and for each one asked the
# same questions: which staff a new ticket without a manager concerns (per team), which
# of them work tickets, what they chose for the kind. Inside ``batch`` each answer is
# asked once and kept on the session until the block ends; nothing in such a block
# changes staff, roles or preferences (mail ingestion never does), so the answers stay
# true. Outside a block every call asks the database, as before.
_BATCH = "vaultdesk_notify_batch"


@contextmanager
def batch() -> Iterator[None]:
    """Answer the staff questions of the block's ``notify`` calls once (see above).

    Nested use joins the outer block. Only for blocks that change no user, role or
    notification preference.
    """
    session = db.session()
    if _BATCH in session.info:
        yield
        return
    session.info[_BATCH] = {}
    try:
        yield
    finally:
        session.info.pop(_BATCH, None)


def _asked_once(key: tuple[Any, ...], ask: Any) -> Any:
    """``ask()``, or inside ``batch`` its answer from the first time ``key`` was asked."""
    answers: dict[tuple[Any, ...], Any] | None = db.session().info.get(_BATCH)
    if answers is None:
        return ask()
    if key not in answers:
        answers[key] = ask()
    return answers[key]


def _new_ticket_staff(team_id: int | None) -> list[User]:
    query = select(User).where(User.active.is_(True), User.id.in_(_working_staff()))
    if team_id is not None:
        query = query.where(User.team_id == team_id)
    return list(db.session.scalars(query.order_by(User.id)))


def concerned(
    kind: NotificationKind, ticket: Ticket, text: str = "", manager: User | None = None
) -> list[User]:
    """Who an event of ``kind`` is about (before dropping the actor): see the module doc."""
    if kind is NotificationKind.NEW_TICKET:
        if ticket.assignee_id is not None:
            return _user(ticket.assignee_id)
        team_id = ticket.team_id
        return list(_asked_once(("new_ticket", team_id), lambda: _new_ticket_staff(team_id)))
    if kind in (NotificationKind.ASSIGNED, NotificationKind.CUSTOMER_WROTE):
        # The object, not the id: an assignment sets the relationship before any flush.
        manager = manager or ticket.assignee
        return [manager] if manager is not None else []
    if kind is NotificationKind.MENTIONED:
        return mentioned_users(text)
    return []


def notify(
    kind: NotificationKind,
    ticket: Ticket,
    actor: Actor,
    *,
    users: Iterable[User] | None = None,
    text: str | None = None,
    manager: User | None = None,
    **params: Any,
) -> list[User]:
    """Tell whoever ``kind`` concerns on ``ticket`` (or ``users``), never ``actor``.

    ``text`` is the words of the event (a customer's message, a note), kept as a short
    excerpt; ``manager`` whom to tell instead of the ticket's manager; ``params`` are the
    kind's values (``note``, ``title``, ``due_at``, ``error``), kept as JSON on the row.
    Returns the people told (in the app, by mail or both).
    """
    people = list(users) if users is not None else concerned(kind, ticket, text or "", manager)
    if text is not None:
        params["excerpt"] = " ".join(text.split())[:EXCERPT]
    if not people:
        return []
    ids = tuple(sorted({u.id for u in people}))
    working = _asked_once(
        ("working", ids),
        lambda: set(db.session.scalars(_working_staff().where(UserRole.user_id.in_(ids)))),
    )
    seen: set[int] = set()
    told: list[User] = []
    for user in people:
        # Never about one's own action: the actor is dropped here, for every kind.
        if user.id in seen or user.id == actor.user_id:
            continue
        if not user.active or user.id not in working:
            continue
        seen.add(user.id)
        told.append(user)
    choices = _asked_once(
        ("choices", kind, tuple(u.id for u in told)), lambda: choices_for(told, kind)
    )
    identity: SenderIdentity | None = None
    delivered: list[User] = []
    for user in told:
        choice = choices[user.id]
        if choice.in_app:
            db.session.add(
                Notification(
                    user_id=user.id,
                    kind=kind.value,
                    ticket_id=ticket.id,
                    actor_name=actor.name if actor.user is not None or actor.email else None,
                    params=params,
                    created_at=utcnow(),
                )
            )
        if choice.by_mail:
            identity = identity or _asked_once(("identity",), _identity)
            if identity is not None:
                _mail(user, kind, ticket, actor, params, identity)
        if choice.in_app or choice.by_mail:
            delivered.append(user)
    return delivered


def _identity() -> SenderIdentity | None:
    return db.session.scalar(
        select(SenderIdentity)
        .where(SenderIdentity.active.is_(True))
        .order_by(SenderIdentity.is_default.desc(), SenderIdentity.id)
    )


def _mail(
    user: User,
    kind: NotificationKind,
    ticket: Ticket,
    actor: Actor,
    params: dict[str, Any],
    identity: SenderIdentity,
) -> OutboxMessage:
    """One automatic mail to one agent, in their language, through the relay."""
    from app.mail.outbound import _enqueue, _new_message

    actor_name = actor.name if actor.user is not None or actor.email else None
    with force_locale(user.language or "en"):
        line = headline(kind.value, params, actor_name, ticket.number)
        more = detail(kind.value, params)
        body = "\n\n".join(
            part
            for part in (
                line,
                f"{ticket.subject}",
                more,
                _("Open the ticket: %(url)s", url=public_url("agent.ticket", number=ticket.number)),
                _(
                    "You get this mail because of your notification settings: %(url)s",
                    url=public_url("agent.notification_preferences"),
                ),
            )
            if part
        )
    message = _new_message(ticket, identity, from_name=identity.name, body_text=body)
    message.subject = f"[#{ticket.number}] {line}"
    message.signature = None
    message.language = user.language or "en"
    message.auto_submitted = "auto-generated"
    message.recipients = {RecipientKind.TO.value: [user.email.lower()]}
    message.deliveries.append(
        OutboxRecipient(kind=RecipientKind.TO.value, address=user.email.lower(), name=user.name)
    )
    db.session.add(message)
    _enqueue(message)
    return message


def reply_failed(outbox_id: int, error: str | None) -> list[User]:
    """The relay gave up on an outbox row, or a bounce came back: tell the reply's author.

    Only a person's reply counts (a ``mail_out`` entry, not automatic mail): a failed
    notification mail must not breed another notification. ``error`` is passed in because
    the relay finishes rows with an UPDATE the loaded object does not see.
    """
    message = db.session.get(OutboxMessage, outbox_id)
    if message is None or message.auto_submitted or message.ticket is None:
        return []
    entry = message.entry
    if entry is None or entry.kind != EntryKind.MAIL_OUT.value or entry.author_id is None:
        return []
    return notify(
        NotificationKind.REPLY_FAILED,
        message.ticket,
        Actor.system(),
        users=_user(entry.author_id),
        error=(error or "")[:300],
        outbox_id=message.id,
    )
