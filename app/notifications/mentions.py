"""``@name`` in an internal note: who is meant.

The syntax (documented in the README): ``@`` followed by the part of a colleague's
address before the ``@`` -- ``@anna.schmidt`` for ``anna.schmidt@example.com`` -- or by
the whole address (``@anna.schmidt@example.com``) when two colleagues share that part at
different domains. Addresses are unique and every agent knows them; display names are
neither (two "Anna"s, spaces, accents). Matching ignores case; a trailing full stop or
comma belongs to the sentence, not the name. An address inside a word (``mail@host``)
is not a mention.
"""

from __future__ import annotations

import re

from sqlalchemy import func, or_, select

from app.extensions import db
from app.models.people import Role, User, UserRole

MENTION = re.compile(r"(?<![\w@.+-])@([A-Za-z0-9._%+-]+(?:@[A-Za-z0-9.-]+)?)")


def mention_tokens(text: str) -> set[str]:
    """The names written after ``@`` in ``text``, lower case, sentence punctuation removed."""
    return {m.group(1).rstrip(".-").lower() for m in MENTION.finditer(text or "")} - {""}


def mentioned_users(text: str) -> list[User]:
    """Active agents and supervisors named in ``text`` (see the module doc for the syntax)."""
    tokens = mention_tokens(text)
    if not tokens:
        return []
    full = [t for t in tokens if "@" in t]
    local = [t for t in tokens if "@" not in t]
    conditions = []
    if full:
        conditions.append(func.lower(User.email).in_(full))
    for token in local:
        # The part before "@", compared exactly: LIKE would let "_" and "%" match anything.
        conditions.append(func.lower(User.email).startswith(token + "@", autoescape=True))
    working = select(UserRole.user_id).where(
        UserRole.role.in_((Role.AGENT.value, Role.SUPERVISOR.value))
    )
    return list(
        db.session.scalars(
            select(User)
            .where(User.active.is_(True), User.id.in_(working), or_(*conditions))
            .order_by(User.id)
        )
    )
