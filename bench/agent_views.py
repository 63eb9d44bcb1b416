"""Agent views on a large desk: 100,000 tickets, 1,000,000 stream entries, SQLite.

Run: ``.venv/bin/python bench/agent_views.py [--tickets N] [--entries M] [--runs 30]``

Fills a fresh SQLite database in a temporary directory with bulk inserts (executemany,
``PRAGMA synchronous=OFF`` during the fill only), builds the search index in one pass, signs
in as an agent through the Flask test client and prints ``name median_ms=.. p95_ms=..`` for
the inbox, a filtered list, a text search and a ticket page with 200 entries. Needs Redis
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

from flask_migrate import upgrade  # noqa: E402
from sqlalchemy import insert, text  # noqa: E402

from app import create_app  # noqa: E402
from app.accounts.people import create_user  # noqa: E402
from app.actor import Actor  # noqa: E402
from app.extensions import db  # noqa: E402
from app.models.people import Role  # noqa: E402
from app.models.tickets import Priority, Status, StreamEntry, Ticket  # noqa: E402
from app.models.types import utcnow  # noqa: E402
from app.tickets import search  # noqa: E402

PASSWORD = "bench password long enough"  # noqa: S105
WORDS = (
    "printer vpn mail server invoice password login crash slow update backup network disk "
    "licence screen keyboard calendar export report upgrade certificate firewall"
).split()


def fill(n_tickets: int, n_entries: int, agent_ids: list[int], big_ticket_entries: int) -> None:
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
            ago = timedelta(minutes=n_tickets - i)
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
                    "body_text": " ".join(rng.choices(WORDS, k=12)),
                    "created_at": now - timedelta(seconds=n_entries - entry_id),
                }
            )
        conn.execute(insert(StreamEntry), rows)
        remaining -= len(rows)
    search.rebuild(conn)
    db.session.commit()
    conn = db.session.connection()
    conn.execute(text("PRAGMA synchronous=FULL"))
    conn.execute(text("ANALYZE"))
    db.session.commit()


def check(response, what: str) -> None:  # type: ignore[no-untyped-def]
    if response.status_code not in (200, 302):
        raise SystemExit(f"{what}: HTTP {response.status_code}")


def timed(client, name: str, url: str, runs: int) -> None:  # type: ignore[no-untyped-def]
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
    print(f"{name} median_ms={statistics.median(samples):.1f} p95_ms={p95:.1f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
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
            fill(args.tickets, args.entries, agent_ids, 200)
            big_number = db.session.get(Ticket, args.tickets // 2).number
        print(f"# filled in {time.perf_counter() - began:.0f} s", flush=True)
        client = app.test_client()
        response = client.post("/login", data={"email": "agent0@bench.test", "password": PASSWORD})
        check(response, "sign-in")
        someone = agent_ids[1]
        timed(client, "inbox", "/agent/", args.runs)
        timed(
            client,
            "filtered_list",
            f"/agent/list/all?status=open&priority=high&owner={someone}",
            args.runs,
        )
        timed(client, "search", "/agent/list/all?q=printer+firewall", args.runs)
        timed(client, "ticket_200_entries", f"/agent/tickets/{big_number}", args.runs)


if __name__ == "__main__":
    main()
