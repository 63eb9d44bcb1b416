"""Finding tickets for views: by number, with what the page shows loaded up front."""

from __future__ import annotations

from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.orm import joinedload, selectinload

from app.errors import NotFound
from app.extensions import db
from app.models.files import VaultFile
from app.models.tickets import StreamEntry, Ticket


def ticket_by_number(number: str) -> Ticket:
    ticket = db.session.scalar(select(Ticket).where(Ticket.number == number.upper()))
    if ticket is None:
        raise NotFound(_("There is no ticket %(number)s.", number=number))
    return ticket


def ticket_page(number: str) -> Ticket:
    """The ticket with its stream, attachments and people, in a handful of queries."""
    ticket = db.session.scalar(
        select(Ticket)
        .where(Ticket.number == number.upper())
        .options(
            joinedload(Ticket.contact),
            joinedload(Ticket.account),
            joinedload(Ticket.assignee),
            joinedload(Ticket.team),
            selectinload(Ticket.tags),
            selectinload(Ticket.leads),
            selectinload(Ticket.entries).selectinload(StreamEntry.attachments),
            selectinload(Ticket.entries).joinedload(StreamEntry.author),
        )
    )
    if ticket is None:
        raise NotFound(_("There is no ticket %(number)s.", number=number))
    return ticket


def ticket_file(ticket: Ticket, public_id: str) -> VaultFile:
    """A file of this ticket; another ticket's file is as absent as a made-up one."""
    file = db.session.scalar(
        select(VaultFile).where(VaultFile.public_id == public_id, VaultFile.ticket_id == ticket.id)
    )
    if file is None:
        raise NotFound(_("There is no such file on this ticket."))
    return file
