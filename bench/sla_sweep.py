"""SLA escalation sweep: does finding the breached tickets stay fast, whatever is not due?

Run: ``.venv/bin/python bench/sla_sweep.py [--tickets 100000] [--breached 0.02] [--scale 10]``

What it does: ``create_app`` on a fresh SQLite file in a temporary instance folder
(migrated with ``flask_migrate.upgrade``), a throw-away Redis (``tests.services.RedisServer``;
the mail jobs the delivery enqueues go to it and are not run). A supervisor, her supervisor
and twenty agents; then ``--tickets`` open tickets inserted with Core in one statement per
10,000 (not timed), first-response due dates spread over the next month, ``--breached`` of
them due in the past week (unanswered), resolution due two days after the first response.

Timed, as the periodic job runs it:

- ``sweep_ms``: one ``app.sla.escalation.sweep()`` plus its commit: the index ranges of
  what is due, the calendar of each recipient, and one escalation row per breached ticket
  inserted (insert-or-skip). This is where the notices are queued (the rows with their
  ``notify_at``); ``tickets_escalated`` must equal the breached count exactly.
- ``deliver_ms``: telling the notices due now (they are ``urgent`` or the supervisor is at
  work: the benchmark runs at a fixed Monday 10:00): per notice the claim, the in-app
  notification, the rendered mail into the outbox, the stream entry and the audit row,
  one transaction each. Not part of the sweep, and shown so its cost is known.

Then the second line: the first breached tickets are answered (they leave the partial
index), ``--scale - 1`` times as many not-due tickets are added (so ``--scale`` times the
not-due tickets in all) with a fresh set of breached ones, and the sweep is timed again:
``sweep_ms_scaled`` should stay close to ``sweep_ms``, because the sweep reads an index
range of what is due and never the rest. A ``load=`` line gives the machine's 1-minute
load average: on a shared machine compare figures from runs under the same load.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import time_machine  # noqa: E402
from flask_migrate import upgrade  # noqa: E402
from sqlalchemy import func, insert, select, update  # noqa: E402

from app import create_app  # noqa: E402
from app.accounts.people import create_user  # noqa: E402
from app.actor import Actor  # noqa: E402
from app.extensions import db  # noqa: E402
from app.jobs.sla import deliver_due  # noqa: E402
from app.models.mail import SenderIdentity  # noqa: E402
from app.models.people import Role, Team  # noqa: E402
from app.models.sla import Escalation  # noqa: E402
from app.models.tickets import Ticket  # noqa: E402
from app.sla import escalation  # noqa: E402

# Monday 30 November 2026, 10:00 in Berlin: everybody is at work.
NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
PRIORITIES = ("low", "normal", "normal", "high", "urgent")
CHUNK = 10_000


def staff() -> list[int]:
    team = Team(name="Bench team")
    db.session.add(team)
    db.session.add(SenderIdentity(address="support@bench.test", name="Support", is_default=True))
    boss = create_user(
        email="boss@bench.test", roles=[Role.SUPERVISOR], password="x" * 16, actor=Actor.system()
    )
    sam = create_user(
        email="sam@bench.test", roles=[Role.SUPERVISOR], password="x" * 16, actor=Actor.system()
    )
    sam.supervisor, sam.team = boss, team
    agents = []
    for n in range(20):
        agent = create_user(
            email=f"agent{n}@bench.test",
            roles=[Role.AGENT],
            password="x" * 16,
            actor=Actor.system(),
        )
        agent.supervisor, agent.team = sam, team
        agents.append(agent)
    db.session.commit()
    return [a.id for a in agents]


def insert_tickets(
    start: int, count: int, breached: int, agents: list[int], rng: random.Random
) -> None:
    """``count`` open tickets numbered from ``start``; the first ``breached`` are overdue."""
    month = 30 * 24 * 3600
    rows = []
    for i in range(start, start + count):
        if i - start < breached:
            due = NOW - timedelta(seconds=rng.randint(60, 7 * 24 * 3600))
        else:
            due = NOW + timedelta(seconds=rng.randint(3600, month))
        rows.append(
            {
                "number": f"B-{i}",
                "subject": f"Bench ticket {i}",
                "status": "open",
                "priority": rng.choice(PRIORITIES),
                "type": "question",
                "channel": "mail",
                "assignee_id": agents[i % len(agents)],
                "waiting_for_dispatch": False,
                "in_inbox": False,
                "first_response_due_at": due,
                "resolution_due_at": max(due, NOW) + timedelta(days=2),
                "created_at": NOW - timedelta(days=1),
                "updated_at": NOW - timedelta(days=1),
                "version": 1,
            }
        )
        if len(rows) == CHUNK:
            db.session.execute(insert(Ticket), rows)
            rows = []
    if rows:
        db.session.execute(insert(Ticket), rows)
    db.session.commit()


def timed_sweep() -> tuple[float, escalation.SweepResult]:
    started = time.perf_counter()
    result = escalation.sweep()
    db.session.commit()
    return (time.perf_counter() - started) * 1000, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--breached", type=float, default=0.02)
    parser.add_argument("--scale", type=int, default=10)
    args = parser.parse_args()

    from tests.services import RedisServer

    rng = random.Random(12)
    breached = int(args.tickets * args.breached)
    redis = RedisServer().start()
    try:
        with tempfile.TemporaryDirectory(prefix="vaultdesk-sla-bench-") as tmp:
            instance = Path(tmp) / "instance"
            instance.mkdir()
            app = create_app(
                {
                    "INSTANCE_PATH": str(instance),
                    "DATABASE_URL": f"sqlite:///{instance / 'bench.db'}",
                    "REDIS_URL": redis.url,
                    "SECRET_KEY": "bench",
                }
            )
            with app.app_context(), time_machine.travel(NOW, tick=False):
                upgrade(revision="heads")
                agents = staff()
                insert_tickets(0, args.tickets, breached, agents, rng)
                db.session.execute(select(func.count(Ticket.id))).scalar()

                sweep_ms, result = timed_sweep()
                escalated = set(
                    db.session.scalars(select(Escalation.ticket_id).where(Escalation.level == 1))
                )
                overdue = set(
                    db.session.scalars(select(Ticket.id).where(Ticket.first_response_due_at <= NOW))
                )
                if escalated != overdue or result.tickets_escalated != breached:
                    raise SystemExit("the sweep must escalate exactly the breached tickets")
                started = time.perf_counter()
                told = deliver_due()
                deliver_ms = (time.perf_counter() - started) * 1000
                print(
                    f"tickets={args.tickets} breached={breached} sweep_ms={sweep_ms:.0f} "
                    f"tickets_escalated={result.tickets_escalated} "
                    f"warnings={result.created[0]} deliver_ms={deliver_ms:.0f} notices_told={told}"
                )

                # Answer the first wave, then ``scale`` times the not-due tickets in all.
                db.session.execute(
                    update(Ticket)
                    .where(Ticket.id.in_(overdue))
                    .values(first_responded_at=NOW)
                    .execution_options(synchronize_session=False)
                )
                db.session.commit()
                not_due = args.tickets - breached
                extra = not_due * (args.scale - 1)
                insert_tickets(args.tickets, extra + breached, breached, agents, rng)
                db.session.execute(text_analyze())
                sweep_scaled_ms, scaled = timed_sweep()
                if scaled.tickets_escalated != breached:
                    raise SystemExit("the scaled sweep must escalate exactly the new breached ones")
                print(
                    f"tickets={args.tickets + extra + breached} not_due={not_due + extra} "
                    f"breached={breached} sweep_ms_scaled={sweep_scaled_ms:.0f} "
                    f"tickets_escalated={scaled.tickets_escalated}"
                )
    finally:
        redis.stop()
    print(f"load={os.getloadavg()[0]:.2f}")


def text_analyze():  # type: ignore[no-untyped-def]
    """Statistics as a long-running desk has them (``PRAGMA optimize`` runs ANALYZE)."""
    from sqlalchemy import text

    return text("ANALYZE")


if __name__ == "__main__":
    main()
