"""Pending tickets and time: the follow-up reminder, the 7-day auto-close with the customer's
notice, a customer's reply cancelling both, reopening after the auto-close, and the sweep
run by two workers at once (SQLite and PostgreSQL), in simulated time (time-machine)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import time_machine
from flask import Flask
from sqlalchemy import func, select, text, update

from app import create_app
from app.actor import Actor
from app.extensions import db
from app.jobs.pending import sweep
from app.mail.identities import save_identity
from app.models import (
    AuditLog,
    Notification,
    OutboxMessage,
    Role,
    Status,
    StreamEntry,
    Ticket,
    TicketRead,
    User,
)
from app.models.tickets import Channel, EntryKind
from app.models.types import utcnow
from app.tickets import assign, pending
from app.tickets.customer_writes import customer_writes
from app.tickets.listing import ListQuery, list_tickets
from app.tickets.replies import answer
from tests import factories
from tests.conftest import base_config, csrf_from, run_jobs, sign_in
from tests.services import SmtpSink

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)  # a Monday


@pytest.fixture
def clock() -> Iterator[Any]:
    """Simulated time, frozen at T0; ``clock.move_to(T0 + ...)`` steps it."""
    with time_machine.travel(T0, tick=False) as traveller:
        yield traveller


@pytest.fixture
def desk(ctx: None, clock: Any) -> dict[str, Any]:
    ada = factories.staff_user(Role.AGENT)
    ada.name = "Ada"
    identity = save_identity(Actor.system(), address="contact@desk.test", name="Desk")
    db.session.commit()
    return {"ada": ada, "identity": identity}


def waiting(desk: dict[str, Any], until: datetime | None = None, subject: str = "VPN") -> Ticket:
    """A mailed-in ticket Ada answered with "reply sent, now waiting" (and a follow-up)."""
    ticket = factories.ticket(subject)
    assign(ticket, Actor.staff(desk["ada"]), assignee=desk["ada"])
    answer(
        ticket,
        Actor.staff(desk["ada"]),
        "Could you send us the log?",
        internal=False,
        identity=desk["identity"],
        set_pending=True,
        pending_until=until,
    )
    db.session.commit()
    return ticket


def notices(ticket: Ticket, notice: str) -> list[StreamEntry]:
    return [
        e
        for e in ticket.entries
        if e.kind == EntryKind.SYSTEM.value and (e.data or {}).get("notice") == notice
    ]


def system_authored(entry: StreamEntry) -> bool:
    return entry.author_id is None and entry.author_name == Actor.system().name


def by_system(row: AuditLog) -> bool:
    return row.actor_id is None and row.actor_label == Actor.system().label


def audits(action: str) -> list[AuditLog]:
    return list(db.session.scalars(select(AuditLog).where(AuditLog.action == action)))


def follow_ups(user: User) -> list[Notification]:
    return list(
        db.session.scalars(
            select(Notification).where(
                Notification.user_id == user.id, Notification.kind == "follow_up_due"
            )
        )
    )


def mails(kind: str | None = None) -> list[OutboxMessage]:
    query = select(OutboxMessage).order_by(OutboxMessage.id)
    if kind is not None:
        query = query.where(OutboxMessage.system_kind == kind)
    return list(db.session.scalars(query))


def unread_for(user: User, ticket: Ticket) -> bool:
    page = list_tickets(ListQuery(view="inbox"), user)
    return any(row.ticket.id == ticket.id and row.unread for row in page.rows)


# --- the follow-up date ------------------------------------------------------------------


def test_a_follow_up_date_reminds_the_manager_once_and_brings_the_ticket_back(
    desk: dict[str, Any], clock: Any
) -> None:
    ada = desk["ada"]
    ticket = waiting(desk, until=T0 + timedelta(days=2))
    assert ticket.status == Status.PENDING.value and ticket.pending_since == T0
    ticket.in_inbox = False
    db.session.commit()
    assert not unread_for(ada, ticket)

    clock.move_to(T0 + timedelta(days=1, hours=23))
    assert sweep().reminded == 0
    assert ticket.status == Status.PENDING.value

    clock.move_to(T0 + timedelta(days=2, minutes=1))
    swept = sweep()
    assert (swept.reminded, swept.closed) == (1, 0)
    db.session.refresh(ticket)
    assert ticket.status == Status.OPEN.value
    assert ticket.pending_until is None and ticket.pending_since is None
    assert ticket.in_inbox and unread_for(ada, ticket)
    (told,) = follow_ups(ada)
    assert told.ticket_id == ticket.id and told.params["follow_up"] == "2026-11-25 09:00"
    (mail,) = [m for m in mails() if ada.email.lower() in m.recipients.get("to", [])]
    assert mail.auto_submitted == "auto-generated" and ticket.number in mail.subject
    (entry,) = notices(ticket, "pending_reminder")
    assert entry.is_internal and system_authored(entry) and "Ada" in entry.body_text
    (row,) = audits("ticket.pending_reminder")
    assert by_system(row) and row.ticket_id == ticket.id

    clock.move_to(T0 + timedelta(days=20))  # later sweeps: nothing twice, and no auto-close
    assert (sweep().reminded, sweep().closed) == (0, 0)
    assert len(follow_ups(ada)) == 1 and len(audits("ticket.pending_reminder")) == 1
    db.session.refresh(ticket)
    assert ticket.status == Status.OPEN.value


def test_a_ticket_with_a_follow_up_date_is_not_auto_closed_before_it(
    desk: dict[str, Any], clock: Any
) -> None:
    ticket = waiting(desk, until=T0 + timedelta(days=14))
    clock.move_to(T0 + timedelta(days=10))
    assert (sweep().reminded, sweep().closed) == (0, 0)
    db.session.refresh(ticket)
    assert ticket.status == Status.PENDING.value
    clock.move_to(T0 + timedelta(days=14, seconds=1))
    assert sweep().reminded == 1


# --- the auto-close ----------------------------------------------------------------------


def test_pending_without_a_date_closes_after_7_calendar_days_and_tells_the_customer(
    app: Flask, desk: dict[str, Any], clock: Any
) -> None:
    ticket = waiting(desk)
    contact = ticket.contact.email
    clock.move_to(T0 + timedelta(days=6, hours=23, minutes=59))  # over a weekend: still waits
    assert sweep().closed == 0
    assert mails("auto_close") == []

    clock.move_to(T0 + timedelta(days=7, minutes=1))
    assert sweep().closed == 1
    db.session.refresh(ticket)
    assert ticket.status == Status.CLOSED.value and ticket.closed_at == utcnow()
    (notice,) = mails("auto_close")
    assert notice.recipients["to"] == [contact] and notice.ticket_id == ticket.id
    assert notice.subject == f"[#{ticket.number}] Your request was closed: VPN"
    assert "reply to this mail within 30 days" in notice.body_text
    assert "reopens it" in notice.body_text
    assert f"/portal/tickets/{ticket.number}" in notice.body_text
    assert notice.auto_submitted == "auto-generated"
    (entry,) = notices(ticket, "auto_close")
    assert system_authored(entry) and contact in entry.body_text
    assert notice.entry_id == entry.id
    (row,) = audits("ticket.auto_close")
    assert by_system(row) and row.details["days"] == 7
    assert sweep().closed == 0 and len(mails("auto_close")) == 1  # once


def test_the_days_are_a_setting_and_count_from_the_customers_last_message(
    app: Flask, desk: dict[str, Any], clock: Any
) -> None:
    app.config["PENDING_AUTO_CLOSE_DAYS"] = 3
    ticket = waiting(desk)
    # A customer word after the Pending change (e.g. an answer an agent set Pending again
    # after): the wait counts from it, the later of the two.
    ticket.last_customer_activity_at = T0 + timedelta(days=2)
    db.session.commit()
    clock.move_to(T0 + timedelta(days=4))
    assert sweep().closed == 0
    clock.move_to(T0 + timedelta(days=5, seconds=1))
    assert sweep().closed == 1


def test_the_german_customer_gets_the_german_notice(
    app: Flask, desk: dict[str, Any], clock: Any
) -> None:
    de = save_identity(Actor.system(), address="kontakt@desk.test", name="Desk DE", language="de")
    ticket = factories.ticket("Drucker")
    answer(
        ticket, Actor.staff(desk["ada"]), "Bitte das Protokoll senden.", internal=False,
        identity=de, set_pending=True,
    )  # fmt: skip
    db.session.commit()
    clock.move_to(T0 + timedelta(days=8))
    assert sweep().closed == 1
    (notice,) = mails("auto_close")
    assert notice.from_address == "kontakt@desk.test"  # the identity the agent answered from
    assert notice.subject == f"[#{ticket.number}] Ihre Anfrage wurde geschlossen: Drucker"
    assert "öffnet sie wieder" in notice.body_text and "Kundenportal" in notice.body_text


def test_a_customer_whose_mail_bounces_is_not_mailed_and_the_stream_says_why(
    desk: dict[str, Any], clock: Any
) -> None:
    ticket = waiting(desk)
    ticket.contact.mail_bounced_at = T0
    db.session.commit()
    clock.move_to(T0 + timedelta(days=8))
    assert sweep().closed == 1
    assert mails("auto_close") == []
    (entry,) = notices(ticket, "auto_close")
    assert "No notice was sent: mail to the customer address bounces" in entry.body_text


def test_a_reply_after_the_auto_close_reopens_the_ticket(desk: dict[str, Any], clock: Any) -> None:
    ticket = waiting(desk)
    clock.move_to(T0 + timedelta(days=8))
    sweep()
    clock.move_to(T0 + timedelta(days=20))  # within REOPEN_DAYS of the close
    writer = Actor.customer(name="Nora", email=ticket.contact.email)
    result = customer_writes(ticket, writer, Channel.MAIL, body_text="Still broken, sorry.")
    db.session.commit()
    assert not result.new_ticket and result.ticket is ticket
    assert ticket.status == Status.OPEN.value and ticket.closed_at is None
    assert ticket.in_inbox and unread_for(desk["ada"], ticket)


# --- a customer's reply cancels the timers -----------------------------------------------


@pytest.mark.parametrize("channel", [Channel.MAIL, Channel.PORTAL])
@pytest.mark.parametrize("follow_up", [True, False])
def test_a_customer_reply_cancels_the_reminder_and_the_auto_close(
    desk: dict[str, Any], clock: Any, channel: Channel, follow_up: bool
) -> None:
    ticket = waiting(desk, until=T0 + timedelta(days=2) if follow_up else None)
    clock.move_to(T0 + timedelta(days=1))
    writer = Actor.customer(name="Nora", email=ticket.contact.email)
    customer_writes(ticket, writer, channel, body_text="Here is the log.")
    db.session.commit()
    assert ticket.status == Status.OPEN.value
    assert ticket.pending_until is None and ticket.pending_since is None
    clock.move_to(T0 + timedelta(days=30))
    assert (sweep().reminded, sweep().closed) == (0, 0)
    assert follow_ups(desk["ada"]) == [] and mails("auto_close") == []
    db.session.refresh(ticket)
    assert ticket.status == Status.OPEN.value


def test_answering_again_while_pending_restarts_the_wait(desk: dict[str, Any], clock: Any) -> None:
    ticket = waiting(desk)
    clock.move_to(T0 + timedelta(days=5))
    answer(
        ticket, Actor.staff(desk["ada"]), "Any news?", internal=False,
        identity=desk["identity"], set_pending=True,
    )  # fmt: skip
    db.session.commit()
    clock.move_to(T0 + timedelta(days=8))
    assert sweep().closed == 0
    clock.move_to(T0 + timedelta(days=12, seconds=1))
    assert sweep().closed == 1


# --- the sweep: catching up, index ranges, several workers -------------------------------


def test_a_missed_run_catches_up_with_everything_overdue(
    desk: dict[str, Any], clock: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pending, "BATCH", 2)  # more due than one batch
    tickets = [waiting(desk, subject=f"Old {n}") for n in range(5)]
    reminded = [waiting(desk, until=T0 + timedelta(days=n + 1)) for n in range(3)]
    clock.move_to(T0 + timedelta(days=40))  # the worker was down for weeks
    swept = sweep()
    assert (swept.reminded, swept.closed) == (3, 5)
    for t in tickets:
        db.session.refresh(t)
    assert {t.status for t in tickets} == {Status.CLOSED.value}
    assert {t.status for t in reminded} == {Status.OPEN.value}


def _plan(statement: Any) -> str:
    sql = str(statement.compile(db.engine, compile_kwargs={"literal_binds": True}))
    return " | ".join(str(row[-1]) for row in db.session.execute(text(f"EXPLAIN QUERY PLAN {sql}")))


def test_the_sweep_reads_an_index_range_not_the_ticket_table(desk: dict[str, Any]) -> None:
    reminders = _plan(pending.reminders_query(T0))
    closes = _plan(pending.auto_closes_query(T0))
    assert "INDEX ix_ticket_pending_due (status=? AND pending_until<?)" in reminders, reminders
    assert "INDEX ix_ticket_pending_wait (status=? AND pending_since<?)" in closes, closes
    for plan in (reminders, closes):  # in index order: no sort of what was read
        assert "SCAN" not in plan and "TEMP B-TREE" not in plan, plan


def _due_desk(n: int) -> None:
    """``n`` tickets past their follow-up date and ``n`` silent for 8 days, committed."""
    ada = factories.staff_user(Role.AGENT)
    identity = save_identity(Actor.system(), address="contact@desk.test", name="Desk")
    for i in range(2 * n):
        ticket = factories.ticket(f"Waiting {i}")
        assign(ticket, Actor.staff(ada), assignee=ada)
        answer(
            ticket, Actor.staff(ada), "Please check.", internal=False, identity=identity,
            set_pending=True, pending_until=utcnow() + timedelta(hours=1) if i < n else None,
        )  # fmt: skip
    db.session.commit()
    long_ago = utcnow() - timedelta(days=8)
    db.session.execute(
        update(Ticket).where(Ticket.pending_until.is_not(None)).values(pending_until=long_ago)
    )
    db.session.execute(
        update(Ticket)
        .where(Ticket.pending_since.is_not(None))
        .values(pending_since=long_ago, last_customer_activity_at=long_ago)
    )
    db.session.commit()


def _two_sweeps_at_once(app: Flask) -> list[Any]:
    start = threading.Barrier(2)
    results: list[Any] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            with app.app_context():
                start.wait()
                results.append(sweep())
                db.session.remove()
        except BaseException as error:  # noqa: BLE001 - reported by the test
            errors.append(error)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors
    return results


def _each_once(n: int) -> None:
    assert db.session.scalar(select(func.count()).where(Notification.kind == "follow_up_due")) == n
    assert len(mails("auto_close")) == n
    assert len(audits("ticket.pending_reminder")) == n and len(audits("ticket.auto_close")) == n
    per_ticket = db.session.execute(
        select(OutboxMessage.ticket_id, func.count())
        .where(OutboxMessage.system_kind == "auto_close")
        .group_by(OutboxMessage.ticket_id)
    ).all()
    assert {count for _id, count in per_ticket} == {1}
    statuses = db.session.scalars(select(Ticket.status)).all()
    assert sorted(statuses) == sorted([Status.OPEN.value] * n + [Status.CLOSED.value] * n)


def test_two_sweeps_at_once_act_once_on_each_ticket(app: Flask) -> None:
    n = 15
    with app.app_context():
        _due_desk(n)
    results = _two_sweeps_at_once(app)
    assert sum(r.reminded for r in results) == n and sum(r.closed for r in results) == n
    with app.app_context():
        _each_once(n)


@pytest.mark.postgres
def test_two_sweeps_at_once_on_postgresql(
    tmp_path: Path, redis_server: Any, postgres_database: str
) -> None:
    from flask_migrate import upgrade

    redis_server.client().flushall()
    app = create_app(base_config(tmp_path, redis_server.url, postgres_database))
    n = 15
    with app.app_context():
        upgrade()
        _due_desk(n)
    results = _two_sweeps_at_once(app)
    assert sum(r.reminded for r in results) == n and sum(r.closed for r in results) == n
    with app.app_context():
        _each_once(n)
        db.session.remove()
        db.engine.dispose()


# --- end to end: the composer, the periodic job on a real worker, the mail at the server --


def test_the_composer_box_and_the_periodic_job_close_and_mail_the_customer(
    app: Flask, client: Any, make_user: Any, smtp_sink: SmtpSink
) -> None:
    from app.jobs import enqueue
    from app.jobs.pending import sweep_pending_tickets
    from app.jobs.schedule import PERIODIC

    assert sweep_pending_tickets in [p.func for p in PERIODIC]
    app.config["SMTP_URL"] = f"smtp://127.0.0.1:{smtp_sink.port}"
    agent = make_user(Role.AGENT)
    with app.app_context():
        identity = save_identity(Actor.system(), address="contact@desk.test", name="Desk")
        ticket = factories.ticket("Printer offline")
        number, contact, identity_id = ticket.number, ticket.contact.email, identity.id
        db.session.commit()
    sign_in(client, agent)
    page = client.get(f"/agent/tickets/{number}").get_data(as_text=True)
    response = client.post(
        f"/agent/tickets/{number}/answer",
        data={
            "csrf_token": csrf_from(page),
            "visibility": "public",
            "identity_id": str(identity_id),
            "body": "Is it plugged in?",
            "pending": "on",
        },
        content_type="multipart/form-data",
    )
    assert response.status_code == 303
    with app.app_context():
        ticket = db.session.scalar(select(Ticket).where(Ticket.number == number))
        assert ticket.status == Status.PENDING.value and ticket.pending_since is not None
        # Eight days pass (the worker runs in real time, so the clock is moved back instead).
        ticket.pending_since = utcnow() - timedelta(days=8)
        ticket.last_customer_activity_at = utcnow() - timedelta(days=9)
        db.session.commit()
    run_jobs(app)  # the agent's reply goes out first
    smtp_sink.wait_for(1)
    with app.app_context():
        enqueue(sweep_pending_tickets)
        enqueue(sweep_pending_tickets)  # a second scheduler's copy: nothing twice
    run_jobs(app)
    received = smtp_sink.wait_for(2)
    assert len(received) == 2
    notice = received[-1]
    assert notice.rcpt_tos == (contact,)
    assert notice.message["Subject"] == f"[#{number}] Your request was closed: Printer offline"
    assert notice.message["Auto-Submitted"] == "auto-generated"
    body = notice.message.get_body(("plain",)).get_content()
    assert f"/portal/tickets/{number}" in body and "reopens it" in body
    with app.app_context():
        ticket = db.session.scalar(select(Ticket).where(Ticket.number == number))
        assert ticket.status == Status.CLOSED.value
        read = db.session.scalars(select(TicketRead)).all()
        assert read  # the agent read it when answering; the auto-close does not touch that
