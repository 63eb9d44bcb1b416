"""What the compliance screens list: the audit log, the download audit, links for export,
and the tickets data-subject requests opened.

Filters are plain values (the views parse the URL into them), so a list on screen and its
CSV export take the same filters and give the same rows. Exports read in chunks of
``CHUNK`` rows (keyset on the id, newest first), so a CSV of a million audit rows streams
in constant memory instead of being built in one piece (the session's identity map holds
clean rows weakly, so rows already written out are let go).

Periods are whole days in the viewer's zone: "from 2 Dec to 2 Dec" is that one local day.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from flask_babel import gettext as _
from sqlalchemy import ColumnElement, Select, and_, or_, select, true
from sqlalchemy.orm import joinedload, selectinload

from app.errors import NotFound
from app.extensions import db
from app.files import queries as link_queries
from app.i18n import zone
from app.models.audit import AuditLog
from app.models.files import DownloadEvent, VaultFile, VaultLink
from app.models.people import Contact, User
from app.models.tickets import StreamEntry, Ticket
from app.pagination import Page, count_of, paginate

CHUNK = 500
MATCH_LIMIT = 500  # how many named objects an object filter may stand for


@dataclass(frozen=True)
class Period:
    """From the start of one local day to the end of another; either end may be open."""

    start: datetime | None = None
    end: datetime | None = None  # exclusive

    def condition(self, column: Any) -> ColumnElement[bool]:
        parts: list[ColumnElement[bool]] = []
        if self.start is not None:
            parts.append(column >= self.start)
        if self.end is not None:
            parts.append(column < self.end)
        return and_(true(), *parts)


def parse_day(value: str | None) -> date | None:
    """``YYYY-MM-DD`` (what ``<input type=date>`` sends) or None; anything else is None."""
    value = (value or "").strip()
    if len(value) != 10:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


def period(since: date | None, until: date | None, zone_name: str | None) -> Period:
    """The UTC bounds of whole local days ``since`` .. ``until`` in ``zone_name``."""
    tz = zone(zone_name)
    start = datetime.combine(since, time.min, tz) if since else None
    end = datetime.combine(until + timedelta(days=1), time.min, tz) if until else None
    return Period(start, end)


# -- the audit log --------------------------------------------------------------------------


@dataclass(frozen=True)
class AuditFilters:
    """Empty strings mean "no filter". ``action`` ending in "." is a group (``ticket.``)."""

    actor: str = ""
    kind: str = ""  # object type
    object: str = ""  # a name, number, address or id of the object
    action: str = ""
    period: Period = Period()


def _users_matching(text: str) -> Select[tuple[int]]:
    return (
        select(User.id)
        .where(
            or_(
                User.name.icontains(text, autoescape=True),
                User.email.icontains(text, autoescape=True),
            )
        )
        .limit(MATCH_LIMIT)
    )


def _object_condition(text: str) -> ColumnElement[bool]:
    """Rows about the object ``text`` names: a ticket number, a person, a file, an id."""
    text = text.strip()
    upper = text.upper()
    ticket_ids = select(Ticket.id).where(
        Ticket.number.endswith(f"-{upper}", autoescape=True)
        if upper.isdigit()
        else Ticket.number == upper
    )
    users = [str(i) for i in db.session.scalars(_users_matching(text))]
    contacts = [
        str(i)
        for i in db.session.scalars(
            select(Contact.id)
            .where(
                or_(
                    Contact.name.icontains(text, autoescape=True),
                    Contact.email.icontains(text, autoescape=True),
                )
            )
            .limit(MATCH_LIMIT)
        )
    ]
    files = list(
        db.session.scalars(
            select(VaultFile.public_id)
            .where(VaultFile.display_name.icontains(text, autoescape=True))
            .limit(MATCH_LIMIT)
        )
    )
    links = list(
        db.session.scalars(
            select(VaultLink.id)
            .join(VaultLink.file)
            .where(VaultFile.display_name.icontains(text, autoescape=True))
            .limit(MATCH_LIMIT)
        )
    )
    return or_(
        AuditLog.object_id == text,
        AuditLog.ticket_id.in_(ticket_ids),
        and_(AuditLog.object_type == "user", AuditLog.object_id.in_(users)),
        and_(AuditLog.object_type == "contact", AuditLog.object_id.in_(contacts)),
        and_(
            AuditLog.object_type == "contact", AuditLog.object_id.icontains(text, autoescape=True)
        ),
        and_(AuditLog.object_type == "file", AuditLog.object_id.in_(files)),
        and_(AuditLog.object_type == "link", AuditLog.object_id.in_(links)),
    )


def audit_statement(filters: AuditFilters) -> Select[tuple[AuditLog]]:
    stmt = select(AuditLog).where(filters.period.condition(AuditLog.at))
    if actor := filters.actor.strip():
        stmt = stmt.where(
            or_(
                AuditLog.actor_label.icontains(actor, autoescape=True),
                AuditLog.actor_id.in_(_users_matching(actor)),
            )
        )
    if filters.kind:
        stmt = stmt.where(AuditLog.object_type == filters.kind)
    if filters.object.strip():
        stmt = stmt.where(_object_condition(filters.object))
    if action := filters.action.strip():
        if action.endswith("."):
            stmt = stmt.where(AuditLog.action.startswith(action, autoescape=True))
        else:
            stmt = stmt.where(AuditLog.action == action)
    return stmt


def audit_page(filters: AuditFilters, page: int, per_page: int) -> Page[AuditLog]:
    """One page of the audit log, newest first."""
    return paginate(audit_statement(filters).order_by(AuditLog.id.desc()), page, per_page)


def audit_chunks(filters: AuditFilters) -> Iterator[list[AuditLog]]:
    """Every matching row, newest first, ``CHUNK`` at a time (for the CSV export)."""
    stmt = audit_statement(filters).order_by(AuditLog.id.desc()).limit(CHUNK)
    last: int | None = None
    while True:
        page_stmt = stmt if last is None else stmt.where(AuditLog.id < last)
        rows = list(db.session.scalars(page_stmt))
        if not rows:
            return
        yield rows
        last = rows[-1].id


def audit_actions() -> list[str]:
    """The actions that occur, for the filter's choices."""
    return list(db.session.scalars(select(AuditLog.action).distinct().order_by(AuditLog.action)))


def audit_object_kinds() -> list[str]:
    return list(
        db.session.scalars(select(AuditLog.object_type).distinct().order_by(AuditLog.object_type))
    )


# -- the download audit ------------------------------------------------------------------------


@dataclass(frozen=True)
class DownloadFilters:
    outcome: str = ""
    reason: str = ""
    who: str = ""  # a person's name or address (signed-in downloads, link recipients)
    file: str = ""  # part of a file name
    period: Period = Period()


def download_statement(filters: DownloadFilters) -> Select[tuple[DownloadEvent]]:
    stmt = select(DownloadEvent).where(filters.period.condition(DownloadEvent.at))
    if filters.outcome:
        stmt = stmt.where(DownloadEvent.outcome == filters.outcome)
    if filters.reason:
        stmt = stmt.where(DownloadEvent.reason == filters.reason)
    if who := filters.who.strip():
        recipients = select(VaultLink.id).where(
            VaultLink.recipient_email.icontains(who, autoescape=True)
        )
        stmt = stmt.where(
            or_(
                DownloadEvent.user_id.in_(_users_matching(who)),
                DownloadEvent.link_id.in_(recipients),
            )
        )
    if name := filters.file.strip():
        files = select(VaultFile.id).where(VaultFile.display_name.icontains(name, autoescape=True))
        stmt = stmt.where(DownloadEvent.file_id.in_(files))
    return stmt


def _with_event_data(stmt: Select[tuple[DownloadEvent]]) -> Select[tuple[DownloadEvent]]:
    return stmt.options(
        joinedload(DownloadEvent.link),
        joinedload(DownloadEvent.file),
        joinedload(DownloadEvent.user),
    )


def downloads_page(filters: DownloadFilters, page: int, per_page: int) -> Page[DownloadEvent]:
    stmt = download_statement(filters)
    ordered = _with_event_data(stmt).order_by(DownloadEvent.at.desc(), DownloadEvent.id.desc())
    return paginate(ordered, page, per_page, total=count_of(stmt))


def download_chunks(filters: DownloadFilters) -> Iterator[list[DownloadEvent]]:
    stmt = _with_event_data(download_statement(filters)).order_by(DownloadEvent.id.desc())
    last: int | None = None
    while True:
        page_stmt = stmt if last is None else stmt.where(DownloadEvent.id < last)
        rows = list(db.session.scalars(page_stmt.limit(CHUNK)).unique())
        if not rows:
            return
        yield rows
        last = rows[-1].id


# -- links -------------------------------------------------------------------------------------


def link_chunks(filters: link_queries.LinkFilters, now: datetime) -> Iterator[list[VaultLink]]:
    """The links list's rows (same filters and order), ``CHUNK`` at a time."""
    page = 1
    while True:
        result = link_queries.links_page(filters, now, page=page, per_page=CHUNK)
        if not result.rows or result.page != page:
            return
        yield result.rows
        if page >= result.pages:
            return
        page += 1


# -- data-subject requests ---------------------------------------------------------------------


def request_tickets(page: int, per_page: int) -> Page[Ticket]:
    """Tickets opened by data-subject requests, newest first."""
    stmt = (
        select(Ticket)
        .where(Ticket.data_subject_request.is_not(None))
        .options(joinedload(Ticket.contact), joinedload(Ticket.assignee))
        .order_by(Ticket.created_at.desc(), Ticket.id.desc())
    )
    return paginate(stmt, page, per_page)


def request_ticket(number: str) -> Ticket:
    """A data-subject request's ticket with its stream; any other ticket is "not found".

    Not found rather than forbidden: a compliance officer has no business knowing which
    other numbers exist, and the answer must not differ between "exists" and "does not".
    """
    ticket = db.session.scalar(
        select(Ticket)
        .where(Ticket.number == number.strip().upper(), Ticket.data_subject_request.is_not(None))
        .options(
            joinedload(Ticket.contact),
            joinedload(Ticket.assignee),
            selectinload(Ticket.entries).selectinload(StreamEntry.attachments),
        )
    )
    if ticket is None:
        raise NotFound(_("There is no data-subject request with this number."))
    return ticket
