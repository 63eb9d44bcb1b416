"""The relay end to end: replies saved by the domain, sent by real RQ workers to a real
aiosmtpd server, parsed as a mail client would parse them."""

from __future__ import annotations

import io
import re
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from app.actor import Actor
from app.extensions import db
from app.files.store import store_upload
from app.mail import relay
from app.mail.identities import save_identity
from app.models import (
    Contact,
    EntryKind,
    OutboxMessage,
    OutboxRecipient,
    Role,
    SenderIdentity,
    StreamEntry,
    Ticket,
    User,
    VaultLink,
)
from app.tickets.recipients import add_recipient, subscribe
from app.tickets.replies import answer
from tests import factories
from tests.conftest import run_jobs, sign_in
from tests.services import SmtpMessage, SmtpSink
from tests.test_link_recipients import ask_for_code, download

CUSTOMER = "nora@customer.test"
COLLEAGUE = "cc.person@customer.test"
HIDDEN = "hidden@partner.test"


def use_smtp(app: Flask, sink: SmtpSink) -> None:
    app.config["SMTP_URL"] = f"smtp://127.0.0.1:{sink.port}"


def make_world(
    app: Flask,
    *,
    language: str = "en",
    customer_mail_id: str | None = None,
    customer_only: bool = False,
) -> dict:
    """A ticket with a To customer, a Cc, a Bcc and two subscribed agents (the author one
    of them); ``customer_only``: the To customer alone, so each reply is one copy."""
    with app.app_context():
        agent = factories.staff_user(Role.AGENT)
        agent.name = "Ada Agent"
        colleague = factories.staff_user(Role.AGENT)
        colleague.name = "Carl Colleague"
        identity = save_identity(
            Actor.system(),
            address="support@desk.test",
            name="Desk Support",
            language=language,
            signature="Desk Support\nMon-Fri",
        )
        contact = Contact(name="Nora Customer", email=CUSTOMER)
        db.session.add(contact)
        ticket = factories.ticket("VPN drops every hour", contact=contact)
        if customer_mail_id:
            for n, mid in enumerate(("<first@customer.test>", customer_mail_id)):
                db.session.add(
                    StreamEntry(
                        ticket=ticket,
                        kind=EntryKind.MAIL_IN.value,
                        visibility="external",
                        author_name="Nora",
                        body_text=f"mail {n}",
                        data={"message_id": mid},
                    )
                )
        if customer_only:
            ticket.subscribers = []
        else:
            add_recipient(ticket, Actor.staff(agent), "cc", COLLEAGUE, "Cecil Cc")
            add_recipient(ticket, Actor.staff(agent), "bcc", HIDDEN)
            subscribe(ticket, agent)
            subscribe(ticket, colleague)
        db.session.commit()
        return {
            "agent_id": agent.id,
            "agent_email": agent.email,
            "colleague_email": colleague.email,
            "identity_id": identity.id,
            "ticket_id": ticket.id,
            "number": ticket.number,
        }


def reply(
    app: Flask, world: dict, text: str = "Please update the client to 5.2.", **kw: Any
) -> int:
    """The agent's public reply through the one domain function; returns the outbox id."""
    with app.app_context():
        agent = db.session.get(User, world["agent_id"])
        ticket = db.session.get(Ticket, world["ticket_id"])
        identity = db.session.get(SenderIdentity, world["identity_id"])
        files = []
        for name, content in kw.pop("files", []):
            files.append(store_upload(io.BytesIO(content), name, Actor.staff(agent), ticket=ticket))
        entry = answer(
            ticket, Actor.staff(agent), text, internal=False, identity=identity, files=files, **kw
        )
        db.session.commit()
        return db.session.scalar(select(OutboxMessage.id).where(OutboxMessage.entry_id == entry.id))


def send_now(app: Flask, outbox_id: int) -> relay.Outcome:
    """The relay in this process (no worker): one row, one connection."""
    with app.app_context():
        via = relay.transport()
        try:
            (outcome,) = relay.drain(outbox_id, via, batch=1)
        finally:
            via.close()
        return outcome


def by_rcpt(messages: list[SmtpMessage]) -> dict[str, EmailMessage]:
    out = {}
    for m in messages:
        assert len(m.rcpt_tos) == 1, "every recipient gets a copy of their own"
        out[m.rcpt_tos[0]] = m.message
    return out


def row(app: Flask, outbox_id: int) -> dict[str, Any]:
    with app.app_context():
        message = db.session.get(OutboxMessage, outbox_id)
        return {
            "status": message.status,
            "attempts": message.attempts,
            "last_error": message.last_error,
            "server_answer": message.server_answer,
            "next_attempt_at": message.next_attempt_at,
            "message_id": message.message_id,
            "recipients": {d.address: d.status for d in message.deliveries},
        }


def test_a_reply_reaches_every_recipient_with_proper_headers_and_both_parts(
    app: Flask, smtp_sink: SmtpSink
) -> None:
    use_smtp(app, smtp_sink)
    world = make_world(app, customer_mail_id="<last-one@customer.test>")
    outbox_id = reply(app, world, files=[("report.pdf", b"%PDF-1.4 report"), ("log.txt", b"x")])
    run_jobs(app)
    copies = by_rcpt(smtp_sink.wait_for(4))
    # To, Cc, Bcc and the subscribed colleague (Bcc); never the agent who wrote it.
    assert set(copies) == {CUSTOMER, COLLEAGUE, HIDDEN, world["colleague_email"]}
    assert len(smtp_sink.messages) == 4
    stored = row(app, outbox_id)
    for address, mail in copies.items():
        assert mail["From"] == "Ada Agent via Desk Support <support@desk.test>"
        assert mail["Reply-To"] == "support@desk.test"
        assert mail["To"] == f"Nora Customer <{CUSTOMER}>"
        assert mail["Cc"] == f"Cecil Cc <{COLLEAGUE}>"
        assert mail["Bcc"] is None  # nobody sees the Bcc recipients, not even themselves
        assert HIDDEN not in mail.as_string() or address == HIDDEN
        assert world["colleague_email"] not in str(mail)
        assert mail["Subject"] == f"[#{world['number']}] VPN drops every hour"
        assert mail["Message-ID"] == stored["message_id"]
        assert mail["Message-ID"].endswith("@desk.test>")
        assert mail["In-Reply-To"] == "<last-one@customer.test>"
        assert mail["References"].split() == ["<first@customer.test>", "<last-one@customer.test>"]
        assert mail["Auto-Submitted"] is None  # a person wrote it
        assert mail["Content-Language"] == "en"
        assert mail.get_content_type() == "multipart/alternative"
        assert not any(part.is_attachment() for part in mail.walk())
        text = mail.get_body(("plain",)).get_content()
        html = mail.get_body(("html",)).get_content()
        assert text.startswith("Please update the client to 5.2.")
        assert "Files (secure download links):" in text
        assert text.rstrip().endswith("-- \nDesk Support\nMon-Fri")
        assert "<p>Please update the client to 5.2.</p>" in html and 'lang="en"' in html
        assert re.findall(r"report\.pdf: (\S+)", text) == re.findall(
            r'<a href="([^"]+)">report\.pdf</a>', html
        )
    assert stored["status"] == "sent" and stored["attempts"] == 1
    assert stored["server_answer"].startswith("250")
    assert set(stored["recipients"].values()) == {"sent"}

    # One link per file AND recipient, each bound to its recipient's address.
    urls = {
        a: re.findall(r"report\.pdf: (\S+)", m.get_body(("plain",)).get_content())[0]
        for a, m in copies.items()
    }
    assert len(set(urls.values())) == 4
    with app.app_context():
        links = db.session.scalars(select(VaultLink)).all()
        assert sorted(link.recipient_email for link in links) == sorted(
            [CUSTOMER, COLLEAGUE, HIDDEN, world["colleague_email"]] * 2
        )


def test_each_recipients_link_works_for_that_recipient(
    app: Flask, client: Any, smtp_sink: SmtpSink, make_user: Any
) -> None:
    use_smtp(app, smtp_sink)
    world = make_world(app)
    nora = make_user(Role.CUSTOMER, email=CUSTOMER)
    reply(app, world, files=[("contract.pdf", b"%PDF signed contract")])
    run_jobs(app)
    copies = by_rcpt(smtp_sink.wait_for(4))

    def path_in(address: str) -> str:
        text = copies[address].get_body(("plain",)).get_content()
        (url,) = re.findall(r"contract\.pdf: (\S+)", text)
        return url.removeprefix("http://localhost:5000")

    # The customer, signed in to the portal, downloads from their own copy.
    sign_in(client, nora, portal=True)
    assert download(client, path_in(CUSTOMER)).data == b"%PDF signed contract"
    # The Cc recipient proves their address with a mailed code (filed: no SMTP now).
    app.config["SMTP_URL"] = None
    other = app.test_client()
    code = ask_for_code(app, other, path_in(COLLEAGUE))
    from tests.test_link_recipients import outbox, post

    assert outbox(app)[-1]["To"] == COLLEAGUE  # the code went to the Cc, nobody else
    assert post(other, f"{path_in(COLLEAGUE)}/confirm", code=code).status_code == 303
    assert download(other, path_in(COLLEAGUE)).data == b"%PDF signed contract"
    # The customer's session does not open the Cc's link: it is bound to another address.
    refused = client.get(path_in(COLLEAGUE)).get_data(as_text=True)
    assert "c***@customer.test" in refused


def test_german_identity_writes_the_fixed_words_in_german(app: Flask, smtp_sink: SmtpSink) -> None:
    use_smtp(app, smtp_sink)
    world = make_world(app, language="de")
    reply(app, world, "Bitte aktualisieren Sie den Client.", files=[("bericht.pdf", b"x")])
    run_jobs(app)
    mail = by_rcpt(smtp_sink.wait_for(4))[CUSTOMER]
    text = mail.get_body(("plain",)).get_content()
    assert "Dateien (sichere Download-Links):" in text and "Files (" not in text
    assert mail["Content-Language"] == "de"
    assert 'lang="de"' in mail.get_body(("html",)).get_content()


def test_a_refusing_server_is_retried_and_delivers_one_copy(
    app: Flask, smtp_sink: SmtpSink
) -> None:
    use_smtp(app, smtp_sink)
    app.config["MAIL_RETRY_BASE_SECONDS"] = 0  # the retry job is due at once
    world = make_world(app, customer_only=True)  # one copy expected per try
    smtp_sink.fail_next(2, code=451, message="4.3.0 try again later")
    outbox_id = reply(app, world)
    run_jobs(app)  # first try: 451, queued again with a retry job
    after_first = row(app, outbox_id)
    assert after_first["status"] in ("queued", "sent")
    run_jobs(app)
    run_jobs(app)
    (delivered,) = smtp_sink.wait_for(1)
    assert delivered.rcpt_tos == (CUSTOMER,)
    final = row(app, outbox_id)
    assert final["status"] == "sent" and final["attempts"] == 3
    assert final["last_error"] is None or "451" in final["last_error"]
    assert len(smtp_sink.messages) == 1
    # Every try carried the one Message-ID fixed when the reply was saved.
    assert delivered.message["Message-ID"] == final["message_id"]


def test_a_failed_try_waits_longer_each_time_then_fails_and_shows_on_the_ticket(
    app: Flask, client: Any, smtp_sink: SmtpSink, make_user: Any
) -> None:
    use_smtp(app, smtp_sink)
    app.config["MAIL_MAX_ATTEMPTS"] = 3
    world = make_world(app)
    outbox_id = reply(app, world)
    waits = []
    with app.app_context():
        for _ in range(3):
            smtp_sink.fail_next(1, code=421, message="4.7.0 busy", stage="mail")
            db.session.execute(
                OutboxMessage.__table__.update()
                .where(OutboxMessage.id == outbox_id)
                .values(next_attempt_at=None)
            )
            db.session.commit()
            via = relay.transport()
            (outcome,) = relay.drain(outbox_id, via, batch=1)
            via.close()
            if outcome.retry_at is not None:
                waits.append(outcome.retry_at)
        assert relay.retry_delay(1).total_seconds() == 60
        assert relay.retry_delay(2).total_seconds() == 240
        assert relay.retry_delay(3).total_seconds() == 960
    final = row(app, outbox_id)
    assert final["status"] == "failed" and final["attempts"] == 3
    assert "421" in final["last_error"] and "gave up after 3 tries" in final["last_error"]
    assert smtp_sink.messages == []
    # The agent sees it on the ticket entry and sends it again (htmx, per the convention).
    sign_in(client, make_user(Role.AGENT))
    page = client.get(f"/agent/tickets/{world['number']}").get_data(as_text=True)
    assert "Not sent" in page and "421" in page and "Send again" in page
    from tests.conftest import csrf_from

    again = client.post(
        f"/agent/tickets/{world['number']}/mails/{outbox_id}/send-again",
        data={"csrf_token": csrf_from(page)},
        headers={"HX-Request": "true"},
    )
    assert again.status_code == 200
    assert "Queued for sending" in again.get_data(as_text=True)
    assert "<html" not in again.get_data(as_text=True).lower()  # the entry, not a page
    run_jobs(app)
    received = smtp_sink.wait_for(5)
    assert len([m for m in received if m.message["Auto-Submitted"] is None]) == 4
    # The failure also told its author, by an automatic mail of its own (notifications).
    (told,) = [m for m in received if m.message["Auto-Submitted"] == "auto-generated"]
    assert told.rcpt_tos == (world["agent_email"],)
    assert row(app, outbox_id)["status"] == "sent"


def test_a_permanently_refused_address_is_not_retried_the_others_are_sent(
    app: Flask, smtp_sink: SmtpSink
) -> None:
    use_smtp(app, smtp_sink)
    world = make_world(app)
    smtp_sink.fail_next(1, code=550, message="5.1.1 no such user", stage="rcpt")
    outbox_id = reply(app, world)
    run_jobs(app)
    stored = row(app, outbox_id)
    assert stored["status"] == "sent"
    refused = [a for a, s in stored["recipients"].items() if s == "refused"]
    assert refused == [CUSTOMER]  # the first copy is the To's
    assert "550" in stored["last_error"]
    assert len(smtp_sink.messages) == 3


def test_no_smtp_configured_files_the_same_messages_and_the_admin_reads_them(
    app: Flask, client: Any, make_user: Any
) -> None:
    world = make_world(app)
    outbox_id = reply(app, world, files=[("report.pdf", b"r")])
    run_jobs(app)
    files = sorted((Path(app.instance_path) / "outbox").glob("*.eml"))
    assert len(files) == 4
    stored = row(app, outbox_id)
    assert stored["status"] == "sent" and stored["server_answer"].startswith("filed as ")
    sign_in(client, make_user(Role.ADMIN))
    listing = client.get("/admin/outbox").get_data(as_text=True)
    assert world["number"] in listing and "sent" in listing and CUSTOMER in listing
    one = client.get(f"/admin/outbox/mails/{outbox_id}").get_data(as_text=True)
    assert "Please update the client to 5.2." in one and "report.pdf" in one
    assert "Ada Agent via Desk Support" in one


def test_internal_notes_never_leave(app: Flask, smtp_sink: SmtpSink) -> None:
    use_smtp(app, smtp_sink)
    world = make_world(app)
    with app.app_context():
        agent = db.session.get(User, world["agent_id"])
        answer(
            db.session.get(Ticket, world["ticket_id"]), Actor.staff(agent), "secret", internal=True
        )
        db.session.commit()
        assert db.session.scalar(select(OutboxMessage)) is None
    run_jobs(app)
    assert smtp_sink.messages == []


def test_a_bounced_address_is_skipped_with_a_warning_on_the_ticket(
    app: Flask, client: Any, smtp_sink: SmtpSink, make_user: Any
) -> None:
    from app.models.types import utcnow

    use_smtp(app, smtp_sink)
    world = make_world(app)
    with app.app_context():
        db.session.add(
            Contact(
                name="Cecil",
                email=COLLEAGUE,
                mail_bounced_at=utcnow(),
                mail_bounce_reason="5.1.1 user unknown",
            )
        )
        db.session.commit()
    outbox_id = reply(app, world)
    run_jobs(app)
    assert COLLEAGUE not in by_rcpt(smtp_sink.wait_for(3))
    assert COLLEAGUE not in row(app, outbox_id)["recipients"]
    with app.app_context():
        warning = db.session.scalar(
            select(StreamEntry)
            .where(StreamEntry.kind == EntryKind.SYSTEM.value)
            .order_by(StreamEntry.id.desc())
        )
        assert COLLEAGUE in warning.body_text and "5.1.1 user unknown" in warning.body_text
    sign_in(client, make_user(Role.AGENT))
    page = client.get(f"/agent/tickets/{world['number']}").get_data(as_text=True)
    assert "Not mailed to an address that bounces" in page
    panel = client.get(f"/agent/tickets/{world['number']}/recipients").get_data(as_text=True)
    assert "Bounces: replies skip it" in panel and 'title="5.1.1 user unknown"' in panel


def test_mark_bounced_flags_the_contact_and_puts_the_ticket_in_the_inbox(
    app: Flask, smtp_sink: SmtpSink
) -> None:
    from app.mail.bounces import mark_bounced

    use_smtp(app, smtp_sink)
    world = make_world(app)
    outbox_id = reply(app, world)
    run_jobs(app)
    message_id = row(app, outbox_id)["message_id"]
    with app.app_context():
        ticket = db.session.get(Ticket, world["ticket_id"])
        ticket.in_inbox = False
        db.session.commit()
        assert mark_bounced("<nobody@desk.test>", CUSTOMER, "x") is None
        marked = mark_bounced(message_id.strip("<>"), CUSTOMER.upper(), "550 5.1.1 mailbox gone")
        db.session.commit()
        assert marked is not None and marked.status == "bounced"
        contact = db.session.scalar(select(Contact).where(Contact.email == CUSTOMER))
        assert contact.mail_bounced_at is not None
        assert contact.mail_bounce_reason == "550 5.1.1 mailbox gone"
        ticket = db.session.get(Ticket, world["ticket_id"])
        assert ticket.in_inbox
        note = ticket.entries[-1]
        assert note.is_internal and CUSTOMER in note.body_text and "mailbox gone" in note.body_text
        statuses = {
            d.address: d.status
            for d in db.session.scalars(
                select(OutboxRecipient).where(OutboxRecipient.message_id == outbox_id)
            )
        }
        assert statuses[CUSTOMER] == "bounced" and statuses[COLLEAGUE] == "sent"


@pytest.mark.parametrize("manager", [True, False])
def test_distribution_of_a_customer_mail_to_staff(
    app: Flask, smtp_sink: SmtpSink, manager: bool
) -> None:
    from app.mail.outbound import queue_distribution

    use_smtp(app, smtp_sink)
    world = make_world(app)
    with app.app_context():
        ticket = db.session.get(Ticket, world["ticket_id"])
        if manager:
            ticket.assignee = db.session.get(User, world["agent_id"])
        entry = StreamEntry(
            ticket=ticket,
            kind=EntryKind.MAIL_IN.value,
            visibility="external",
            author_name="Nora Customer",
            body_text="It is still broken.",
            data={"message_id": "<still-broken@customer.test>"},
        )
        db.session.add(entry)
        db.session.flush()
        queue_distribution(ticket, entry)
        db.session.commit()
    run_jobs(app)
    copies = by_rcpt(smtp_sink.wait_for(2))
    assert set(copies) == {world["agent_email"], world["colleague_email"]}
    mail = copies[world["agent_email"]]
    if manager:
        assert world["agent_email"] in mail["To"] and world["colleague_email"] in mail["Cc"]
        assert world["agent_email"] not in mail["Cc"]
    else:
        assert mail["To"] is None  # no manager: everybody in Cc
        assert world["agent_email"] in mail["Cc"] and world["colleague_email"] in mail["Cc"]
    assert mail["Auto-Submitted"] == "auto-generated"
    assert mail["In-Reply-To"] == "<still-broken@customer.test>"
    assert CUSTOMER not in set(copies)
    text = mail.get_body(("plain",)).get_content()
    assert "It is still broken." in text and f"/agent/tickets/{world['number']}" in text


def test_the_sender_name_follows_the_configured_form(app: Flask) -> None:
    from app.mail.outbound import sender_name

    with app.app_context():
        identity = SenderIdentity(address="billing@desk.test", name="Billing")
        assert sender_name("Ada Agent", identity) == "Ada Agent via Billing"
        app.config["MAIL_FROM_NAME_FORMAT"] = "{identity} ({agent})"
        assert sender_name("Ada Agent", identity) == "Billing (Ada Agent)"
        app.config["MAIL_FROM_NAME_FORMAT"] = "{nonsense}"  # a typo never stops the mail
        assert sender_name("Ada Agent", identity) == "Ada Agent via Billing"
        assert sender_name(None, identity) == "Billing"  # automatic mail: the identity
