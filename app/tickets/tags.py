"""Tags: free words, normalised so "VPN" and " vpn " are one tag."""

from __future__ import annotations

from sqlalchemy import select

from app.extensions import db
from app.models.tickets import Tag, Ticket
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
