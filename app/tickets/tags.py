"""Tags: free words, normalised so "VPN" and " vpn " are one tag.

Agents tag tickets (``apply_tags``); admins tidy the words across all tickets: rename
(to a name no other tag has; otherwise that is a merge), merge one tag into another
(every ticket with the first gets the second, the first is deleted) and delete (off
every ticket). Tickets touched get their ``version`` bumped, so an agent's open page
notices the change; the audit row names the tickets. No stream entry is written per
ticket: tidying the vocabulary is not a decision about the ticket.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask_babel import gettext as _
from sqlalchemy import delete, func, insert, select, update

from app import audit
from app.actor import Actor
from app.errors import Conflict
from app.extensions import db
from app.models.tickets import Tag, Ticket, ticket_tags
from app.tickets.errors import InvalidTicketChange


def normalise(name: str) -> str:
    cleaned = " ".join(name.strip().lower().split())
    if not cleaned or len(cleaned) > 60:
        raise InvalidTicketChange(f"{name!r} is not a usable tag (1 to 60 characters).")
    return cleaned


def get_or_create(name: str) -> Tag:
    name = normalise(name)
    tag = db.session.scalar(select(Tag).where(Tag.name == name))
    if tag is None:
        tag = Tag(name=name)
        db.session.add(tag)
    return tag


def apply_tags(ticket: Ticket, names: list[str]) -> tuple[list[str], list[str]]:
    """Make the ticket's tags exactly ``names``; return (added, removed) names."""
    wanted = {normalise(n) for n in names if n.strip()}
    current = {t.name for t in ticket.tags}
    added, removed = sorted(wanted - current), sorted(current - wanted)
    ticket.tags = [t for t in ticket.tags if t.name in wanted] + [get_or_create(n) for n in added]
    return added, removed


# -- admin: the vocabulary across tickets ---------------------------------------------------


@dataclass(frozen=True)
class TagRow:
    tag: Tag
    tickets: int


def list_tags(search: str = "") -> list[TagRow]:
    """Every tag (matching ``search``) with how many tickets carry it, by name."""
    count = func.count(ticket_tags.c.ticket_id)
    stmt = (
        select(Tag, count)
        .outerjoin(ticket_tags, ticket_tags.c.tag_id == Tag.id)
        .group_by(Tag.id)
        .order_by(Tag.name)
    )
    words = search.strip().lower()[:60]
    if words:
        stmt = stmt.where(Tag.name.contains(words, autoescape=True))
    return [TagRow(tag, n) for tag, n in db.session.execute(stmt).all()]


def _tickets_of(tag: Tag) -> list[int]:
    return list(
        db.session.scalars(select(ticket_tags.c.ticket_id).where(ticket_tags.c.tag_id == tag.id))
    )


def _bump(ticket_ids: list[int]) -> None:
    if ticket_ids:
        db.session.execute(
            update(Ticket)
            .where(Ticket.id.in_(ticket_ids))
            .values(version=Ticket.version + 1)
            .execution_options(synchronize_session="fetch")
        )


def _usable(name: str) -> str:
    try:
        return normalise(name)
    except InvalidTicketChange:
        raise InvalidTicketChange(_("A tag has 1 to 60 characters.")) from None


def rename_tag(actor: Actor, tag: Tag, name: str) -> bool:
    new = _usable(name)
    if new == tag.name:
        return False
    if db.session.scalar(select(Tag.id).where(Tag.name == new)) is not None:
        raise Conflict(_("There is a tag %(name)s already. Merge the two instead.", name=new))
    before = tag.name
    tag.name = new
    tickets = _tickets_of(tag)
    _bump(tickets)
    audit.record(actor, "tag.rename", "tag", tag.id, before=before, after=new, tickets=tickets)
    return True


def merge_tags(actor: Actor, source: Tag, target: Tag) -> int:
    """Every ticket tagged ``source`` is tagged ``target``; ``source`` is deleted."""
    if source.id == target.id:
        raise InvalidTicketChange(_("Choose another tag to merge into."))
    tickets = _tickets_of(source)
    has_target = set(_tickets_of(target))
    missing = [t for t in tickets if t not in has_target]
    if missing:
        db.session.execute(
            insert(ticket_tags), [{"ticket_id": t, "tag_id": target.id} for t in missing]
        )
    db.session.execute(delete(ticket_tags).where(ticket_tags.c.tag_id == source.id))
    _bump(tickets)
    audit.record(
        actor, "tag.merge", "tag", source.id, name=source.name, into=target.name, tickets=tickets
    )
    db.session.delete(source)
    db.session.flush()
    db.session.expire_all()
    return len(tickets)


def delete_tag(actor: Actor, tag: Tag) -> int:
    """Take the tag off every ticket and delete it; the count of tickets it was on."""
    tickets = _tickets_of(tag)
    db.session.execute(delete(ticket_tags).where(ticket_tags.c.tag_id == tag.id))
    _bump(tickets)
    audit.record(actor, "tag.delete", "tag", tag.id, name=tag.name, tickets=tickets)
    db.session.delete(tag)
    db.session.flush()
    db.session.expire_all()
    return len(tickets)
