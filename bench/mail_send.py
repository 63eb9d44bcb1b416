"""The relay's speed: queued replies sent by one RQ worker to a local SMTP server.

Run: ``.venv/bin/python bench/mail_send.py [--replies 2000] [--batch 200]``

A real app from ``create_app`` on a fresh SQLite file (``--postgres`` for a throw-away
PostgreSQL cluster), a private Redis and an aiosmtpd sink on loopback, all started with the
test suite's helpers (``tests/services.py``). ``--replies`` public replies are written through
``tickets.replies.answer`` (one transaction each, 10 replies per ticket, one customer
recipient each), which enqueues one send job per reply after each commit. Then one worker
(``vaultdesk worker --queue mail --burst``, forked per job as in production) works the
queue until it is empty. The timer runs from the worker's start to its exit.

Prints ``sent`` (messages the SMTP server received: must equal ``--replies``), ``jobs_run``
(send jobs the worker actually ran: the first one of a batch drains ``MAIL_BATCH`` rows
over one connection and removes their jobs), then ``msgs_per_s=...`` and
``peak_rss_mb=...`` (the largest resident size of the worker or any of its work horses).
On a shared machine wall time swings with the load; ``msgs_per_cpu_s`` (messages per CPU
second of the worker and its horses) and ``load_avg`` are printed to judge a figure by.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import resource
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
from app.accounts.people import create_user  # noqa: E402
from app.actor import Actor  # noqa: E402
from app.extensions import db  # noqa: E402
from app.mail.identities import save_identity  # noqa: E402
from app.models import Contact, OutboxMessage, Role  # noqa: E402
from app.models.tickets import Channel  # noqa: E402
from app.tickets import create_ticket  # noqa: E402
from app.tickets.replies import answer  # noqa: E402
from tests.services import PostgresServer, RedisServer, SmtpSink  # noqa: E402

TEXT = (
    "Hello,\n\nthank you for the logs. The VPN client 5.1 drops the tunnel when the laptop "
    "changes networks; version 5.2 fixes it. Please update and tell us whether it helps.\n\n"
    "Kind regards"
)


@contextlib.contextmanager
def database(args: argparse.Namespace, folder: Path) -> Iterator[str]:
    if args.postgres:
        with PostgresServer() as server:
            yield server.create_database()
    else:
        yield f"sqlite:///{folder / 'vaultdesk.db'}"


def fill(app: Flask, replies: int) -> None:
    """``replies`` public replies, each committed on its own (a send job each)."""
    with app.app_context():
        upgrade()
        agent = create_user(
            email="agent@desk.test",
            roles=[Role.AGENT],
            password="a long bench password",  # noqa: S106 - a throw-away bench desk
            actor=Actor.system(),
        )
        agent.name = "Ada Agent"
        identity = save_identity(
            Actor.system(), address="support@desk.test", name="Desk", signature="Desk\nMon-Fri"
        )
        db.session.commit()
        staff = Actor.staff(agent)
        ticket = None
        for n in range(replies):
            if n % 10 == 0:
                contact = Contact(name=f"Customer {n}", email=f"customer{n}@example.test")
                db.session.add(contact)
                ticket = create_ticket(
                    Channel.MAIL,
                    Actor.customer(name=contact.name, email=contact.email),
                    subject=f"VPN drops {n}",
                    body_text="It drops.",
                    contact=contact,
                )
            answer(ticket, staff, TEXT, internal=False, identity=identity)
            db.session.commit()
        db.engine.dispose()


def work(app: Flask) -> None:
    from app.jobs.worker import run_worker

    run_worker(app, ("mail",), burst=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--replies", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=200, help="MAIL_BATCH")
    parser.add_argument("--postgres", action="store_true")
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="vaultdesk-bench-mail-") as tmp,
        RedisServer() as redis,
        SmtpSink() as sink,
        database(args, Path(tmp)) as url,
    ):
        app = create_app(
            {
                "INSTANCE_PATH": tmp,
                "DATABASE_URL": url,
                "REDIS_URL": redis.url,
                "SECRET_KEY": "bench-secret-key",
                "SMTP_URL": f"smtp://127.0.0.1:{sink.port}",
                "MAIL_BATCH": args.batch,
            }
        )
        import logging

        logging.getLogger("rq").setLevel(logging.WARNING)
        started = time.perf_counter()
        fill(app, args.replies)
        print(f"queued {args.replies} replies in {time.perf_counter() - started:.1f} s")
        worker = multiprocessing.get_context("fork").Process(target=work, args=(app,))
        started = time.perf_counter()
        worker.start()
        worker.join()
        elapsed = time.perf_counter() - started
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        peak_kb = usage.ru_maxrss
        cpu = usage.ru_utime + usage.ru_stime
        with app.app_context():
            sent = db.session.scalar(select(func.count()).where(OutboxMessage.status == "sent"))
            db.engine.dispose()
        jobs_run = redis.client().zcard("rq:finished:mail")
        print(f"sent={len(sink.messages)} rows_sent={sent} jobs_run={jobs_run}")
        print(f"seconds={elapsed:.2f} worker_cpu_s={cpu:.2f} load_avg={os.getloadavg()[0]:.1f}")
        print(f"msgs_per_cpu_s={len(sink.messages) / cpu:.0f}")
        print(f"msgs_per_s={len(sink.messages) / elapsed:.0f}")
        print(f"peak_rss_mb={peak_kb / 1024:.0f}")


if __name__ == "__main__":
    main()
