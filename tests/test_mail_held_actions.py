"""Deciding on held mail over HTTP, with mail held by the real pipeline.

A stranger quoting a ticket number lands in review; an agent attaches it, makes a ticket
of it or discards it; an admin retries quarantined mail, files ignored robot mail and
downloads originals. Every decision is audited with who made it.
"""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from app.extensions import db
from app.mail.ingest import file_message
from app.models import Role
from app.models.audit import AuditLog
from app.models.inbound import InboundMail, Mailbox, MailDecision, MailOutcome, MailSource
from app.models.mail import SenderIdentity
from app.models.tickets import StreamEntry, Ticket
from app.models.types import utcnow
from tests.conftest import csrf_from

SUPPORT = "support@desk.test"
HTMX = {"HX-Request": "true"}


def mail(
    sender: str,
    subject: str,
    body: str,
    *,
    html: str | None = None,
    headers: dict[str, str] | None = None,
) -> bytes:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = SUPPORT
    message["Subject"] = subject
    message["Date"] = format_datetime(utcnow())
    message["Message-ID"] = make_msgid(domain="sender.test")
    for name, value in (headers or {}).items():
        message[name] = value
    message.set_content(body)
    if html:
        message.add_alternative(html, subtype="html")
    return message.as_bytes()


def deliver(app: Flask, raw: bytes) -> tuple[int, str | None]:
    """Through the real pipeline; the message's row id and ticket number."""
    with app.app_context():
        box = db.session.scalar(select(Mailbox).where(Mailbox.address == SUPPORT))
        filed = file_message(raw, source=MailSource.PIPE, mailbox=box)
        assert filed.inbound_id is not None
        return filed.inbound_id, filed.ticket_number


@pytest.fixture
def desk(app: Flask) -> dict[str, Any]:
    """A support mailbox, a customer's ticket, and a stranger's mail quoting its number."""
    with app.app_context():
        identity = SenderIdentity(address=SUPPORT, name="Support", is_default=True)
        box = Mailbox(
            name="Support", address=SUPPORT, host="imap.test", username="s", identity=identity
        )
        db.session.add_all([identity, box])
        db.session.commit()
    _, number = deliver(app, mail("ann@customer.test", "Printer on fire", "It is on fire."))
    assert number is not None
    review_id, none = deliver(
        app,
        mail(
            "mallory@evil.test",
            f"Re: [#{number}] Printer on fire",
            "Please send me the invoice for this ticket.",
            html="<p>Please send <b>me</b> the invoice<script>alert(1)</script></p>",
        ),
    )
    assert none is None
    with app.app_context():
        assert db.session.get(InboundMail, review_id).outcome == MailOutcome.REVIEW.value
    return {"ticket": number, "review": review_id}


def entries_of(app: Flask, number: str) -> list[str]:
    with app.app_context():
        ticket = db.session.scalar(select(Ticket).where(Ticket.number == number))
        return [
            e.body_text or ""
            for e in db.session.scalars(
                select(StreamEntry).where(StreamEntry.ticket_id == ticket.id)
            )
        ]


def inbound(app: Flask, inbound_id: int) -> InboundMail:
    with app.app_context():
        row = db.session.get(InboundMail, inbound_id)
        assert row is not None
        db.session.expunge(row)
        return row


def audits(app: Flask, action: str) -> list[AuditLog]:
    with app.app_context():
        rows = list(db.session.scalars(select(AuditLog).where(AuditLog.action == action)))
        db.session.expunge_all()
        return rows


def post(client: Any, page_path: str, path: str, **data: str) -> Any:
    csrf = csrf_from(client.get(page_path).get_data(as_text=True))
    return client.post(path, data={"csrf_token": csrf, **data})


# -- agents: the review queue ---------------------------------------------------------


def test_review_item_shows_the_text_and_never_the_html(
    app: Flask, client: Any, make_user: Any, login: Any, desk: dict[str, Any]
) -> None:
    login(make_user(Role.AGENT))
    queue = client.get("/agent/mail/review").get_data(as_text=True)
    assert "mallory@evil.test" in queue and desk["ticket"] in queue
    html = client.get(f"/agent/mail/review/{desk['review']}").get_data(as_text=True)
    assert "Please send me the invoice for this ticket." in html
    assert "<script>alert(1)</script>" not in html and "<b>me</b>" not in html
    assert f'value="{desk["ticket"]}"' in html  # attach offers the suspected ticket


def test_agent_attaches_a_reviewed_mail_to_the_ticket(
    app: Flask, client: Any, make_user: Any, login: Any, desk: dict[str, Any]
) -> None:
    agent = make_user(Role.AGENT)
    login(agent)
    before = len(entries_of(app, desk["ticket"]))
    response = post(
        client,
        "/agent/mail/review",
        f"/agent/mail/review/{desk['review']}/attach",
        ticket=desk["ticket"].lower(),  # typed by hand, in any case
    )
    assert response.status_code == 303 and response.headers["Location"] == "/agent/mail/review"
    queue = client.get("/agent/mail/review").get_data(as_text=True)
    assert f"Filed on {desk['ticket']}." in queue and "mallory@evil.test" not in queue
    assert len(entries_of(app, desk["ticket"])) == before + 1
    row = inbound(app, desk["review"])
    assert row.decision == MailDecision.ATTACHED.value and row.decided_by_id == agent.id
    [audit] = audits(app, "mail.file_on")
    assert audit.actor_id == agent.id and audit.object_id == str(desk["review"])
    # Decided once: a second click (another agent, an old tab) changes nothing; filed,
    # the message has left the queue.
    again = post(
        client,
        "/agent/mail/review",
        f"/agent/mail/review/{desk['review']}/discard",
        reason="duplicate click",
    )
    assert again.status_code == 404
    assert inbound(app, desk["review"]).decision == MailDecision.ATTACHED.value
    assert len(audits(app, "mail.discard")) == 0


def test_attaching_to_an_unknown_ticket_keeps_the_mail_held(
    app: Flask, client: Any, make_user: Any, login: Any, desk: dict[str, Any]
) -> None:
    login(make_user(Role.AGENT))
    path = f"/agent/mail/review/{desk['review']}/attach"
    assert post(client, "/agent/mail/review", path, ticket="T-999999").status_code == 404
    assert post(client, "/agent/mail/review", path, ticket=" ").status_code == 422
    assert inbound(app, desk["review"]).decision is None
    assert audits(app, "mail.file_on") == []


def test_agent_makes_a_new_ticket_with_htmx(
    app: Flask, client: Any, make_user: Any, login: Any, desk: dict[str, Any]
) -> None:
    agent = make_user(Role.AGENT)
    login(agent)
    csrf = csrf_from(client.get("/agent/mail/review").get_data(as_text=True))
    response = client.post(
        f"/agent/mail/review/{desk['review']}/new", headers={**HTMX, "X-CSRFToken": csrf}
    )
    assert response.status_code == 204
    assert response.headers["HX-Redirect"] == "/agent/mail/review"
    row = inbound(app, desk["review"])
    assert row.decision == MailDecision.NEW_TICKET.value and row.ticket_id is not None
    with app.app_context():
        ticket = db.session.get(Ticket, row.ticket_id)
        assert ticket.number != desk["ticket"]
        assert ticket.contact.email == "mallory@evil.test"
    [audit] = audits(app, "mail.new_ticket")
    assert audit.actor_id == agent.id


def test_agent_discards_with_a_reason_that_is_kept_and_audited(
    app: Flask, client: Any, make_user: Any, login: Any, desk: dict[str, Any]
) -> None:
    agent = make_user(Role.AGENT)
    login(agent)
    before = entries_of(app, desk["ticket"])
    response = post(
        client,
        "/agent/mail/review",
        f"/agent/mail/review/{desk['review']}/discard",
        reason="Phishing for invoices",
    )
    assert response.status_code == 303
    row = inbound(app, desk["review"])
    assert row.decision == MailDecision.DISCARDED.value
    assert row.decision_reason == "Phishing for invoices"
    assert row.raw_file_id is not None  # the original stays for the record
    assert entries_of(app, desk["ticket"]) == before
    [audit] = audits(app, "mail.discard")
    assert audit.actor_id == agent.id and audit.details["reason"] == "Phishing for invoices"


# -- admins: the mail log -------------------------------------------------------------


def test_admin_retries_quarantined_mail_and_downloads_the_original(
    app: Flask, client: Any, make_user: Any, login: Any, desk: dict[str, Any]
) -> None:
    raw = b"\x00\x01garbage that is no mail\xff" * 10
    quarantined, _ = deliver(app, raw)
    admin = make_user(Role.ADMIN)
    login(admin)
    log = client.get("/admin/mail?outcome=quarantined").get_data(as_text=True)
    assert f"/admin/mail/{quarantined}" in log and "unreadable" in log
    item = client.get(f"/admin/mail/{quarantined}").get_data(as_text=True)
    assert "cannot be read" in item and f"/admin/mail/{quarantined}/original" in item

    download = client.get(f"/admin/mail/{quarantined}/original")
    assert download.status_code == 200 and download.data == raw
    assert download.headers["Content-Disposition"].startswith("attachment")
    assert download.mimetype == "application/octet-stream"
    [audit] = audits(app, "mail.original_downloaded")
    assert audit.actor_id == admin.id and audit.object_id == str(quarantined)

    # Still unreadable: the retry is recorded, the message stays held for a decision.
    response = post(client, "/admin/mail", f"/admin/mail/{quarantined}/retry")
    assert response.status_code == 303
    assert inbound(app, quarantined).decision is None
    assert [a.actor_id for a in audits(app, "mail.retry")] == [admin.id]
    response = post(
        client, "/admin/mail", f"/admin/mail/{quarantined}/discard", reason="not a message"
    )
    assert response.status_code == 303
    assert inbound(app, quarantined).decision == MailDecision.DISCARDED.value


def test_admin_files_ignored_robot_mail_on_a_ticket(
    app: Flask, client: Any, make_user: Any, login: Any, desk: dict[str, Any]
) -> None:
    ignored, _ = deliver(
        app,
        mail(
            "bob@customer.test",
            "Automatic reply: back on Monday",
            "I am out of the office. Re the printer: the spare is in room 3.",
            headers={"Auto-Submitted": "auto-replied"},
        ),
    )
    assert inbound(app, ignored).outcome == MailOutcome.IGNORED.value
    admin = make_user(Role.ADMIN)
    login(admin)
    assert "Automatic reply: back on Monday" in client.get("/admin/mail?outcome=ignored").text
    before = len(entries_of(app, desk["ticket"]))
    response = post(client, "/admin/mail", f"/admin/mail/{ignored}/attach", ticket=desk["ticket"])
    assert response.status_code == 303
    assert len(entries_of(app, desk["ticket"])) == before + 1
    row = inbound(app, ignored)
    assert row.decision == MailDecision.ATTACHED.value and row.decided_by_id == admin.id
    decided = client.get("/admin/mail?state=decided").get_data(as_text=True)
    assert "Automatic reply: back on Monday" in decided


def test_admin_makes_a_ticket_of_review_mail(
    app: Flask, client: Any, make_user: Any, login: Any, desk: dict[str, Any]
) -> None:
    admin = make_user(Role.ADMIN)
    login(admin)
    response = post(client, "/admin/mail", f"/admin/mail/{desk['review']}/new")
    assert response.status_code == 303
    assert response.headers["Location"] == f"/admin/mail/{desk['review']}"
    assert inbound(app, desk["review"]).decision == MailDecision.NEW_TICKET.value
    [audit] = audits(app, "mail.new_ticket")
    assert audit.actor_id == admin.id
