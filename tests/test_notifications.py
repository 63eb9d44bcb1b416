"""Agent notifications: who is told about what (never the actor), preferences, the mail
through the relay to a real SMTP server, and the bell and list over HTTP."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from app.actor import Actor
from app.extensions import db
from app.mail.identities import save_identity
from app.models import (
    Notification,
    NotificationKind,
    OutboxMessage,
    Role,
    Team,
    Ticket,
    User,
)
from app.models.tickets import Channel
from app.models.types import utcnow
from app.notifications import tasks_due
from app.notifications.mentions import mention_tokens
from app.notifications.preferences import Choice, save_preferences
from app.tickets import assign
from app.tickets import tasks as task_rules
from app.tickets.customer_writes import customer_writes
from app.tickets.replies import answer
from tests import factories
from tests.conftest import csrf_from, run_jobs, sign_in
from tests.services import SmtpSink

HX = {"HX-Request": "true"}


def kinds_of(user: User) -> list[str]:
    return list(
        db.session.scalars(
            select(Notification.kind)
            .where(Notification.user_id == user.id)
            .order_by(Notification.id)
        )
    )


def mails_to(user: User) -> list[OutboxMessage]:
    rows = db.session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)).all()
    return [m for m in rows if user.email.lower() in m.recipients.get("to", [])]


def staff(name: str, *roles: Role, email: str | None = None) -> User:
    user = factories.staff_user(*roles)
    user.name = name
    if email:
        user.email = email
    return user


@pytest.fixture
def desk(ctx: None) -> dict[str, Any]:
    """Two agents and a supervisor, an admin and a compliance officer (who work no
    tickets), and a sender identity for notification mail."""
    people = {
        "ada": staff("Ada", Role.AGENT, email="ada.lovelace@desk.test"),
        "bob": staff("Bob", Role.AGENT, email="bob@desk.test"),
        "sue": staff("Sue", Role.SUPERVISOR),
        "admin": staff("Adam", Role.ADMIN),
        "officer": staff("Olga", Role.COMPLIANCE),
    }
    save_identity(Actor.system(), address="contact@desk.test", name="Desk")
    db.session.commit()
    return people


# --- who is told -----------------------------------------------------------------------


def test_a_new_unassigned_ticket_tells_everyone_who_dispatches(desk: dict) -> None:
    factories.ticket("Printer on fire")  # a customer's mail
    db.session.commit()
    for name in ("ada", "bob", "sue"):
        assert kinds_of(desk[name]) == ["new_ticket"], name
    assert kinds_of(desk["admin"]) == [] and kinds_of(desk["officer"]) == []


def test_a_new_ticket_in_a_team_tells_that_team_and_never_the_agent_who_opened_it(
    desk: dict,
) -> None:
    team = Team(name="Network")
    db.session.add(team)
    desk["ada"].team = team
    desk["bob"].team = team
    db.session.flush()
    factories.ticket("VPN down", team=team, channel=Channel.AGENT, actor=Actor.staff(desk["ada"]))
    db.session.commit()
    assert kinds_of(desk["bob"]) == ["new_ticket"]
    assert kinds_of(desk["ada"]) == []  # she opened it herself
    assert kinds_of(desk["sue"]) == []  # not in the team


def test_assigned_to_me_carries_the_handover_note_and_assigning_myself_tells_nobody(
    desk: dict,
) -> None:
    ticket = factories.ticket("Invoice wrong")
    db.session.commit()
    db.session.execute(Notification.__table__.delete())
    assign(ticket, Actor.staff(desk["ada"]), assignee=desk["bob"], note="Customer is VIP")
    db.session.commit()
    (row,) = db.session.scalars(select(Notification).where(Notification.user_id == desk["bob"].id))
    assert row.kind == "assigned" and row.params["note"] == "Customer is VIP"
    assert row.actor_name == "Ada" and row.ticket_id == ticket.id
    (mail,) = mails_to(desk["bob"])
    assert "Customer is VIP" in mail.body_text and mail.auto_submitted == "auto-generated"

    assign(ticket, Actor.staff(desk["ada"]), assignee=desk["ada"])
    db.session.commit()
    assert kinds_of(desk["ada"]) == [] and mails_to(desk["ada"]) == []


def test_a_customer_writing_tells_the_manager(desk: dict) -> None:
    ticket = factories.ticket("Slow laptop", assignee=desk["bob"])
    db.session.commit()
    assert kinds_of(desk["bob"]) == ["new_ticket"]  # opened with him as manager
    assert kinds_of(desk["ada"]) == []  # it has a manager: nobody else needs to dispatch
    contact = ticket.contact
    customer_writes(
        ticket,
        Actor.customer(name=contact.name, email=contact.email),
        Channel.PORTAL,
        body_text="Still slow after the update.",
    )
    db.session.commit()
    assert kinds_of(desk["bob"]) == ["new_ticket", "customer_wrote"]
    row = db.session.scalars(
        select(Notification).where(Notification.kind == "customer_wrote")
    ).one()
    assert row.params["excerpt"] == "Still slow after the update."
    assert kinds_of(desk["ada"]) == []


def test_mentions_in_a_note_tell_the_colleagues_named_never_the_writer(desk: dict) -> None:
    ticket = factories.ticket("Disk full", assignee=desk["sue"])
    db.session.commit()
    db.session.execute(Notification.__table__.delete())
    note = (
        "@ada.lovelace and @BOB, please look. @ada.lovelace again. "
        "I (@sue) am on it too; mail me at someone@bob.example, @nobody."
    )
    sue = desk["sue"]
    sue.email = "sue@desk.test"
    answer(ticket, Actor.staff(sue), note, internal=True)
    db.session.commit()
    assert kinds_of(desk["ada"]) == ["mentioned"]  # once, though named twice
    assert kinds_of(desk["bob"]) == ["mentioned"]
    assert kinds_of(sue) == []  # she wrote it
    assert kinds_of(desk["admin"]) == []
    # A public reply is for the customer: no mentions there.
    assert mention_tokens("write to x@bob.example") == set()
    assert mention_tokens("@ada.lovelace@desk.test, hi") == {"ada.lovelace@desk.test"}


def test_a_due_task_tells_its_assignee_once(desk: dict) -> None:
    ticket = factories.ticket("Call back")
    actor = Actor.staff(desk["ada"])
    due = task_rules.create_task(
        ticket, actor, title="Ring the customer", assignee=desk["bob"],
        due_at=utcnow() - timedelta(minutes=1),
    )  # fmt: skip
    later = task_rules.create_task(
        ticket, actor, title="Later", assignee=desk["bob"], due_at=utcnow() + timedelta(days=1)
    )
    done = task_rules.create_task(
        ticket, actor, title="Done", assignee=desk["bob"], due_at=utcnow() - timedelta(hours=1)
    )
    task_rules.set_done(done, actor, True)
    db.session.commit()
    db.session.execute(Notification.__table__.delete())
    assert tasks_due() == 1
    assert tasks_due() == 0  # the second sweep finds it told
    db.session.commit()
    (row,) = db.session.scalars(select(Notification).where(Notification.user_id == desk["bob"].id))
    assert row.kind == "task_due" and row.params["task_id"] == due.id
    assert tasks_due(now=utcnow() + timedelta(days=2)) == 1  # "later" is due by then
    assert later.id != due.id


# --- preferences -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("choice", "in_app", "mailed"),
    [
        (Choice(in_app=True, by_mail=False), 1, 0),
        (Choice(in_app=False, by_mail=True), 0, 1),
        (Choice(in_app=False, by_mail=False), 0, 0),
        (Choice(in_app=True, by_mail=True), 1, 1),
    ],
)
def test_preferences_are_respected(desk: dict, choice: Choice, in_app: int, mailed: int) -> None:
    ticket = factories.ticket("Prefs")
    db.session.commit()
    db.session.execute(Notification.__table__.delete())
    save_preferences(desk["bob"], {NotificationKind.ASSIGNED: choice})
    assign(ticket, Actor.staff(desk["ada"]), assignee=desk["bob"])
    db.session.commit()
    assert len(kinds_of(desk["bob"])) == in_app
    assert len(mails_to(desk["bob"])) == mailed


# --- the mail, through the relay, to a real SMTP server --------------------------------


def test_the_notification_mail_reaches_the_smtp_server_in_the_agents_language(
    app: Flask, smtp_sink: SmtpSink
) -> None:
    app.config["SMTP_URL"] = f"smtp://127.0.0.1:{smtp_sink.port}"
    with app.app_context():
        ada = staff("Ada", Role.AGENT)
        bob = staff("Bob", Role.AGENT)
        bob.language = "de"
        save_identity(Actor.system(), address="contact@desk.test", name="Desk")
        ticket = factories.ticket("Drucker brennt")
        number, bob_email = ticket.number, bob.email
        db.session.commit()
        db.session.execute(Notification.__table__.delete())
        assign(ticket, Actor.staff(ada), assignee=bob, note="Bitte heute noch")
        db.session.commit()
        ada_email = ada.email
    run_jobs(app)  # a real RQ worker runs the relay's send job
    (received,) = smtp_sink.wait_for(1)
    assert received.rcpt_tos == (bob_email,)
    mail = received.message
    assert mail["Auto-Submitted"] == "auto-generated"
    assert mail["Content-Language"] == "de"
    assert mail["Subject"].startswith(f"[#{number}] ")
    text = mail.get_body(("plain",)).get_content()
    assert "Bitte heute noch" in text and f"/agent/tickets/{number}" in text
    assert "Drucker brennt" in text
    assert mail.get_body(("html",)) is not None
    assert not any(m.rcpt_tos == (ada_email,) for m in smtp_sink.messages)


def test_a_failed_reply_tells_its_author_and_a_failed_notification_mail_tells_nobody(
    app: Flask, smtp_sink: SmtpSink
) -> None:
    app.config["SMTP_URL"] = f"smtp://127.0.0.1:{smtp_sink.port}"
    app.config["MAIL_MAX_ATTEMPTS"] = 1
    with app.app_context():
        ada = staff("Ada", Role.AGENT)
        identity = save_identity(Actor.system(), address="contact@desk.test", name="Desk")
        ticket = factories.ticket("Bounce me", assignee=ada)
        db.session.commit()
        db.session.execute(Notification.__table__.delete())
        answer(ticket, Actor.staff(ada), "Here is the fix.", internal=False, identity=identity)
        db.session.commit()
        ada_id = ada.id
    # The server refuses the reply, then the notification mail about it (the worker sends
    # that one in the same burst): a failed notification mail is no reply of hers.
    smtp_sink.fail_next(2, code=554, message="5.7.1 no thanks", stage="mail")
    run_jobs(app)
    with app.app_context():
        ada = db.session.get(User, ada_id)
        (row,) = db.session.scalars(select(Notification)).all()
        assert row.user_id == ada_id and row.kind == "reply_failed"
        assert "5.7.1 no thanks" in row.params["error"]
        (mail,) = mails_to(ada)
        assert mail.status == "failed" and mail.auto_submitted == "auto-generated"
    assert smtp_sink.messages == []


# --- over HTTP -------------------------------------------------------------------------


def bell_count(html: str) -> int:
    match = re.search(r'id="bell"[^>]*>.*?data-unread="(\d+)"', html, re.S)
    assert match, "no bell on the page"
    return int(match.group(1))


@pytest.fixture
def http_desk(app: Flask, make_user: Any) -> dict[str, Any]:
    ada, bob, cat = make_user(Role.AGENT), make_user(Role.AGENT), make_user(Role.AGENT)
    customer = make_user(Role.CUSTOMER)
    with app.app_context():
        save_identity(Actor.system(), address="contact@desk.test", name="Desk")
        ticket = factories.ticket("Over HTTP")
        db.session.commit()
        db.session.execute(Notification.__table__.delete())
        db.session.commit()
        number = ticket.number
    return {"ada": ada, "bob": bob, "cat": cat, "customer": customer, "number": number}


def hand_over(app: Flask, world: dict, note: str | None = None) -> int:
    with app.app_context():
        ticket = db.session.scalar(select(Ticket).where(Ticket.number == world["number"]))
        ada = db.session.get(User, world["ada"].id)
        bob = db.session.get(User, world["bob"].id)
        assign(ticket, Actor.staff(ada), assignee=bob, note=note)
        db.session.commit()
        return db.session.scalar(
            select(Notification.id)
            .where(Notification.user_id == bob.id)
            .order_by(Notification.id.desc())
        )


def test_the_bell_counts_and_the_existing_poll_refreshes_it(
    app: Flask, client: Any, http_desk: dict
) -> None:
    sign_in(client, http_desk["bob"])
    page = client.get("/agent/").get_data(as_text=True)
    assert bell_count(page) == 0
    poll = client.get("/agent/list/inbox", headers=HX)
    etag = poll.headers["ETag"]
    assert client.get("/agent/list/inbox", headers={**HX, "If-None-Match": etag}).status_code == 304

    # A task of Bob's falls due: no ticket changes, only his bell.
    with app.app_context():
        ticket = db.session.scalar(select(Ticket).where(Ticket.number == http_desk["number"]))
        bob = db.session.get(User, http_desk["bob"].id)
        task_rules.create_task(
            ticket, Actor.staff(bob), title="Check", assignee=bob, due_at=utcnow() - timedelta(1)
        )
        db.session.commit()
    etag = client.get("/agent/list/inbox", headers=HX).headers["ETag"]
    with app.app_context():
        tasks_due()
        db.session.commit()
    fresh = client.get("/agent/list/inbox", headers={**HX, "If-None-Match": etag})
    assert fresh.status_code == 200  # the bell changed the poll's answer
    assert 'hx-swap-oob="true"' in fresh.get_data(as_text=True)
    assert bell_count(fresh.get_data(as_text=True)) == 1
    nav = client.get("/agent/nav?view=inbox", headers=HX).get_data(as_text=True)
    assert bell_count(nav) == 1
    live = client.get(f"/agent/tickets/{http_desk['number']}/live", headers=HX)
    assert bell_count(live.get_data(as_text=True)) == 1
    assert bell_count(client.get("/agent/notifications/bell").get_data(as_text=True)) == 1


def test_the_list_links_to_the_ticket_and_marks_read(
    app: Flask, client: Any, http_desk: dict
) -> None:
    nid = hand_over(app, http_desk, note="Please call them")
    sign_in(client, http_desk["bob"])
    page = client.get("/agent/notifications").get_data(as_text=True)
    assert "assigned" in page and "Please call them" in page and bell_count(page) == 1
    token = csrf_from(page)
    opened = client.post(f"/agent/notifications/{nid}/open", data={"csrf_token": token})
    assert opened.status_code == 303
    assert opened.headers["Location"].endswith(f"/agent/tickets/{http_desk['number']}")
    assert bell_count(client.get("/agent/").get_data(as_text=True)) == 0

    for _ in range(2):  # back to dispatch and to Bob again, twice: two more
        with app.app_context():
            ticket = db.session.scalar(select(Ticket).where(Ticket.number == http_desk["number"]))
            assign(ticket, Actor.staff(db.session.get(User, http_desk["ada"].id)), assignee=None)
            db.session.commit()
        hand_over(app, http_desk)
    assert bell_count(client.get("/agent/").get_data(as_text=True)) == 2
    done = client.post("/agent/notifications/read-all", data={"csrf_token": token}, headers=HX)
    assert done.status_code == 200 and bell_count(done.get_data(as_text=True)) == 0


def test_nobody_else_reads_or_marks_my_notifications(
    app: Flask, client: Any, http_desk: dict
) -> None:
    nid = hand_over(app, http_desk)
    sign_in(client, http_desk["cat"])
    page = client.get("/agent/notifications").get_data(as_text=True)
    assert f"notification-{nid}" not in page
    token = csrf_from(page)
    for action in ("open", "read"):
        refused = client.post(f"/agent/notifications/{nid}/{action}", data={"csrf_token": token})
        assert refused.status_code == 404, action
    client.post("/agent/notifications/read-all", data={"csrf_token": token})
    client.post("/logout", data={"csrf_token": token})

    customer = app.test_client()
    sign_in(customer, http_desk["customer"], portal=True)
    ctoken = csrf_from(customer.get("/portal/").get_data(as_text=True))
    assert customer.get("/agent/notifications").status_code in (403, 404)
    refused = customer.post(f"/agent/notifications/{nid}/read", data={"csrf_token": ctoken})
    assert refused.status_code in (403, 404)
    with app.app_context():
        assert db.session.get(Notification, nid).read_at is None  # still unread for Bob


def test_marking_read_needs_the_csrf_token(app: Flask, client: Any, http_desk: dict) -> None:
    nid = hand_over(app, http_desk)
    sign_in(client, http_desk["bob"])
    client.get("/agent/")
    for url in (f"/agent/notifications/{nid}/read", "/agent/notifications/read-all",
                f"/agent/notifications/{nid}/open"):  # fmt: skip
        assert client.post(url).status_code == 400, url
        assert client.post(url, data={"csrf_token": "forged"}).status_code == 400, url
    with app.app_context():
        assert db.session.get(Notification, nid).read_at is None


def test_the_preferences_page_saves_per_kind_choices(
    app: Flask, client: Any, http_desk: dict
) -> None:
    sign_in(client, http_desk["bob"])
    page = client.get("/agent/notifications/preferences").get_data(as_text=True)
    token = csrf_from(page)
    assert 'name="assigned-mail" value="1"' in page
    # Assignments in the app only; everything else off.
    saved = client.post(
        "/agent/notifications/preferences", data={"csrf_token": token, "assigned-app": "1"}
    )
    assert saved.status_code == 303
    hand_over(app, http_desk)
    with app.app_context():
        bob = db.session.get(User, http_desk["bob"].id)
        assert kinds_of(bob) == ["assigned"] and mails_to(bob) == []
        factories.ticket("Another new one")
        db.session.commit()
        assert kinds_of(bob) == ["assigned"]  # new tickets: turned off
        cat = db.session.get(User, http_desk["cat"].id)
        assert kinds_of(cat) == ["new_ticket"]  # Cat kept the defaults


# --- robots ----------------------------------------------------------------------------


def test_robot_mail_never_notifies_anyone(desk: dict) -> None:
    """An out-of-office on Bob's ticket, a bounce, and robot mail naming no ticket: nobody is
    told. The same contact writing in person is (the control)."""
    from app.mail.ingest import file_message
    from app.models.inbound import MailSource

    ticket = factories.ticket("Printer jam", assignee=desk["bob"])
    sender = ticket.contact.email
    db.session.commit()
    db.session.execute(Notification.__table__.delete())
    db.session.commit()

    def mail(n: int, subject: str, extra: str = "", frm: str = sender) -> bytes:
        return (
            f"From: {frm}\r\nTo: contact@desk.test\r\nMessage-ID: <r{n}@acme.test>\r\n"
            f"Subject: {subject}\r\n{extra}\r\nThe body.\r\n"
        ).encode()

    subject = f"Re: [#{ticket.number}] Printer jam"
    results = [
        file_message(mail(1, subject, "Auto-Submitted: auto-replied\r\n"), source=MailSource.PIPE),
        file_message(mail(2, "Out of office", "Auto-Submitted: auto-replied\r\n"),
                     source=MailSource.PIPE),
        file_message(mail(3, "Weekly digest", "List-Id: <news.acme.test>\r\nPrecedence: list\r\n"),
                     source=MailSource.PIPE),
        file_message(mail(4, f"Undelivered Mail Returned to Sender [#{ticket.number}]",
                          frm="MAILER-DAEMON@acme.test"), source=MailSource.PIPE),
    ]  # fmt: skip
    db.session.commit()
    assert db.session.scalar(select(func.count(Notification.id))) == 0
    assert mails_to(desk["bob"]) == []
    assert all(r.outcome in ("appended", "ignored") for r in results), results

    person = file_message(mail(5, subject), source=MailSource.PIPE)
    db.session.commit()
    assert person.outcome == "appended"
    assert kinds_of(desk["bob"]) == ["customer_wrote"]


def test_the_periodic_job_tells_due_tasks_through_a_real_worker(app: Flask) -> None:
    """``notify_due_tasks`` is in the cron list and works on an RQ worker."""
    from app.jobs import enqueue
    from app.jobs.notify import notify_due_tasks
    from app.jobs.schedule import PERIODIC

    assert notify_due_tasks in [p.func for p in PERIODIC]
    with app.app_context():
        ada, bob = staff("Ada", Role.AGENT), staff("Bob", Role.AGENT)
        ticket = factories.ticket("Due soon")
        task_rules.create_task(
            ticket, Actor.staff(ada), title="Send the quote", assignee=bob,
            due_at=utcnow() - timedelta(seconds=5),
        )  # fmt: skip
        db.session.commit()
        db.session.execute(Notification.__table__.delete())
        db.session.commit()
        bob_id = bob.id
        enqueue(notify_due_tasks)
        enqueue(notify_due_tasks)  # a second scheduler's copy: still told once
    run_jobs(app)
    with app.app_context():
        rows = db.session.scalars(select(Notification)).all()
        assert [(r.user_id, r.kind, r.params["title"]) for r in rows] == [
            (bob_id, "task_due", "Send the quote")
        ]


def test_a_bounce_of_a_reply_tells_its_author_once(desk: dict) -> None:
    """A DSN about a sent reply (mail-in calls ``mark_bounced``) tells the agent who wrote
    it; the same DSN twice tells once; a bounce of a notification mail tells nobody."""
    from app.mail.bounces import mark_bounced
    from app.models import SenderIdentity

    ticket = factories.ticket("Wrong address", assignee=desk["ada"])
    identity = db.session.scalar(select(SenderIdentity))
    db.session.commit()
    db.session.execute(Notification.__table__.delete())
    answer(ticket, Actor.staff(desk["ada"]), "Here you go.", internal=False, identity=identity)
    db.session.commit()
    reply = db.session.scalar(select(OutboxMessage).where(OutboxMessage.entry_id.is_not(None)))
    for _ in range(2):
        mark_bounced(reply.message_id, ticket.contact.email, "550 5.1.1 user unknown")
        db.session.commit()
    (row,) = db.session.scalars(select(Notification)).all()
    assert row.user_id == desk["ada"].id and row.kind == "reply_failed"
    assert "user unknown" in row.params["error"]
    (told,) = mails_to(desk["ada"])
    mark_bounced(told.message_id, desk["ada"].email, "552 mailbox full")
    db.session.commit()
    assert db.session.scalar(select(func.count(Notification.id))) == 1
