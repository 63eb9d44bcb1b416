"""The autoresponse end to end: mail filed by mail-in, the job run by a real RQ worker,
the relay sending to a real aiosmtpd server; and every reason not to answer."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask_migrate import upgrade
from sqlalchemy import select, update

from app import create_app
from app.actor import Actor
from app.extensions import db
from app.jobs.mail import send_autoresponse
from app.mail.ingest import file_message
from app.models import Role
from app.models.inbound import InboundMail, Mailbox, MailOutcome, MailSource
from app.models.mail import OutboxMessage, SenderIdentity, SystemTemplate
from app.models.people import Contact, User
from app.models.tickets import EntryKind, StreamEntry, Ticket
from app.models.types import utcnow
from app.tickets import portal
from tests import factories
from tests.conftest import base_config, run_jobs
from tests.services import SmtpSink
from tests.test_mail_ingest import mail
from tests.test_mail_robots import dsn
from tests.test_relay import use_smtp

SUPPORT = "support@desk.test"
KONTAKT = "kontakt@desk.test"
ANN = "ann@customer.test"


@pytest.fixture
def desks(app: Flask) -> dict[str, int]:
    """Two mailboxes: support@ answers in English (the default identity), kontakt@ in German."""
    with app.app_context():
        en = SenderIdentity(address=SUPPORT, name="Desk Support", is_default=True,
                            signature="Desk Support team")  # fmt: skip
        de = SenderIdentity(address=KONTAKT, name="Desk Kontakt", language="de")
        boxes = [
            Mailbox(name="Support", address=SUPPORT, host="imap.test", username="s", identity=en),
            Mailbox(name="Kontakt", address=KONTAKT, host="imap.test", username="k", identity=de),
        ]
        db.session.add_all([en, de, *boxes])
        db.session.commit()
        return {"en": boxes[0].id, "de": boxes[1].id, "en_identity": en.id, "de_identity": de.id}


def file_in(app: Flask, raw: bytes, mailbox_id: int) -> str | None:
    with app.app_context():
        mailbox = db.session.get(Mailbox, mailbox_id)
        filed = file_message(raw, source=MailSource.PIPE, mailbox=mailbox)
        return filed.ticket_number


def notes(app: Flask, number: str) -> list[dict]:
    """The ticket's internal autoresponse entries: what agents read about it."""
    with app.app_context():
        ticket = db.session.scalar(select(Ticket).where(Ticket.number == number))
        rows = db.session.scalars(
            select(StreamEntry)
            .where(StreamEntry.ticket_id == ticket.id, StreamEntry.kind == EntryKind.SYSTEM.value)
            .order_by(StreamEntry.id)
        )
        return [
            {"text": e.body_text, "internal": e.visibility == "internal", **(e.data or {})}
            for e in rows
            if (e.data or {}).get("notice") == "autoresponse"
        ]


def autoresponses(app: Flask) -> list[OutboxMessage]:
    with app.app_context():
        rows = db.session.scalars(
            select(OutboxMessage).where(OutboxMessage.system_kind == "autoresponse")
        ).all()
        db.session.expunge_all()
        return list(rows)


def text_of(message: EmailMessage) -> str:
    return message.get_body(("plain",)).get_content()


def test_a_customer_mailing_in_gets_an_autoresponse_naming_ticket_portal_and_agent(
    app: Flask, desks: dict[str, int], smtp_sink: SmtpSink
) -> None:
    use_smtp(app, smtp_sink)
    raw = mail(f"Ann Example <{ANN}>", "Printer on fire", message_id="<m1@customer.test>")
    number = file_in(app, raw, desks["en"])
    assert number
    with app.app_context():  # dispatched before the worker gets to it
        agent = factories.staff_user(Role.AGENT)
        agent.name = "Ada Agent"
        agent_email = agent.email
        db.session.execute(
            update(Ticket).where(Ticket.number == number).values(assignee_id=agent.id)
        )
        db.session.commit()
    run_jobs(app)  # send_autoresponse, then the relay's send job it queued

    (received,) = smtp_sink.wait_for(1)
    assert list(received.rcpt_tos) == [ANN]
    message = received.message
    assert message["From"] == f"Desk Support <{SUPPORT}>"
    assert message["To"] == f"Ann Example <{ANN}>"
    assert message["Subject"] == f"[#{number}] We received your request: Printer on fire"
    assert message["Auto-Submitted"] == "auto-replied"
    assert message["In-Reply-To"] == "<m1@customer.test>"
    assert message["Content-Language"] == "en"
    text = text_of(message)
    assert text.startswith("Hello Ann Example,")
    assert f"We have opened ticket {number}" in text
    with app.app_context():
        from app.urls import public_url

        assert public_url("portal.ticket", number=number) in text
    assert "Ada Agent is looking after your request." in text
    assert text.rstrip().endswith("-- \nDesk Support team")
    html = message.get_body(("html",)).get_content()
    assert f"ticket {number}" in html and 'lang="en"' in html
    (note,) = notes(app, number)
    assert note["internal"] and note["outcome"] == "queued" and note["to"] == ANN
    assert f"Autoresponse queued to {ANN}." in note["text"]
    (row,) = autoresponses(app)
    assert row.status == "sent" and row.auto_submitted == "auto-replied"

    # A reply on the ticket is no new ticket: no second autoresponse (Ada is told, though).
    file_in(app, mail(ANN, f"Re: [#{number}] Printer on fire"), desks["en"])
    run_jobs(app)
    assert len(autoresponses(app)) == 1
    assert [list(m.rcpt_tos) for m in smtp_sink.wait_for(2)] == [[ANN], [agent_email]]


def test_german_mailbox_answers_in_german_without_an_agent_line(
    app: Flask, desks: dict[str, int], smtp_sink: SmtpSink
) -> None:
    use_smtp(app, smtp_sink)
    number = file_in(
        app, mail("Bernd <bernd@kunde.test>", "Drucker brennt", to=KONTAKT), desks["de"]
    )
    run_jobs(app)
    (received,) = smtp_sink.wait_for(1)
    message = received.message
    assert message["From"] == f"Desk Kontakt <{KONTAKT}>"
    assert message["Subject"] == f"[#{number}] Wir haben Ihre Anfrage erhalten: Drucker brennt"
    assert message["Content-Language"] == "de"
    text = text_of(message)
    assert text.startswith("Hallo Bernd,")
    assert f"das Ticket {number} eröffnet" in text
    assert "kümmert sich" not in text  # nobody is assigned yet
    assert "Wir haben dafür" in message.get_body(("html",)).get_content()


def test_a_portal_account_language_wins_over_the_mailbox_identity(
    app: Flask, desks: dict[str, int], smtp_sink: SmtpSink, make_user
) -> None:
    use_smtp(app, smtp_sink)
    german = make_user(Role.CUSTOMER, email="greta@kunde.test")
    with app.app_context():
        db.session.get(User, german.id).language = "de"
        db.session.commit()
    file_in(app, mail("greta@kunde.test", "VPN"), desks["en"])  # the English mailbox
    run_jobs(app)
    (received,) = smtp_sink.wait_for(1)
    assert received.message["From"] == f"Desk Support <{SUPPORT}>"
    assert received.message["Content-Language"] == "de"
    assert "Wir haben Ihre Anfrage erhalten" in received.message["Subject"]


def test_a_ticket_opened_in_the_portal_gets_an_autoresponse_too(
    app: Flask, desks: dict[str, int], smtp_sink: SmtpSink, make_user
) -> None:
    use_smtp(app, smtp_sink)
    customer = make_user(Role.CUSTOMER, email="pia@customer.test")
    with app.app_context():
        user = db.session.get(User, customer.id)
        ticket = portal.open_ticket(
            user, subject="Invoice wrong", description="Twice billed.", category=None,
            priority=None, files=[],
        )  # fmt: skip
        db.session.commit()
        number = ticket.number
    run_jobs(app)
    (received,) = smtp_sink.wait_for(1)
    assert list(received.rcpt_tos) == ["pia@customer.test"]
    assert received.message["From"] == f"Desk Support <{SUPPORT}>"  # the default identity
    assert received.message["In-Reply-To"] is None  # nothing to thread under
    assert f"[#{number}]" in received.message["Subject"]
    assert notes(app, number)[0]["outcome"] == "queued"


def test_one_autoresponse_per_sender_within_the_period(
    app: Flask, desks: dict[str, int], smtp_sink: SmtpSink
) -> None:
    use_smtp(app, smtp_sink)
    first = file_in(app, mail(ANN, "First problem"), desks["en"])
    second = file_in(app, mail(ANN, "Second problem"), desks["en"])
    other = file_in(app, mail("bob@customer.test", "Unrelated"), desks["en"])
    run_jobs(app)
    received = smtp_sink.wait_for(2)
    assert sorted(m.rcpt_tos[0] for m in received) == [ANN, "bob@customer.test"]
    assert notes(app, first)[0]["outcome"] == "queued"
    (refused,) = notes(app, second)
    assert refused["outcome"] == "period limit"
    assert "within the period already" in refused["text"]
    assert notes(app, other)[0]["outcome"] == "queued"

    # 25 hours later (the default period is 24) Ann is answered again.
    with app.app_context():
        db.session.execute(update(OutboxMessage).values(created_at=utcnow() - timedelta(hours=25)))
        db.session.commit()
    third = file_in(app, mail(ANN, "Third problem"), desks["en"])
    run_jobs(app)
    smtp_sink.wait_for(3)
    assert notes(app, third)[0]["outcome"] == "queued"

    # The period is configurable: with 48 hours the 25-hour-old one counts again.
    app.config["MAIL_AUTORESPONSE_PERIOD_HOURS"] = 48
    with app.app_context():
        db.session.execute(update(OutboxMessage).values(created_at=utcnow() - timedelta(hours=25)))
        db.session.commit()
    fourth = file_in(app, mail(ANN, "Fourth problem"), desks["en"])
    run_jobs(app)
    assert notes(app, fourth)[0]["outcome"] == "period limit"
    assert len(smtp_sink.messages) == 3


def auto_reply() -> bytes:
    return mail("ooo@customer.test", "Out of office", headers={"Auto-Submitted": "auto-replied"})


def list_mail() -> bytes:
    return mail(
        "news@lists.customer.test",
        "Weekly digest",
        headers={"List-Id": "<news.lists.customer.test>", "Precedence": "list"},
    )


ROBOT_MAIL = {
    "bounce": dsn,
    "auto_reply": auto_reply,
    "list": list_mail,
    "own": lambda: mail(f"Desk Kontakt <{KONTAKT}>", "Our own mail looping back"),
}


@pytest.mark.parametrize("kind", sorted(ROBOT_MAIL))
def test_robot_mail_gets_no_autoresponse(
    app: Flask, desks: dict[str, int], smtp_sink: SmtpSink, kind: str
) -> None:
    """Mail-in's side: robots open no ticket and queue nothing."""
    use_smtp(app, smtp_sink)
    with app.app_context():
        mailbox = db.session.get(Mailbox, desks["en"])
        filed = file_message(ROBOT_MAIL[kind](), source=MailSource.PIPE, mailbox=mailbox)
        assert filed.outcome is not MailOutcome.CREATED
        robot = db.session.get(InboundMail, filed.inbound_id).robot
        assert robot == kind
    run_jobs(app)
    assert autoresponses(app) == []
    assert smtp_sink.messages == []


@pytest.mark.parametrize("kind", sorted(ROBOT_MAIL))
def test_the_job_itself_never_answers_a_ticket_opened_by_robot_mail(
    app: Flask, desks: dict[str, int], smtp_sink: SmtpSink, kind: str
) -> None:
    """The job's own check: a ticket whose first message mail-in recorded as a robot's
    (however that ticket came about) gets no autoresponse, and the ticket says why."""
    use_smtp(app, smtp_sink)
    number = file_in(app, mail("someone@customer.test", "Looks human"), desks["en"])
    with app.app_context():
        ticket = db.session.scalar(select(Ticket).where(Ticket.number == number))
        db.session.execute(
            update(InboundMail).where(InboundMail.ticket_id == ticket.id).values(robot=kind)
        )
        db.session.commit()
    run_jobs(app)
    assert autoresponses(app) == []
    assert smtp_sink.messages == []
    (note,) = notes(app, number)
    assert note["outcome"] == "robot" and note["internal"]
    assert "automatic" in note["text"]


@pytest.mark.parametrize(
    ("sender", "outcome"),
    [
        ("noreply@shop.test", "server address"),
        ("MAILER-DAEMON@mx.customer.test", "robot"),
        ("postmaster@customer.test", "server address"),
    ],
)
def test_server_addresses_are_never_answered(
    app: Flask, desks: dict[str, int], smtp_sink: SmtpSink, sender: str, outcome: str
) -> None:
    use_smtp(app, smtp_sink)
    with app.app_context():
        mailbox = db.session.get(Mailbox, desks["en"])
        filed = file_message(mail(sender, "Your order 1234"), source=MailSource.PIPE,
                             mailbox=mailbox)  # fmt: skip
    run_jobs(app)
    assert autoresponses(app) == [] and smtp_sink.messages == []
    if filed.outcome is MailOutcome.CREATED:  # mail-in saw a person: the job refused
        assert notes(app, filed.ticket_number)[0]["outcome"] == outcome


def test_an_address_that_bounced_gets_no_autoresponse(
    app: Flask, desks: dict[str, int], smtp_sink: SmtpSink
) -> None:
    use_smtp(app, smtp_sink)
    with app.app_context():
        db.session.add(
            Contact(name="Ann", email=ANN, mail_bounced_at=utcnow(), mail_bounce_reason="5.1.1")
        )
        db.session.commit()
    number = file_in(app, mail(ANN, "Still there?"), desks["en"])
    run_jobs(app)
    assert autoresponses(app) == [] and smtp_sink.messages == []
    assert notes(app, number)[0]["outcome"] == "bounced"


def test_our_own_address_is_never_answered_even_when_mail_in_did_not_see_it(
    app: Flask, desks: dict[str, int], smtp_sink: SmtpSink
) -> None:
    """An identity added after the mail was filed: the job checks the address itself."""
    use_smtp(app, smtp_sink)
    number = file_in(app, mail("billing@desk.test", "Invoice run"), desks["en"])
    with app.app_context():
        db.session.add(SenderIdentity(address="billing@desk.test", name="Billing"))
        db.session.commit()
    run_jobs(app)
    assert autoresponses(app) == [] and smtp_sink.messages == []
    assert notes(app, number)[0]["outcome"] == "own address"


def test_a_broken_template_falls_back_to_the_default_and_the_mail_still_goes(
    app: Flask, desks: dict[str, int], smtp_sink: SmtpSink, tmp_path: Path
) -> None:
    """A template that slipped past the save check (edited in the database) with a sandbox
    escape: the default goes out instead, the failure is logged and noted."""
    use_smtp(app, smtp_sink)
    with app.app_context():
        db.session.add(
            SystemTemplate(
                identity_id=desks["en_identity"],
                kind="autoresponse",
                language="en",
                subject="Hi {{ ticket_number }}",
                body_text="{{ ''.__class__.__mro__[1].__subclasses__() }}",
            )
        )
        db.session.commit()
    # The worker is a forked process: its log lines reach a file handler it inherits.
    log_file = tmp_path / "worker.log"
    handler = logging.FileHandler(log_file)
    logger = logging.getLogger("app.mail.system_mail")
    logger.addHandler(handler)
    try:
        number = file_in(app, mail(ANN, "Printer"), desks["en"])
        run_jobs(app)
    finally:
        logger.removeHandler(handler)
        handler.close()
    (received,) = smtp_sink.wait_for(1)
    text = text_of(received.message)
    assert "<class" not in text and "subclasses" not in text
    assert text.startswith("Hello ")  # the shipped default
    assert received.message["Subject"].startswith(f"[#{number}] We received your request")
    assert "the default was used" in notes(app, number)[0]["text"]
    # Logged for the operator, with the template's key and Jinja's reason.
    logged = [line for line in log_file.read_text().splitlines() if "default was used" in line]
    assert len(logged) == 1
    assert "autoresponse/en" in logged[0] and "SecurityError" in logged[0]


def test_a_customised_template_is_used_and_keeps_the_ticket_number_in_the_subject(
    app: Flask, desks: dict[str, int], smtp_sink: SmtpSink
) -> None:
    from app.mail import system_mail

    use_smtp(app, smtp_sink)
    with app.app_context():
        identity = db.session.get(SenderIdentity, desks["en_identity"])
        system_mail.save_template(
            Actor.system(),
            identity,
            system_mail.Kind.AUTORESPONSE,
            "en",
            system_mail.Source(
                "Thanks, {{ customer_name }}",
                "Got it: {{ ticket_subject }}",
                "<p>Got it: <b>{{ ticket_subject }}</b></p>",
            ),
        )
        db.session.commit()
    number = file_in(app, mail(ANN, "Tom & <Jerry>"), desks["en"])
    run_jobs(app)
    (received,) = smtp_sink.wait_for(1)
    assert received.message["Subject"] == f"[#{number}] Thanks, ann"
    assert text_of(received.message).startswith("Got it: Tom & <Jerry>")
    html = received.message.get_body(("html",)).get_content()
    assert "<p>Got it: <b>Tom &amp; &lt;Jerry&gt;</b></p>" in html


@pytest.fixture
def pg_app(tmp_path: Path, redis_server: Any, postgres_database: str) -> Iterator[Flask]:
    redis_server.client().flushall()
    instance = tmp_path / "pg-instance"
    instance.mkdir()
    application = create_app(base_config(instance, redis_server.url, postgres_database))
    with application.app_context():
        upgrade()
    yield application
    with application.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.mark.postgres
def test_new_tickets_of_one_sender_answered_at_the_same_instant_give_one_autoresponse(
    pg_app: Flask,
) -> None:
    """Six workers decide for six new tickets of one sender at once (PostgreSQL, READ
    COMMITTED: each would see no autoresponse yet); the per-sender lock lets one answer."""
    with pg_app.app_context():
        db.session.add(SenderIdentity(address=SUPPORT, name="Desk Support", is_default=True))
        db.session.commit()
        ids = []
        for n in range(6):
            contact = Contact(name="Ann", email=ANN)
            ticket = factories.ticket(f"Problem {n}", contact=contact)
            db.session.flush()
            ids.append(ticket.id)
        db.session.commit()
    barrier = threading.Barrier(len(ids))
    outcomes: list[str] = []

    def decide(ticket_id: int) -> None:
        with pg_app.app_context():
            barrier.wait()
            outcomes.append(send_autoresponse(ticket_id))
            db.session.remove()

    threads = [threading.Thread(target=decide, args=(i,)) for i in ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(outcomes) == ["period limit"] * 5 + ["queued"]
    assert len(autoresponses(pg_app)) == 1


def reopen_notes(app: Flask, number: str) -> list[dict]:
    with app.app_context():
        ticket = db.session.scalar(select(Ticket).where(Ticket.number == number))
        return [
            {"text": e.body_text, **(e.data or {})}
            for e in db.session.scalars(
                select(StreamEntry).where(StreamEntry.ticket_id == ticket.id)
            )
            if (e.data or {}).get("notice") == "reopen_notice"
        ]


def solve(app: Flask, number: str, status: str = "resolved") -> None:
    with app.app_context():
        db.session.execute(
            update(Ticket)
            .where(Ticket.number == number)
            .values(status=status, resolved_at=utcnow(), closed_at=utcnow())
        )
        db.session.commit()


def test_a_reply_that_reopens_a_solved_ticket_gets_a_reopen_notice(
    app: Flask, desks: dict[str, int], smtp_sink: SmtpSink
) -> None:
    use_smtp(app, smtp_sink)
    number = file_in(app, mail(ANN, "Printer", to=KONTAKT), desks["de"])
    run_jobs(app)
    smtp_sink.wait_for(1)  # the autoresponse
    # A reply while the ticket is open reopens nothing: no notice.
    file_in(app, mail(ANN, f"Re: [#{number}] Printer", to=KONTAKT), desks["de"])
    run_jobs(app)
    assert reopen_notes(app, number) == []
    solve(app, number)
    file_in(
        app,
        mail(ANN, f"Re: [#{number}] Printer", "Geht wieder nicht", to=KONTAKT,
             message_id="<again@customer.test>"),
        desks["de"],
    )  # fmt: skip
    run_jobs(app)
    notice = [m for m in smtp_sink.wait_for(2) if "wieder geöffnet" in m.message["Subject"]]
    assert len(notice) == 1
    message = notice[0].message
    assert message["Subject"] == f"[#{number}] Ihre Anfrage wurde wieder geöffnet: Printer"
    assert message["From"] == f"Desk Kontakt <{KONTAKT}>"
    assert message["In-Reply-To"] == "<again@customer.test>"
    assert message["Auto-Submitted"] == "auto-replied"
    assert f"Ihre Nachricht hat das Ticket {number} wieder geöffnet" in text_of(message)
    (note,) = reopen_notes(app, number)
    assert note["outcome"] == "queued" and note["to"] == ANN

    # Reopened again the same day: the reopen notice has its own period, already used.
    solve(app, number, "closed")
    file_in(app, mail(ANN, f"Re: [#{number}] Printer", "Immer noch", to=KONTAKT), desks["de"])
    run_jobs(app)
    assert [n["outcome"] for n in reopen_notes(app, number)] == ["queued", "period limit"]
    assert len([m for m in smtp_sink.messages if "wieder" in m.message["Subject"]]) == 1


def test_a_portal_reply_on_a_closed_ticket_gets_a_reopen_notice(
    app: Flask, desks: dict[str, int], smtp_sink: SmtpSink, make_user
) -> None:
    use_smtp(app, smtp_sink)
    customer = make_user(Role.CUSTOMER, email="pia@customer.test")
    with app.app_context():
        user = db.session.get(User, customer.id)
        ticket = portal.open_ticket(
            user, subject="Invoice", description="Wrong.", category=None, priority=None,
            files=[],
        )  # fmt: skip
        db.session.commit()
        number = ticket.number
    solve(app, number, "closed")
    with app.app_context():
        user = db.session.get(User, customer.id)
        ticket = db.session.scalar(select(Ticket).where(Ticket.number == number))
        portal.reply(user, ticket, "Still wrong.", [])
        db.session.commit()
    run_jobs(app)
    subjects = sorted(m.message["Subject"] for m in smtp_sink.wait_for(2))
    assert subjects == [
        f"[#{number}] We received your request: Invoice",
        f"[#{number}] Your request was reopened: Invoice",
    ]
