"""Demo data: a believable European company and its customers, made through the domain.

Tickets are created, assigned, answered and moved through the status machine by the same
functions the app uses, so the demo exercises real rules and its audit log is real too.
Passwords are random per run (or ``DEMO_PASSWORD``) and written to a 0600 file.
"""

from __future__ import annotations

import os
import random
import secrets
from datetime import datetime, timedelta
from pathlib import Path

from flask import current_app

from app.accounts.people import create_user
from app.actor import Actor
from app.extensions import db
from app.mail.identities import add_template, save_identity
from app.models.people import Account, Contact, Lead, Role, Team, User
from app.models.sla import SlaPolicy
from app.models.tickets import Category, Channel, EntryKind, Priority, Status, Ticket, TicketType
from app.models.types import utcnow
from app.sla.targets import recompute_due
from app.tickets import add_customer_message, add_note, assign, change_status, create_ticket
from app.tickets.stream import add_entry
from app.urls import public_url

COMPANY_DOMAIN = "vaultdesk.example"

FIRST = [
    "Anna",
    "Lukas",
    "Sofia",
    "Jonas",
    "Marie",
    "Elias",
    "Emma",
    "Noah",
    "Lea",
    "Paul",
    "Clara",
    "Felix",
    "Ida",
    "Leon",
    "Mila",
    "Theo",
    "Nora",
    "Jan",
    "Lina",
    "Matteo",
    "Chiara",
    "Luca",
    "Amélie",
    "Hugo",
    "Inès",
    "Lars",
    "Freya",
    "Piet",
    "Zofia",
    "Tomás",
]
LAST = [
    "Müller",
    "Schmidt",
    "Schneider",
    "Fischer",
    "Weber",
    "Meyer",
    "Wagner",
    "Becker",
    "Hoffmann",
    "Koch",
    "Rossi",
    "Bianchi",
    "Dubois",
    "Laurent",
    "Jansen",
    "de Vries",
    "Nowak",
    "Kowalski",
    "Novák",
    "Svensson",
    "Nielsen",
    "García",
    "Silva",
    "O'Brien",
]
COMPANIES = [
    "Alpenblick Logistik GmbH",
    "Nordlicht Energie AG",
    "Rheintal Maschinenbau",
    "Bäckerei Sonnenkorn",
    "Hanse Kontor Versand",
    "Lumen Optik SARL",
    "Delft Data B.V.",
    "Vistula Software Sp. z o.o.",
    "Costa Verde Viagens",
    "Fjord Fisk AS",
    "Stadtwerke Ahrweiler",
    "Kanzlei Brandt & Partner",
    "Praxis Dr. Özdemir",
    "Moselwein Kellerei",
    "Atelier Blanc",
    "Tramonto Design S.r.l.",
    "Baltic Freight OÜ",
    "Edelweiss Hotels",
    "Grünfeld Bio Markt",
    "Helix Labor GmbH",
]
PROBLEMS = [
    (
        "Invoice {n} shows the wrong VAT rate",
        "Our invoice lists 19% VAT but we are a reverse-charge customer.",
    ),
    (
        "Cannot log in since this morning",
        "Every attempt ends with 'session expired'. Cleared cookies already.",
    ),
    ("Export to CSV cuts off umlauts", "Names like Müller come out as M?ller in the export."),
    ("Please add {name} to our account", "A new colleague starts Monday and needs access."),
    (
        "Delivery {n} arrived damaged",
        "Two of the boxes were crushed. Photos attached in the portal.",
    ),
    ("Question about the data processing agreement", "Our DPO asks where backups are stored."),
    ("Sync with the warehouse stopped", "No stock updates since yesterday 17:00."),
    ("Request: dark mode for the dashboard", "Our night shift would appreciate it."),
    ("Password reset mail never arrives", "Checked spam. Nothing there."),
    ("Printer labels misaligned after update", "The address is printed 5 mm too low."),
    ("Cancel order {n}", "We ordered twice by mistake."),
    ("API returns 502 intermittently", "Around 3% of calls since the weekend."),
]
REPLIES = [
    "Thank you for the details, we are looking into it.",
    "Could you send us the exact time it happened and a screenshot?",
    "We found the cause and deployed a fix. Can you confirm it works now?",
    "I have forwarded this to our logistics partner and will update you tomorrow.",
    "This is done. Let us know if anything else comes up.",
]
CUSTOMER_REPLIES = [
    "Thanks, here is the screenshot you asked for.",
    "Still happening, unfortunately.",
    "Works now, thank you!",
    "Any news on this?",
]
NOTES = [
    "Checked the logs: same error as last month.",
    "Customer is on the premium plan.",
    "Escalated to second level.",
    "Waiting for the carrier's answer.",
]
CATEGORIES = ["Billing", "Access", "Shipping", "Data protection", "Integrations", "Feature request"]


def credentials_file() -> Path:
    return Path(current_app.instance_path) / "demo-accounts.txt"


def sign_in_url(roles: list[Role]) -> str:
    """Where a demo user signs in, under the current ``BASE_URL`` (customers have their own
    door)."""
    return public_url("portal.login" if roles == [Role.CUSTOMER] else "auth.login")


def refresh_credentials() -> None:
    """Point the saved demo sign-ins at the current ``BASE_URL``.

    The file is written once, with the address of that first start; started again on
    another port (``VAULTDESK_BIND``) or behind a new ``BASE_URL``, its links would lead
    nowhere. The passwords cannot be recovered from the database, so only the address
    column is rewritten.
    """
    path = credentials_file()
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return
    rows = []
    for line in lines:
        fields = line.split("\t")
        if not line.startswith("#") and len(fields) == 4:
            roles = [Role(r) for r in fields[0].split("+")]
            fields[3] = sign_in_url(roles)
        rows.append("\t".join(fields))
    fd = os.open(path, os.O_WRONLY | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write("".join(row + "\n" for row in rows))


def _person(rng: random.Random) -> str:
    return f"{rng.choice(FIRST)} {rng.choice(LAST)}"


def _address(name: str, domain: str) -> str:
    local = name.lower().replace(" ", ".").replace("'", "")
    for a, b in (
        ("ä", "ae"),
        ("ö", "oe"),
        ("ü", "ue"),
        ("é", "e"),
        ("è", "e"),
        ("á", "a"),
        ("ó", "o"),
        ("ß", "ss"),
    ):
        local = local.replace(a, b)
    return f"{local}@{domain}"


def build_demo(*, seed: int = 2026, password: str | None = None) -> list[tuple[str, str, str, str]]:
    """Create everything and commit; return (role, email, password, sign-in URL) rows."""
    rng = random.Random(seed)
    made: list[tuple[str, str, str, str]] = []

    def user(
        name: str, roles: list[Role], team: Team | None = None, email: str | None = None
    ) -> User:
        secret = password or secrets.token_urlsafe(12)
        email = email or _address(name, COMPANY_DOMAIN)
        u = create_user(email=email, name=name, roles=roles, password=secret, team=team)
        made.append(("+".join(r.value for r in roles), email, secret, sign_in_url(roles)))
        return u

    teams = [
        Team(name="First Level", email=f"support@{COMPANY_DOMAIN}"),
        Team(name="Technical Support", email=f"tech@{COMPANY_DOMAIN}"),
    ]
    db.session.add_all(teams)
    agents: list[User] = []
    for team, names in zip(
        teams,
        (
            ["Katrin Vogel", "Mehmet Yilmaz", "Sara Lindqvist"],
            ["Jens Hartmann", "Aoife Byrne", "Pierre Martin"],
        ),
        strict=True,
    ):
        boss = user(names[0], [Role.SUPERVISOR, Role.AGENT], team)
        agents.append(boss)
        for name in names[1:]:
            member = user(name, [Role.AGENT], team)
            member.supervisor = boss
            agents.append(member)
    agents[1].receives_all_mail = True
    user("Dana Richter", [Role.COMPLIANCE])
    user("Ole Admin", [Role.ADMIN])

    system = Actor.system("demo data")
    support = save_identity(
        system,
        address=f"contact@{COMPANY_DOMAIN}",
        name="Vaultdesk Support",
        is_default=True,
        signature="Vaultdesk Support\nMon–Fri 8:00–18:00 CET",
    )
    add_template(
        system,
        support,
        "Thanks, looking into it",
        "Thank you for your message. We are looking into it and will get back to you.",
    )
    add_template(
        system,
        support,
        "Need more details",
        "Could you send us a screenshot and the exact time the problem happened?",
    )
    billing = save_identity(
        system,
        address=f"buchhaltung@{COMPANY_DOMAIN}",
        name="Vaultdesk Buchhaltung",
        language="de",
        signature="Vaultdesk Buchhaltung",
    )
    add_template(
        system,
        billing,
        "Rechnung korrigiert",
        "Vielen Dank für Ihren Hinweis. Wir haben die Rechnung korrigiert.",
    )

    categories = [Category(name=c) for c in CATEGORIES]
    db.session.add_all(categories)
    accounts = []
    for i, company in enumerate(COMPANIES):
        domain = company.split()[0].lower().replace("ä", "ae").replace("ü", "ue") + ".example"
        accounts.append(
            Account(name=company, domain=domain, account_manager=agents[i % len(agents)])
        )
    db.session.add_all(accounts)

    contacts: list[Contact] = []
    for i in range(60):
        account = accounts[i % len(accounts)]
        name = _person(rng)
        email = _address(name, account.domain or "customer.example")
        if any(c.email == email for c in contacts):
            email = email.replace("@", f"{i}@")
        contact = Contact(name=name, email=email, account=account)
        db.session.add(contact)
        if i < 10:
            contact.user = user(name, [Role.CUSTOMER], email=email)
            contact.sees_account_tickets = i == 0
        contacts.append(contact)
    db.session.add_all(
        Lead(name=_person(rng), email=f"lead{i}@prospect.example", company=rng.choice(COMPANIES))
        for i in range(8)
    )
    db.session.flush()

    # SLA policies (app.sla.policies), so the lists show due times, time left and flags;
    # business minutes of the default calendar (Mon–Fri 09–17 Berlin).
    for priority, first, resolution, at_once in (
        (Priority.URGENT, 60, 8 * 60, True),
        (Priority.HIGH, 4 * 60, 3 * 8 * 60, False),
        (Priority.NORMAL, 8 * 60, 10 * 8 * 60, False),
        (Priority.LOW, 2 * 8 * 60, 20 * 8 * 60, False),
    ):
        db.session.add(
            SlaPolicy(
                name=f"{priority.label} tickets",
                priority=priority.value,
                first_response_minutes=first,
                resolution_minutes=resolution,
                notify_at_once=at_once,
                warn_percent=80,
            )
        )
    db.session.add(
        SlaPolicy(
            name=f"{accounts[0].name}: High",
            priority=Priority.HIGH.value,
            account=accounts[0],
            first_response_minutes=2 * 60,
            resolution_minutes=2 * 8 * 60,
            warn_percent=80,
        )
    )
    db.session.flush()

    statuses = list(Status)
    priorities = list(Priority)
    now = utcnow()
    for n in range(300):
        contact = contacts[rng.randrange(len(contacts))]
        title, body = rng.choice(PROBLEMS)
        channel = rng.choice([Channel.MAIL, Channel.MAIL, Channel.PORTAL, Channel.AGENT])
        customer = Actor.customer(contact.user, name=contact.name, email=contact.email)
        opener = customer if channel is not Channel.AGENT else Actor.staff(rng.choice(agents))
        ticket = create_ticket(
            channel,
            opener,
            subject=title.format(n=40000 + n, name=_person(rng)),
            body_text=body,
            priority=priorities[n % len(priorities)],
            ticket_type=rng.choice(list(TicketType)),
            category=rng.choice(categories + [None]),
            contact=contact,
            tags=rng.sample(
                ["vip", "billing", "bug", "hardware", "gdpr", "onboarding"], k=rng.randint(0, 2)
            ),
        )
        target = statuses[n % len(statuses)]
        if target is not Status.NEW:
            agent = rng.choice(agents)
            staff = Actor.staff(agent)
            assign(ticket, staff, assignee=agent)
            add_entry(ticket, EntryKind.MAIL_OUT, staff, body_text=rng.choice(REPLIES))
            if rng.random() < 0.6:
                add_note(ticket, staff, rng.choice(NOTES))
            if rng.random() < 0.5:
                add_customer_message(
                    ticket, customer, rng.choice(CUSTOMER_REPLIES), kind=EntryKind.MAIL_IN
                )
            if target is not Status.OPEN and ticket.status != target.value:
                change_status(
                    ticket,
                    target,
                    staff,
                    pending_until=now + timedelta(days=3) if target is Status.PENDING else None,
                )
        _backdate(ticket, now - timedelta(days=rng.uniform(0.5, 60)), now, rng)
        recompute_due(ticket, now)  # the due times of its pretend age
    db.session.commit()
    _write_credentials(made)
    return made


def _backdate(ticket: Ticket, start: datetime, now: datetime, rng: random.Random) -> None:
    """Spread a new ticket's events over its pretend lifetime, keeping their order."""
    when = start
    ticket.created_at = start
    for entry in ticket.entries:
        entry.created_at = when
        if ticket.in_inbox and entry.kind in (EntryKind.MAIL_IN, EntryKind.PORTAL_MESSAGE):
            ticket.last_customer_activity_at = when
        when = min(when + timedelta(minutes=rng.randint(5, 60 * 20)), now)
    ticket.updated_at = when
    answered = [e for e in ticket.entries if e.kind == EntryKind.MAIL_OUT]
    if answered:
        ticket.first_responded_at = answered[0].created_at


def _write_credentials(rows: list[tuple[str, str, str, str]]) -> None:
    path = credentials_file()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write("# Vaultdesk demo sign-ins (role, email, password, where)\n")
        for row in rows:
            handle.write("\t".join(row) + "\n")
