"""Categories as admins manage them: create, rename, retire, merge.

Decisions: a category is never deleted while tickets use it. Retiring it (``active``
false) stops it being offered (agent ticket page, portal form, list filters all list
active ones) while old tickets keep and show it. Merging moves every ticket of one
category to another and then deletes the emptied one: the right tool for duplicates
("Billing" and "Invoices"). Merged tickets get their ``version`` bumped, so an agent's
open page notices the change like any other; the audit row names the moved tickets.
Re-categorising does not write a stream entry on every ticket: it is housekeeping of
the list of categories, not a decision about the ticket.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask_babel import gettext as _
from sqlalchemy import func, select, update

from app import audit
from app.actor import Actor
from app.errors import Conflict, InvalidInput
from app.extensions import db
from app.models.tickets import Category, Ticket

NAME_LIMIT = 100


@dataclass(frozen=True)
class CategoryRow:
    category: Category
    tickets: int


def list_categories() -> list[CategoryRow]:
    """Every category, active first, with how many tickets use it."""
    counts = dict(
        db.session.execute(
            select(Ticket.category_id, func.count())
            .where(Ticket.category_id.is_not(None))
            .group_by(Ticket.category_id)
        ).all()
    )
    rows = db.session.scalars(
        select(Category).order_by(Category.active.desc(), func.lower(Category.name))
    )
    return [CategoryRow(c, counts.get(c.id, 0)) for c in rows]


def _name(name: str, category: Category | None) -> str:
    cleaned = " ".join(name.split())
    if not cleaned or len(cleaned) > NAME_LIMIT:
        raise InvalidInput(_("A category needs a name (up to 100 characters)."))
    clash = db.session.scalar(select(Category).where(func.lower(Category.name) == cleaned.lower()))
    if clash is not None and clash is not category:
        raise Conflict(_("There is a category called %(name)s already.", name=cleaned))
    return cleaned


def create_category(actor: Actor, name: str) -> Category:
    category = Category(name=_name(name, None), active=True)
    db.session.add(category)
    db.session.flush()
    audit.record(actor, "category.create", "category", category.id, name=category.name)
    return category


def rename_category(actor: Actor, category: Category, name: str) -> bool:
    cleaned = _name(name, category)
    if cleaned == category.name:
        return False
    before = category.name
    category.name = cleaned
    audit.record(actor, "category.rename", "category", category.id, before=before, after=cleaned)
    return True


def set_active(actor: Actor, category: Category, active: bool) -> bool:
    """Retire (no longer offered; old tickets keep it) or offer again."""
    if category.active == active:
        return False
    category.active = active
    action = "category.restore" if active else "category.retire"
    audit.record(actor, action, "category", category.id, name=category.name)
    return True


def merge_categories(actor: Actor, source: Category, target: Category) -> int:
    """Move every ticket of ``source`` to ``target`` and delete ``source``; the count moved."""
    if source.id == target.id:
        raise InvalidInput(_("Choose another category to merge into."))
    moved = list(db.session.scalars(select(Ticket.id).where(Ticket.category_id == source.id)))
    if moved:
        db.session.execute(
            update(Ticket)
            .where(Ticket.id.in_(moved))
            .values(category_id=target.id, version=Ticket.version + 1)
            .execution_options(synchronize_session="fetch")
        )
    audit.record(
        actor,
        "category.merge",
        "category",
        source.id,
        name=source.name,
        into=target.name,
        into_id=target.id,
        tickets=moved,
    )
    db.session.delete(source)
    db.session.flush()
    return len(moved)
