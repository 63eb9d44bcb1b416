"""Small builders for domain tests (inside an app context)."""

from __future__ import annotations

from app.accounts.people import create_user
from app.actor import Actor
from app.extensions import db
from app.models.people import Account, Contact, Role, User
from app.models.tickets import Channel, Ticket
from app.tickets import create_ticket

_n = iter(range(1, 1_000_000))


def staff_user(*roles: Role) -> User:
    n = next(_n)
    return create_user(
        email=f"staff{n}@vaultdesk.test",
        roles=list(roles or (Role.AGENT,)),
        password="a long test password",
        actor=Actor.system(),
    )


def contact(account_name: str = "Acme GmbH") -> Contact:
    n = next(_n)
    account = Account(name=account_name)
    person = Contact(name=f"Customer {n}", email=f"customer{n}@acme.test", account=account)
    db.session.add_all([account, person])
    db.session.flush()
    return person


def ticket(subject: str = "Printer on fire", **kwargs) -> Ticket:  # type: ignore[no-untyped-def]
    kwargs.setdefault("contact", contact())
    person = kwargs["contact"]
    actor = kwargs.pop("actor", None) or Actor.customer(name=person.name, email=person.email)
    return create_ticket(
        kwargs.pop("channel", Channel.MAIL),
        actor,
        subject=subject,
        body_text="It is on fire.",
        **kwargs,
    )
