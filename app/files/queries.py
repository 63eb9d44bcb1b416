"""Read-side queries over vault links and the download audit, for the compliance screens.

The write side (issue, count, revoke) lives in ``app.files.vault_links``; these functions only
read. Link states are filtered with ``VaultLink.state``'s own SQL side, so filtering and
paging agree with what each row shows, and a link shows up under exactly one state.
Every list loads what its rows display in the same statement (joins and
``joinedload``), so a page costs a fixed number of queries whatever its length.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from flask_babel import gettext as _
from sqlalchemy import ColumnElement, Select, and_, false, func, or_, select, true
from sqlalchemy.orm import contains_eager, joinedload

from app.errors import NotFound
from app.extensions import db
from app.models.files import DownloadEvent, DownloadOutcome, VaultFile, VaultLink, VaultLinkState
from app.models.people import Contact, User
from app.models.tickets import Ticket
from app.pagination import Page, count_of, paginate

LINK_STATES: tuple[str, ...] = (*(state.value for state in VaultLinkState), "all")
VALID_STATES = frozenset(state.value for state in VaultLinkState)
OUTCOMES: tuple[str, ...] = tuple(outcome.value for outcome in DownloadOutcome)


@dataclass(frozen=True)
class LinkFilters:
    """What the links list can be narrowed by; empty strings mean "no filter"."""

    state: str = "all"
    ticket: str = ""
    customer: str = ""
    recipient: str = ""
    filename: str = ""


def state_condition(state: str, now: datetime) -> ColumnElement[bool]:
    """SQL for "this link is in ``state`` at ``now``" (``VaultLink.state``'s own rule)."""
    if state not in VALID_STATES:
        return true()
    return VaultLink.state(now) == state


def _ticket_condition(number: str) -> ColumnElement[bool]:
    """Exact number (``T-104233``); bare digits match whatever the prefix is."""
    number = number.strip().upper()
    if number.isdigit():
        return Ticket.number.endswith(f"-{number}", autoescape=True)
    return Ticket.number == number


def _filtered_links(filters: LinkFilters, now: datetime) -> Select[tuple[VaultLink]]:
    stmt = (
        select(VaultLink)
        .join(VaultLink.file)
        .outerjoin(VaultLink.ticket)
        .outerjoin(VaultLink.contact)
        .where(state_condition(filters.state, now))
    )
    if filters.ticket.strip():
        stmt = stmt.where(_ticket_condition(filters.ticket))
    if customer := filters.customer.strip():
        stmt = stmt.where(
            or_(
                Contact.name.icontains(customer, autoescape=True),
                Contact.email.icontains(customer, autoescape=True),
            )
        )
    if recipient := filters.recipient.strip():
        stmt = stmt.where(VaultLink.recipient_email.icontains(recipient, autoescape=True))
    if filename := filters.filename.strip():
        stmt = stmt.where(VaultFile.display_name.icontains(filename, autoescape=True))
    return stmt


def _with_row_data(stmt: Select[tuple[VaultLink]]) -> Select[tuple[VaultLink]]:
    """Everything a link row shows, loaded with the row (no query per row).

    The people are only named; their roles (``selectin`` by default) are not fetched.
    """
    return stmt.options(
        contains_eager(VaultLink.file),
        contains_eager(VaultLink.ticket),
        contains_eager(VaultLink.contact),
        joinedload(VaultLink.issued_by).lazyload(User.role_rows),
        joinedload(VaultLink.revoked_by).lazyload(User.role_rows),
    )


def links_page(
    filters: LinkFilters, now: datetime, *, page: int = 1, per_page: int = 50
) -> Page[VaultLink]:
    """Links matching ``filters``, newest first: two queries whatever the page size."""
    stmt = _filtered_links(filters, now)
    ordered = _with_row_data(stmt).order_by(VaultLink.created_at.desc(), VaultLink.id)
    return paginate(ordered, page, per_page, total=count_of(stmt))


def link_row(link_id: str) -> VaultLink:
    """One link with what its row and detail page show; ``NotFound`` when there is none."""
    link = db.session.scalar(
        _with_row_data(
            select(VaultLink)
            .join(VaultLink.file)
            .outerjoin(VaultLink.ticket)
            .outerjoin(VaultLink.contact)
            .where(VaultLink.id == link_id)
        )
    )
    if link is None:
        raise NotFound(_("There is no such link."))
    return link


def links_of_file(file: VaultFile) -> list[VaultLink]:
    """Every link made for ``file``, newest first, loaded for link rows."""
    stmt = (
        select(VaultLink)
        .join(VaultLink.file)
        .outerjoin(VaultLink.ticket)
        .outerjoin(VaultLink.contact)
        .where(VaultLink.file_id == file.id)
        .order_by(VaultLink.created_at.desc(), VaultLink.id)
    )
    return list(db.session.scalars(_with_row_data(stmt)).all())


def file_by_public_id(public_id: str) -> VaultFile:
    """The file a URL names; erased files stay visible here, their audit outlives them."""
    file = db.session.scalar(
        select(VaultFile)
        .where(VaultFile.public_id == public_id)
        .options(joinedload(VaultFile.ticket), joinedload(VaultFile.uploaded_by))
    )
    if file is None:
        raise NotFound(_("There is no such file."))
    return file


def _events(condition: ColumnElement[bool]) -> Select[tuple[DownloadEvent]]:
    return select(DownloadEvent).where(condition)


def _events_page(
    stmt: Select[tuple[DownloadEvent]], page: int, per_page: int
) -> Page[DownloadEvent]:
    ordered = stmt.options(
        joinedload(DownloadEvent.link),
        joinedload(DownloadEvent.file),
        joinedload(DownloadEvent.user),
    ).order_by(DownloadEvent.at.desc(), DownloadEvent.id.desc())
    return paginate(ordered, page, per_page, total=count_of(stmt))


def link_events(link: VaultLink, *, page: int = 1, per_page: int = 100) -> Page[DownloadEvent]:
    """The download audit of one link, newest first."""
    return _events_page(_events(DownloadEvent.link_id == link.id), page, per_page)


def file_events(file: VaultFile, *, page: int = 1, per_page: int = 100) -> Page[DownloadEvent]:
    """Every attempt on one file: through any of its links and by staff (``user_id`` set).

    Link events normally carry the file id too; matching the file's links as well keeps
    an event whose file id was lost still attached to the file it was about.
    """
    of_links = select(VaultLink.id).where(VaultLink.file_id == file.id)
    condition = or_(DownloadEvent.file_id == file.id, DownloadEvent.link_id.in_(of_links))
    return _events_page(_events(condition), page, per_page)


def download_events(
    *, outcome: str = "", reason: str = "", page: int = 1, per_page: int = 100
) -> Page[DownloadEvent]:
    """The global download audit, newest first, by outcome and refusal reason."""
    condition: ColumnElement[bool] = true()
    if outcome:
        condition = and_(condition, DownloadEvent.outcome == outcome)
    if reason:
        condition = and_(condition, DownloadEvent.reason == reason)
    return _events_page(_events(condition), page, per_page)


def download_reasons() -> list[str]:
    """The refusal reasons that occur in the audit, for the filter's choices."""
    return list(
        db.session.scalars(
            select(DownloadEvent.reason)
            .where(DownloadEvent.reason.is_not(None))
            .distinct()
            .order_by(DownloadEvent.reason)
        )
    )


def _customer_links() -> ColumnElement[bool]:
    """Links ``revoke_customer_links`` takes for a contact: by contact or by address.

    Correlated to the enclosing query's ``Contact``.
    """
    return or_(
        VaultLink.contact_id == Contact.id,
        VaultLink.recipient_email == func.lower(Contact.email),
    )


def _active_count(now: datetime, condition: ColumnElement[bool]) -> Select[tuple[int]]:
    return (
        select(func.count(VaultLink.id))
        .join(VaultLink.file)
        .where(state_condition(VaultLinkState.ACTIVE, now), condition)
    )


def customers_page(
    search: str, now: datetime, *, page: int = 1, per_page: int = 50
) -> Page[tuple[Contact, int]]:
    """Contacts matching ``search`` (name or email) with their active link counts.

    Contacts with active links come first: they are the ones an officer can act on.
    """
    active = _active_count(now, _customer_links()).scalar_subquery().label("active_links")
    condition: ColumnElement[bool] = true()
    if search := search.strip():
        condition = or_(
            Contact.name.icontains(search, autoescape=True),
            Contact.email.icontains(search, autoescape=True),
        )
    total = db.session.scalar(select(func.count(Contact.id)).where(condition)) or 0
    stmt = (
        select(Contact, active)
        .options(joinedload(Contact.account))
        .where(condition)
        .order_by(active.desc(), Contact.name, Contact.id)
    )
    found = paginate(stmt, page, per_page, scalars=False, total=total)
    return Page(
        [(contact, int(count)) for contact, count in found.rows], total, found.page, per_page
    )


def contact_by_id(contact_id: int) -> Contact:
    contact = db.session.get(Contact, contact_id)
    if contact is None:
        raise NotFound(_("There is no such customer."))
    return contact


def active_link_count(now: datetime, *, contact: Contact | None = None, email: str = "") -> int:
    """Active links of a contact (by contact or address) or of a bare address."""
    condition: ColumnElement[bool] = false()
    if contact is not None:
        condition = or_(
            VaultLink.contact_id == contact.id,
            VaultLink.recipient_email == contact.email.lower(),
        )
    if email.strip():
        condition = or_(condition, VaultLink.recipient_email == email.strip().lower())
    return db.session.scalar(_active_count(now, condition)) or 0


def links_of_contact(contact: Contact, *, page: int = 1, per_page: int = 50) -> Page[VaultLink]:
    """Links issued to a contact (by contact or by address), newest first: the same links
    ``revoke_customer_links`` would take (for the agent's customer page)."""
    condition = or_(
        VaultLink.contact_id == contact.id, VaultLink.recipient_email == contact.email.lower()
    )
    stmt = (
        select(VaultLink)
        .join(VaultLink.file)
        .outerjoin(VaultLink.ticket)
        .outerjoin(VaultLink.contact)
        .where(condition)
    )
    ordered = _with_row_data(stmt).order_by(VaultLink.created_at.desc(), VaultLink.id)
    return paginate(ordered, page, per_page, total=count_of(stmt))


def contact_events(contact: Contact, *, page: int = 1, per_page: int = 50) -> Page[DownloadEvent]:
    """Download attempts through the contact's links and by their portal login, newest first."""
    links = select(VaultLink.id).where(
        or_(VaultLink.contact_id == contact.id, VaultLink.recipient_email == contact.email.lower())
    )
    condition = DownloadEvent.link_id.in_(links)
    if contact.user_id is not None:
        condition = or_(condition, DownloadEvent.user_id == contact.user_id)
    return _events_page(_events(condition), page, per_page)
