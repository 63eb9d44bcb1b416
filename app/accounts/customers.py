"""Customers as agents see them: finding and creating contacts and accounts, and what the
contact and account pages show.

Agents open tickets for people who called or walked in, so they pick a contact from a
search or create one on the spot; creating never silently reuses a different person
(an address that is already a contact is refused with that contact's name, the agent then
picks them), while an account typed by name reuses the account of that exact name rather
than making a second "Acme GmbH". Both writes are audited with their actor.

The pages read the vault links and download audit through ``app.files.queries`` (the
compliance screens' queries), so an agent and a compliance officer see the same links.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from flask_babel import gettext as _
from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.orm import joinedload

from app import audit
from app.actor import Actor
from app.errors import Conflict, InvalidInput, NotFound
from app.extensions import db
from app.files import queries as file_queries
from app.mail.addresses import normalise_address
from app.models.files import DownloadEvent, VaultLink
from app.models.people import Account, Contact, User
from app.models.tickets import Ticket
from app.pagination import Page

SEARCH_LIMIT = 10
TICKETS_SHOWN = 50


def search_contacts(text: str, limit: int = SEARCH_LIMIT) -> list[Contact]:
    """Contacts whose name, address or account name contains ``text``, by name."""
    text = text.strip()
    if not text:
        return []
    accounts = select(Account.id).where(Account.name.icontains(text, autoescape=True))
    return list(
        db.session.scalars(
            select(Contact)
            .where(
                or_(
                    Contact.name.icontains(text, autoescape=True),
                    Contact.email.icontains(text, autoescape=True),
                    Contact.account_id.in_(accounts),
                )
            )
            .options(joinedload(Contact.account))
            .order_by(Contact.name, Contact.id)
            .limit(limit)
        )
    )


def search_accounts(text: str, limit: int = SEARCH_LIMIT) -> list[Account]:
    """Accounts whose name or mail domain contains ``text``, by name."""
    text = text.strip()
    if not text:
        return []
    return list(
        db.session.scalars(
            select(Account)
            .where(
                or_(
                    Account.name.icontains(text, autoescape=True),
                    Account.domain.icontains(text, autoescape=True),
                )
            )
            .order_by(Account.name, Account.id)
            .limit(limit)
        )
    )


def account_named(actor: Actor, name: str) -> Account:
    """The account of exactly this name (any case), or a new one (audited)."""
    name = " ".join(name.split())[:200]
    if not name:
        raise InvalidInput(_("Give the account a name."))
    found = db.session.scalar(
        select(Account).where(func.lower(Account.name) == name.lower()).order_by(Account.id)
    )
    if found is not None:
        return found
    account = Account(name=name)
    db.session.add(account)
    db.session.flush()
    audit.record(actor, "account.create", "account", account.id, name=name)
    return account


def create_contact(
    actor: Actor, *, name: str, email: str, phone: str = "", account: Account | None = None
) -> Contact:
    """A new contact an agent vouches for (``verified``), audited; a known address is refused."""
    address = normalise_address(email)
    name = " ".join(name.split())[:200]
    if not name:
        raise InvalidInput(_("Give the contact a name."))
    existing = db.session.scalar(
        select(Contact).where(func.lower(Contact.email) == address).order_by(Contact.id)
    )
    if existing is not None:
        raise Conflict(
            _(
                "%(email)s is already the contact %(name)s: choose them from the search.",
                email=address,
                name=existing.name,
            )
        )
    contact = Contact(
        name=name, email=address, phone=phone.strip()[:50] or None, account=account, verified=True
    )
    db.session.add(contact)
    db.session.flush()
    audit.record(
        actor,
        "contact.create",
        "contact",
        contact.id,
        email=address,
        account_id=account.id if account is not None else None,
    )
    return contact


def contact_by_id(contact_id: int) -> Contact:
    contact = db.session.get(Contact, contact_id, options=[joinedload(Contact.account)])
    if contact is None:
        raise NotFound(_("There is no such contact."))
    return contact


def account_by_id(account_id: int) -> Account:
    account = db.session.get(Account, account_id)
    if account is None:
        raise NotFound(_("There is no such account."))
    return account


@dataclass(frozen=True)
class PortalAccess:
    """What the contact can do in the portal: nothing yet, invited, or signing in."""

    user: User | None

    @property
    def has_login(self) -> bool:
        return self.user is not None

    @property
    def active(self) -> bool:
        return self.user is not None and self.user.active

    @property
    def has_password(self) -> bool:
        return self.user is not None and bool(self.user.password_hash)

    @property
    def last_sign_in(self) -> datetime | None:
        return self.user.last_login_at if self.user is not None else None

    @property
    def can_invite(self) -> bool:
        """The invite route accepts: no login yet, or one that never chose a password."""
        return self.user is None or (self.user.active and not self.user.password_hash)


@dataclass(frozen=True)
class TicketsOf:
    rows: list[Ticket]
    total: int
    open: int


def _tickets(condition: ColumnElement[bool]) -> TicketsOf:
    from app.tickets.listing import CLOSED

    rows = list(
        db.session.scalars(
            select(Ticket)
            .where(condition)
            .options(joinedload(Ticket.assignee).lazyload(User.role_rows))
            .order_by(Ticket.updated_at.desc(), Ticket.id.desc())
            .limit(TICKETS_SHOWN)
        )
    )
    total = db.session.scalar(select(func.count(Ticket.id)).where(condition)) or 0
    still_open = (
        db.session.scalar(
            select(func.count(Ticket.id)).where(condition, Ticket.status.not_in(CLOSED))
        )
        or 0
    )
    return TicketsOf(rows, total, still_open)


@dataclass(frozen=True)
class ContactPage:
    contact: Contact
    tickets: TicketsOf
    portal: PortalAccess
    links: Page[VaultLink]
    downloads: Page[DownloadEvent]


def contact_page(contact_id: int, *, links_page: int = 1, downloads_page: int = 1) -> ContactPage:
    """Everything the contact page shows: tickets, portal access, links and downloads."""
    contact = contact_by_id(contact_id)
    return ContactPage(
        contact=contact,
        tickets=_tickets(Ticket.contact_id == contact.id),
        portal=PortalAccess(contact.user),
        links=file_queries.links_of_contact(contact, page=links_page),
        downloads=file_queries.contact_events(contact, page=downloads_page),
    )


@dataclass(frozen=True)
class AccountPage:
    account: Account
    contacts: list[Contact]
    managers: list[Contact]  # the customer's own account managers (see every ticket)
    tickets: TicketsOf


def account_page(account_id: int) -> AccountPage:
    """The account with its contacts, its account managers (ours and theirs) and tickets."""
    account = account_by_id(account_id)
    contacts = list(
        db.session.scalars(
            select(Contact)
            .where(Contact.account_id == account.id)
            .options(joinedload(Contact.user).lazyload(User.role_rows))
            .order_by(Contact.name, Contact.id)
        )
    )
    return AccountPage(
        account=account,
        contacts=contacts,
        managers=[c for c in contacts if c.sees_account_tickets],
        tickets=_tickets(Ticket.account_id == account.id),
    )
