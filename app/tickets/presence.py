"""Presence on a ticket: which colleagues have it open, and who is typing an answer.

Kept in Redis only, never in process memory (any number of web processes share it) and
never in the database (it is worthless after a few seconds). Per ticket there are two
sorted sets: ``open`` (member: user id) and ``typing`` (member: ``"<user id>:<kind>"``),
each member scored with the moment it lapses. The ticket page's presence poll
(every ``POLL_SECONDS``) marks the viewer present for ``OPEN_SECONDS``; a draft save
marks them typing for ``TYPING_SECONDS``. Reading drops lapsed members first, and the
keys themselves expire, so a closed tab or a crashed browser disappears on its own and
Redis keeps nothing about a ticket nobody looks at. Sorted sets rather than one key per
ticket and user: reading a ticket's presence is one range read, not a scan of keys.

Expiry uses each web process's clock; servers kept in time by NTP are seconds apart at
worst, well inside the windows here.

Presence is a courtesy, not a record: nothing is audited, and when Redis cannot be
reached every function here does nothing and answers "nobody", so the ticket page and
draft saving work on without it. Only staff views call this module; customers never see
who of the staff is looking.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import redis
from sqlalchemy import select

from app.extensions import db, redis_client
from app.models.drafts import DraftKind
from app.models.people import User
from app.models.tickets import Ticket

log = logging.getLogger(__name__)

POLL_SECONDS = 5
OPEN_SECONDS = 20  # a few missed polls before a viewer counts as gone
TYPING_SECONDS = 8  # the page saves at least every few seconds while someone types
PREFIX = "vaultdesk:presence"
UNREACHABLE = (redis.RedisError, OSError)


@dataclass(frozen=True)
class Colleague:
    """Someone else on the ticket; ``typing`` is the kind of answer they are writing."""

    user_id: int
    name: str
    typing: DraftKind | None = None


def _key(ticket: Ticket, what: str) -> str:
    return f"{PREFIX}:{ticket.id}:{what}"


def typing(ticket: Ticket, user: User, kind: DraftKind) -> None:
    """Mark the agent as writing a ``kind`` on the ticket (called when a draft is saved)."""
    now = time.time()
    key = _key(ticket, "typing")
    try:
        pipe = redis_client.connection.pipeline(transaction=False)
        # One composer, one kind at a time: switching reply/note moves the mark too.
        pipe.zrem(key, *(f"{user.id}:{other.value}" for other in DraftKind if other is not kind))
        pipe.zadd(key, {f"{user.id}:{kind.value}": now + TYPING_SECONDS})
        pipe.zadd(_key(ticket, "open"), {str(user.id): now + OPEN_SECONDS})
        pipe.expire(key, TYPING_SECONDS)
        pipe.expire(_key(ticket, "open"), OPEN_SECONDS)
        pipe.execute()
    except UNREACHABLE as error:
        log.warning("presence: could not mark typing on ticket %s: %s", ticket.id, error)


def stopped_typing(ticket: Ticket, user: User) -> None:
    """The agent emptied or sent their answer: no "typing" for them until they type again."""
    try:
        redis_client.connection.zrem(
            _key(ticket, "typing"), *(f"{user.id}:{kind.value}" for kind in DraftKind)
        )
    except UNREACHABLE as error:
        log.warning("presence: could not clear typing on ticket %s: %s", ticket.id, error)


def look(ticket: Ticket, viewer: User, *, has_draft: bool = True) -> list[Colleague]:
    """Mark ``viewer`` present and return the others on the ticket, by name.

    ``has_draft=False`` (the viewer has nothing unsent here, e.g. just after sending) ends
    their "typing" mark at once instead of when it lapses. One round trip to Redis; an
    unreachable Redis gives an empty list, never an error.
    """
    now = time.time()
    open_key, typing_key = _key(ticket, "open"), _key(ticket, "typing")
    try:
        pipe = redis_client.connection.pipeline(transaction=False)
        if not has_draft:
            pipe.zrem(typing_key, *(f"{viewer.id}:{kind.value}" for kind in DraftKind))
        pipe.zadd(open_key, {str(viewer.id): now + OPEN_SECONDS})
        pipe.expire(open_key, OPEN_SECONDS)
        pipe.zremrangebyscore(open_key, "-inf", now)
        pipe.zremrangebyscore(typing_key, "-inf", now)
        pipe.zrange(open_key, 0, -1)
        pipe.zrange(typing_key, 0, -1)
        *_, present, writing = pipe.execute()
    except UNREACHABLE as error:
        log.warning(
            "presence: Redis unreachable, showing nobody on ticket %s: %s", ticket.id, error
        )
        return []
    ids = {int(m) for m in present if m.isdigit()} - {viewer.id}
    kinds: dict[int, DraftKind] = {}
    for member in writing:
        user_id, _, kind = member.decode().partition(":")
        if user_id.isdigit() and kind in DraftKind._value2member_map_:
            # A reply outranks a note when someone drafts both: it is what collides.
            if kinds.get(int(user_id)) is not DraftKind.REPLY:
                kinds[int(user_id)] = DraftKind(kind)
    ids |= set(kinds) - {viewer.id}
    if not ids:
        return []
    people = db.session.scalars(
        select(User).where(User.id.in_(ids), User.active.is_(True)).order_by(User.name)
    ).all()
    return [Colleague(p.id, p.name, kinds.get(p.id)) for p in people if p.is_staff]
