"""Ticket creation through the domain, one transaction per ticket, as mail ingestion does it.

Run: ``.venv/bin/python bench/ticket_create.py [--tickets 2000] [--profile]``
PostgreSQL: ``--postgres`` starts a throw-away cluster with the test suite's helper (the
server binaries must be installed), or ``--database-url postgresql://...`` uses one you have.

A real app from ``create_app`` on a fresh SQLite file in a temporary directory, migrated with
``flask_migrate.upgrade``. The desk has 12 staff users (3 receive all mail, 1 of them
inactive), 50 accounts with an account manager and 500 contacts. Each ticket is opened by
``create_ticket`` on the mail channel, four in five from a known contact and one in five from
an unknown sender, and committed on its own, so every ticket pays for its number, first entry,
recipients, subscribers, audit row and search row, and its commit. Redis is not needed.

Prints ``create_ms`` (mean time inside ``create_ticket``), ``commit_ms`` (mean commit time),
``cpu_ms_per_ticket`` (this process's CPU time: steadier than wall time on a busy machine,
and on SQLite it includes the database's work) and, last, ``tickets_per_s=...`` for scripts
to parse. ``--profile`` also prints the
cProfile functions with the most cumulative time.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import pstats
import random
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flask import Flask  # noqa: E402
from flask_migrate import upgrade  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from app import create_app  # noqa: E402
from app.actor import Actor  # noqa: E402
from app.extensions import db  # noqa: E402
from app.models.people import Account, Contact, Role, User, UserRole  # noqa: E402
from app.models.tickets import Channel, StreamEntry, Ticket, TicketRecipient  # noqa: E402
from app.tickets import create_ticket  # noqa: E402

BODY = (
    "Hello,\n\nsince this morning the VPN drops every few minutes and the printer on the "
    "second floor no longer answers. We restarted both twice. Could you have a look?\n\n"
    "Kind regards\n"
)


@contextlib.contextmanager
def database(args: argparse.Namespace, folder: Path) -> Iterator[str]:
    """The URL to bench on: a SQLite file, the given URL or a throw-away PostgreSQL."""
    if args.database_url:
        yield args.database_url
    elif args.postgres:
        from tests.services import PostgresServer

        server = PostgresServer().start()
        try:
            yield server.create_database("bench")
        finally:
            server.stop()
    else:
        yield f"sqlite:///{folder / 'bench.db'}"


def populate(rng: random.Random) -> list[Contact]:
    """Staff, accounts with managers and contacts: what every new ticket looks at."""
    staff = []
    for i in range(12):
        user = User(
            email=f"agent{i}@desk.test",
            name=f"Agent {i}",
            receives_all_mail=i < 3,
            active=i != 2,  # an inactive colleague who once chose all mail must not get it
        )
        user.role_rows.append(UserRole(role=(Role.SUPERVISOR if i == 0 else Role.AGENT).value))
        staff.append(user)
    accounts = [
        Account(name=f"Customer {i} GmbH", domain=f"c{i}.example", account_manager=staff[i % 12])
        for i in range(50)
    ]
    contacts = [
        Contact(name=f"Person {i}", email=f"person{i}@c{i % 50}.example", account=accounts[i % 50])
        for i in range(500)
    ]
    db.session.add_all([*staff, *accounts, *contacts])
    db.session.commit()
    rng.shuffle(contacts)
    return contacts


def run(app: Flask, n: int, warmup: int, profile: bool) -> None:
    rng = random.Random(22)  # noqa: S311 - test data
    with app.app_context():
        upgrade()
        contacts = populate(rng)
        contact_ids = [c.id for c in contacts]
        db.session.remove()  # start like a request or a job: an empty session

        create_s = commit_s = 0.0
        profiler = cProfile.Profile() if profile else None
        began = cpu_began = 0.0
        for i in range(warmup + n):
            if i == warmup:
                began, cpu_began = time.perf_counter(), time.process_time()
                create_s = commit_s = 0.0
                if profiler is not None:
                    profiler.enable()
            t0 = time.perf_counter()
            if i % 5:
                contact = db.session.get(Contact, contact_ids[i % len(contact_ids)])
                actor = Actor.customer(None, name=contact.name, email=contact.email)
                ticket = create_ticket(
                    Channel.MAIL,
                    actor,
                    subject=f"VPN drops and printer {i}",
                    body_text=BODY,
                    contact=contact,
                )
            else:
                address = f"stranger{i}@unknown.example"
                actor = Actor.customer(None, name=f"Stranger {i}", email=address)
                ticket = create_ticket(
                    Channel.MAIL,
                    actor,
                    subject=f"Question about invoice {i}",
                    body_text=BODY,
                    submitter_name=f"Stranger {i}",
                    submitter_email=address,
                )
            t1 = time.perf_counter()
            db.session.commit()
            t2 = time.perf_counter()
            create_s += t1 - t0
            commit_s += t2 - t1
            del ticket
            # A web request or mail job ends its session; the next one starts empty.
            db.session.remove()
        elapsed = time.perf_counter() - began
        cpu = time.process_time() - cpu_began
        if profiler is not None:
            profiler.disable()

        made = db.session.scalar(select(func.count()).select_from(Ticket))
        entries = db.session.scalar(select(func.count()).select_from(StreamEntry))
        recipients = db.session.scalar(select(func.count()).select_from(TicketRecipient))
        if made != warmup + n or entries != made or recipients != made:
            raise SystemExit(f"unexpected rows: {made} tickets, {entries} entries")

    if profiler is not None:
        stats = pstats.Stats(profiler).sort_stats("cumulative")
        stats.print_stats(35)
    print(f"# {app.config['SQLALCHEMY_DATABASE_URI'].split(':')[0]}, {n} tickets")
    print(f"create_ms={1000 * create_s / n:.2f} commit_ms={1000 * commit_s / n:.2f}")
    print(f"cpu_ms_per_ticket={1000 * cpu / n:.2f}")
    print(f"tickets_per_s={n / elapsed:.0f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--profile", action="store_true", help="print a cProfile summary")
    parser.add_argument("--database-url", help="bench on this database instead of SQLite")
    parser.add_argument("--postgres", action="store_true", help="on a throw-away PostgreSQL")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="vaultdesk-bench-") as tmp:
        with database(args, Path(tmp)) as url:
            app = create_app(
                {
                    "INSTANCE_PATH": tmp,
                    "DATABASE_URL": url,
                    "SECRET_KEY": "bench-secret-key-not-for-production",
                    "RATELIMIT_ENABLED": False,
                }
            )
            try:
                run(app, args.tickets, args.warmup, args.profile)
            finally:
                with app.app_context():
                    db.engine.dispose()


if __name__ == "__main__":
    main()
