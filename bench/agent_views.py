"""Agent views on a large desk: 100,000 tickets, 1,000,000 stream entries, SQLite.

Run: ``.venv/bin/python bench/agent_views.py [--tickets N] [--entries M] [--domain-tickets K]
[--runs 30]``

Fills a fresh SQLite database in a temporary directory in two parts. The history: all but
the newest ``--domain-tickets`` tickets and most entries, bulk-inserted (executemany,
``PRAGMA synchronous=OFF`` during this part only) and indexed for search in one pass. The
recent traffic: the newest tickets through the domain functions, one transaction each as
the app makes them: a mail opens the ticket (entry, recipients, subscribers, audit and search
rows), an agent takes it, answers, notes, the customer writes back, the status moves on and
read marks are kept, so the tables the app fills beside tickets and entries are not empty.

No ANALYZE: the database has only the statistics the app gathers itself (PRAGMA optimize when
a connection opens, hourly when it goes back to the pool, and before it closes; see
``app/__init__.py``). So the pages are measured twice: ``stats=none`` as on a new desk (on
SQLite before 3.46 the open-time run does nothing), then ``stats=optimize`` after the app's
hourly PRAGMA optimize has run on the pooled connection that served them.

Signs in as an agent through the Flask test client and prints ``name median_ms=.. p95_ms=..``
for the inbox, a filtered list, a text search and a ticket page with 200 entries. Needs Redis
like the app (``VAULTDESK_REDIS_URL``, default redis://localhost:6379/0) for the limiter.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flask import Flask  # noqa: E402
from flask_migrate import upgrade  # noqa: E402
from sqlalchemy import func, insert, select, text  # noqa: E402

import app as vaultdesk  # noqa: E402
from app import create_app  # noqa: E402
from app.accounts.people import create_user  # noqa: E402
from app.actor import Actor  # noqa: E402
from app.extensions import db  # noqa: E402
from app.models.people import Account, Contact, Role, User  # noqa: E402
from app.models.tickets import (  # noqa: E402
    Channel,
    EntryKind,
    Priority,
    Status,
    StreamEntry,
    Ticket,
)
from app.models.types import utcnow  # noqa: E402
from app.tickets import (  # noqa: E402
    add_customer_message,
    add_note,
    assign,
    change_status,
    create_ticket,
    search,
)
from app.tickets.inbox import mark_read  # noqa: E402
from app.tickets.stream import add_entry  # noqa: E402

PASSWORD = "bench password long enough"  # noqa: S105
WORDS = (
    "printer vpn mail server invoice password login crash slow update backup network disk "
    "licence screen keyboard calendar export report upgrade certificate firewall"
).split()


def words(rng: random.Random, k: int) -> str:
    return " ".join(rng.choices(WORDS, k=k))


def fill_history(
    n_tickets: int, n_entries: int, agent_ids: list[int], big_ticket_entries: int
) -> None:
    """The older tickets and most entries, bulk-inserted: no audit, recipient or read rows."""
    rng = random.Random(4)  # noqa: S311 - test data
    now = utcnow()
    statuses = [s.value for s in Status]
    priorities = [p.value for p in Priority]
    conn = db.session.connection()
    conn.execute(text("PRAGMA synchronous=OFF"))
    batch = 20_000
    for start in range(0, n_tickets, batch):
        rows = []
        for i in range(start, min(start + batch, n_tickets)):
            # Older than the tickets the domain makes afterwards, which are "now".
            ago = timedelta(minutes=n_tickets - i + 60)
            rows.append(
                {
                    "id": i + 1,
                    "number": f"T-{1_000_000 + i}",
                    "subject": " ".join(rng.sample(WORDS, 4)) + f" {i}",
                    "status": rng.choice(statuses),
                    "priority": rng.choice(priorities),
                    "type": "question",
                    "channel": "mail",
                    "submitter_name": f"Customer {i % 5000}",
                    "submitter_email": f"c{i % 5000}@example.org",
                    "assignee_id": rng.choice(agent_ids) if i % 5 else None,
                    "waiting_for_dispatch": i % 5 == 0,
                    "in_inbox": i % 10 == 0,
                    "last_customer_activity_at": now - ago,
                    "resolution_due_at": now - ago + timedelta(days=3),
                    "created_at": now - ago,
                    "updated_at": now - ago,
                    "version": 1,
                }
            )
        conn.execute(insert(Ticket), rows)
    # One ticket gets ``big_ticket_entries``; the rest are spread over the others.
    kinds = ["mail_in", "mail_out", "note", "status_change", "message"]
    entry_id = 0
    remaining = n_entries
    big = n_tickets // 2
    while remaining > 0:
        rows = []
        for _ in range(min(batch, remaining)):
            entry_id += 1
            ticket_id = big if entry_id <= big_ticket_entries else rng.randint(1, n_tickets)
            kind = kinds[entry_id % len(kinds)]
            rows.append(
                {
                    "ticket_id": ticket_id,
                    "kind": kind,
                    "visibility": "internal" if kind in ("note", "status_change") else "external",
                    "author_name": "Bench",
                    "body_text": words(rng, 12),
                    "created_at": now - timedelta(seconds=n_entries - entry_id + 3600),
                }
            )
        conn.execute(insert(StreamEntry), rows)
        remaining -= len(rows)
    search.rebuild(conn)  # the bulk writer's duty, as the search module says
    db.session.commit()
    db.session.connection().execute(text("PRAGMA synchronous=NORMAL"))  # what the app sets
    db.session.commit()


def fill_through_domain(n_tickets: int, agents: list[User]) -> None:
    """The newest tickets as the app makes them, one transaction each."""
    rng = random.Random(23)  # noqa: S311 - test data
    for n, agent in enumerate(agents):
        agent.receives_all_mail = n < 2
    accounts = [
        Account(name=f"Customer {i} AG", account_manager=agents[i % len(agents)])
        for i in range(200)
    ]
    contacts = [
        Contact(
            name=f"Person {i}",
            email=f"person{i}@customer{i % 200}.example",
            account=accounts[i % 200],
        )
        for i in range(1000)
    ]
    db.session.add_all([*accounts, *contacts])
    db.session.commit()
    agent_ids = [a.id for a in agents]
    contact_ids = [c.id for c in contacts]
    priorities = list(Priority)
    for i in range(n_tickets):
        contact = db.session.get(Contact, rng.choice(contact_ids))
        customer = Actor.customer(name=contact.name, email=contact.email)
        ticket = create_ticket(
            Channel.MAIL,
            customer,
            subject=" ".join(rng.sample(WORDS, 4)) + f" recent {i}",
            body_text=words(rng, 30),
            priority=priorities[i % len(priorities)],
            contact=contact,
        )
        db.session.commit()
        if i % 5:  # four in five are taken by an agent, who answers and notes
            agent = db.session.get(User, rng.choice(agent_ids))
            staff = Actor.staff(agent)
            assign(ticket, staff, assignee=agent)
            add_entry(ticket, EntryKind.MAIL_OUT, staff, body_text=words(rng, 20))
            if i % 3 == 0:
                add_note(ticket, staff, words(rng, 10))
            mark_read(ticket, agent)
            if i % 2:
                add_customer_message(ticket, customer, words(rng, 15), kind=EntryKind.MAIL_IN)
            target = (Status.PENDING, Status.RESOLVED, Status.CLOSED, None)[i % 4]
            if target is not None:
                change_status(ticket, target, staff)
            db.session.commit()
        db.session.remove()  # each piece of traffic in its own session, as requests are


def check(response, what: str) -> None:  # type: ignore[no-untyped-def]
    if response.status_code not in (200, 302):
        raise SystemExit(f"{what}: HTTP {response.status_code}")


def timed(client, name: str, url: str, runs: int, label: str) -> None:  # type: ignore[no-untyped-def]
    for _ in range(3):
        check(client.get(url), url)
    samples = []
    for _ in range(runs):
        began = time.perf_counter()
        response = client.get(url)
        samples.append((time.perf_counter() - began) * 1000)
        check(response, url)
    samples.sort()
    p95 = samples[min(len(samples) - 1, int(round(0.95 * len(samples))) - 1)]
    print(
        f"{name} stats={label} median_ms={statistics.median(samples):.1f} p95_ms={p95:.1f}",
        flush=True,
    )


def optimize_as_the_app_does_hourly(app: Flask) -> None:
    """Let the app's checkin hook find its hour over: the PRAGMA optimize it would run."""
    every = vaultdesk.OPTIMIZE_EVERY_SECONDS
    vaultdesk.OPTIMIZE_EVERY_SECONDS = 0.0
    try:
        with app.app_context():
            db.session.execute(select(func.count()).select_from(Ticket)).one()
            db.session.remove()
    finally:
        vaultdesk.OPTIMIZE_EVERY_SECONDS = every


def statistics_tables(app: Flask) -> str:
    with app.app_context():
        exists = "SELECT count(*) FROM sqlite_master WHERE name = 'sqlite_stat1'"
        if not db.session.scalar(text(exists)):
            return "none"
        tables = db.session.scalars(text("SELECT DISTINCT tbl FROM sqlite_stat1 ORDER BY 1"))
        return ",".join(tables) or "none"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument(
        "--domain-tickets", type=int, default=3000, help="the newest, made by the domain"
    )
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    recent = min(args.domain_tickets, args.tickets)
    with tempfile.TemporaryDirectory(prefix="vaultdesk-bench-") as tmp:
        app = create_app(
            {
                "INSTANCE_PATH": tmp,
                "DATABASE_URL": f"sqlite:///{Path(tmp) / 'bench.db'}",
                "REDIS_URL": os.environ.get("VAULTDESK_REDIS_URL", "redis://localhost:6379/0"),
                "SECRET_KEY": "bench-secret-key-not-for-production",
                "WTF_CSRF_ENABLED": False,
                "RATELIMIT_ENABLED": False,
            }
        )
        began = time.perf_counter()
        with app.app_context():
            upgrade()
            agents = [
                create_user(
                    email=f"agent{i}@bench.test",
                    roles=[Role.AGENT],
                    password=PASSWORD,
                    actor=Actor.system(),
                )
                for i in range(10)
            ]
            db.session.commit()
            agent_ids = [a.id for a in agents]
            # About four entries a ticket come from the domain (mail, answer, notes, changes).
            fill_history(args.tickets - recent, args.entries - 4 * recent, agent_ids, 200)
            print(f"# history bulk-inserted in {time.perf_counter() - began:.0f} s", flush=True)
            fill_through_domain(recent, agents)
            big_number = db.session.get(Ticket, (args.tickets - recent) // 2).number
            made = {
                name: db.session.scalar(text(f"SELECT count(*) FROM {name}"))  # noqa: S608
                for name in (
                    "ticket",
                    "stream_entry",
                    "audit_log",
                    "ticket_recipient",
                    "ticket_subscriber",
                    "ticket_read",
                )
            }
            db.session.remove()
        print(f"# filled in {time.perf_counter() - began:.0f} s: {made}", flush=True)
        client = app.test_client()
        response = client.post("/login", data={"email": "agent0@bench.test", "password": PASSWORD})
        check(response, "sign-in")
        someone = agent_ids[1]
        pages = [
            ("inbox", "/agent/"),
            ("filtered_list", f"/agent/list/all?status=open&priority=high&owner={someone}"),
            ("search", "/agent/list/all?q=printer+firewall"),
            ("ticket_200_entries", f"/agent/tickets/{big_number}"),
        ]
        print(f"# statistics: {statistics_tables(app)}", flush=True)
        for name, url in pages:
            timed(client, name, url, args.runs, "none")
        optimize_as_the_app_does_hourly(app)
        print(f"# statistics: {statistics_tables(app)}", flush=True)
        for name, url in pages:
            timed(client, name, url, args.runs, "optimize")


if __name__ == "__main__":
    main()
