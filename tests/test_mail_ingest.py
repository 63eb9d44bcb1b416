"""Filing received mail: what agents and customers notice after a message arrives."""

from __future__ import annotations

import time
from datetime import timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select, update

from app.actor import Actor
from app.errors import InvalidInput
from app.extensions import db
from app.files.store import get_vault
from app.jobs import queue
from app.mail import held, ingest
from app.mail.ingest import file_batch, file_message
from app.models import Role
from app.models.audit import AuditLog
from app.models.files import FileKind, VaultFile
from app.models.inbound import InboundMail, Mailbox, MailOutcome, MailSource
from app.models.mail import OutboxMessage, SenderIdentity
from app.models.people import Contact, User
from app.models.tickets import EntryKind, LinkKind, Status, StreamEntry, Ticket
from app.models.types import utcnow
from app.tickets.changes import linked_tickets
from app.tickets.inbox import is_unread
from tests import factories

SUPPORT = "support@desk.test"


def mail(
    sender: str = "ann@customer.test",
    subject: str = "Printer on fire",
    body: str = "It is on fire.",
    *,
    to: str = SUPPORT,
    cc: str | None = None,
    message_id: str | None = "auto",
    in_reply_to: str | None = None,
    headers: dict[str, str] | None = None,
    attachments: list[tuple[str, str, bytes]] = (),
    html: str | None = None,
) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    if cc:
        msg["Cc"] = cc
    msg["Subject"] = subject
    msg["Date"] = format_datetime(utcnow())
    if message_id == "auto":
        msg["Message-ID"] = make_msgid(domain="customer.test")
    elif message_id:
        msg["Message-ID"] = message_id
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
        msg["References"] = in_reply_to
    for name, value in (headers or {}).items():
        msg[name] = value
    msg.set_content(body)
    if html:
        msg.add_alternative(html, subtype="html")
    for name, ctype, data in attachments:
        main, sub = ctype.split("/")
        msg.add_attachment(data, maintype=main, subtype=sub, filename=name)
    return msg.as_bytes()


@pytest.fixture
def desk(ctx: None) -> Mailbox:
    identity = SenderIdentity(address=SUPPORT, name="Support", is_default=True)
    box = Mailbox(
        name="Support", address=SUPPORT, host="imap.test", username="s", identity=identity
    )
    db.session.add_all([identity, box])
    db.session.commit()
    return box


def row(inbound_id: int | None) -> InboundMail:
    found = db.session.get(InboundMail, inbound_id)
    assert found is not None
    return found


def ticket_of(number: str | None) -> Ticket:
    ticket = db.session.execute(select(Ticket).where(Ticket.number == number)).scalar_one()
    return ticket


def entries(ticket: Ticket) -> list[StreamEntry]:
    return list(
        db.session.execute(
            select(StreamEntry).where(StreamEntry.ticket_id == ticket.id).order_by(StreamEntry.id)
        ).scalars()
    )


def test_new_mail_from_a_stranger_opens_an_unassigned_ticket_with_its_files(
    desk: Mailbox, app: Flask
) -> None:
    raw = mail(
        "Ann Example <Ann@Customer.test>",
        "Re: AW: Fwd: Printer on fire",
        attachments=[
            ("log.txt", "text/plain", b"line 1\n"),
            ("photo.png", "image/png", b"\x89PNG"),
        ],
    )
    filed = file_message(raw, source=MailSource.PIPE, mailbox=desk, source_ref="stdin")
    assert filed.outcome is MailOutcome.CREATED
    assert filed.subject == "Printer on fire"
    assert filed.from_address == "ann@customer.test"
    assert sorted(filed.attachments) == ["log.txt", "photo.png"]
    ticket = ticket_of(filed.ticket_number)
    assert ticket.subject == "Printer on fire" and ticket.assignee_id is None
    assert ticket.channel == "mail" and ticket.in_inbox
    contact = ticket.contact
    assert contact is not None and contact.email == "ann@customer.test"
    assert not contact.verified and contact.name == "Ann Example"
    (entry,) = entries(ticket)
    assert entry.kind == EntryKind.MAIL_IN.value and entry.visibility == "external"
    assert entry.body_text.strip() == "It is on fire."
    assert entry.data["from"] == "ann@customer.test" and entry.data["to"] == [SUPPORT]
    assert entry.data["message_id"] and entry.data["subject"] == "Re: AW: Fwd: Printer on fire"
    assert sorted(f.display_name for f in entry.attachments) == ["log.txt", "photo.png"]
    assert {f.kind for f in entry.attachments} == {FileKind.ATTACHMENT.value}
    inbound = row(filed.inbound_id)
    assert inbound.outcome == "created" and inbound.ticket_id == ticket.id
    assert inbound.entry_id == entry.id and inbound.mailbox_id == desk.id
    assert inbound.source_ref == "stdin" and inbound.details["to"] == [SUPPORT]
    assert sorted(inbound.details["attachments"]) == ["log.txt", "photo.png"]
    # The original is kept whole, encrypted, as its own kind, attached to no entry.
    original = inbound.raw_file
    assert original is not None and original.kind == FileKind.MAIL_ORIGINAL.value
    assert original.entry_id is None and original.ticket_id is None
    assert b"".join(get_vault().open(original.blob_id)) == raw
    blob_dir = Path(app.config["VAULT_DIR"])
    on_disk = b"".join(p.read_bytes() for p in blob_dir.rglob("*") if p.is_file())
    assert b"It is on fire." not in on_disk


def test_jobs_are_enqueued_after_commit_for_new_tickets(desk: Mailbox, app: Flask) -> None:
    ai_before, mail_before = queue("ai").count, queue("mail").count
    filed = file_message(mail(), source=MailSource.PIPE, mailbox=desk)
    ticket = ticket_of(filed.ticket_number)
    ai_jobs = [queue("ai").fetch_job(j) for j in queue("ai").job_ids]
    assert queue("ai").count == ai_before + 1 and queue("mail").count == mail_before + 1
    assert ai_jobs[-1].func_name == "app.jobs.ai.classify_ticket"
    assert ai_jobs[-1].args == (ticket.id,)
    # A reply classifies again but sends no second acknowledgement.
    file_message(
        mail(subject=f"Re: [#{filed.ticket_number}] Printer"), source=MailSource.PIPE, mailbox=desk
    )
    assert queue("ai").count == ai_before + 2 and queue("mail").count == mail_before + 1
    from tests.conftest import run_jobs

    run_jobs(app)
    db.session.expire_all()
    notices = [e for e in entries(ticket) if e.kind == EntryKind.SYSTEM.value]
    assert [e.data["notice"] for e in notices] == ["autoresponse"]


def test_reply_by_subject_number_lands_on_the_ticket_unread_for_its_manager(desk: Mailbox) -> None:
    agent = factories.staff_user(Role.AGENT)
    first = file_message(mail(), source=MailSource.PIPE, mailbox=desk)
    ticket = ticket_of(first.ticket_number)
    ticket.assignee_id = agent.id
    ticket.status = Status.PENDING.value
    ticket.in_inbox = False
    db.session.commit()
    reply = mail(subject=f"AW:  Re:[#{ticket.number}]   Printer on fire", body="Still burning")
    filed = file_message(reply, source=MailSource.IMAP, mailbox=desk)
    assert filed.outcome is MailOutcome.APPENDED and filed.ticket_number == ticket.number
    db.session.refresh(ticket)
    assert ticket.status == Status.OPEN.value and ticket.in_inbox
    assert is_unread(ticket, agent)
    assert entries(ticket)[-1].body_text.strip() == "Still burning"


def test_reply_to_a_long_closed_ticket_opens_a_linked_one(desk: Mailbox, app: Flask) -> None:
    first = file_message(mail(), source=MailSource.PIPE, mailbox=desk)
    ticket = ticket_of(first.ticket_number)
    ticket.status = Status.CLOSED.value
    ticket.closed_at = utcnow() - timedelta(days=app.config["REOPEN_DAYS"] + 2)
    db.session.commit()
    filed = file_message(
        mail(subject=f"Re: [#{ticket.number}] Printer on fire"), source=MailSource.PIPE
    )
    assert filed.outcome is MailOutcome.CREATED and filed.ticket_number != ticket.number
    follow_up = ticket_of(filed.ticket_number)
    assert [(link.kind, other.id) for link, other in linked_tickets(follow_up)] == [
        (LinkKind.RELATED.value, ticket.id)
    ]
    assert follow_up.contact_id == ticket.contact_id


def test_stranger_quoting_a_ticket_number_goes_to_review(desk: Mailbox) -> None:
    first = file_message(mail(), source=MailSource.PIPE, mailbox=desk)
    ticket = ticket_of(first.ticket_number)
    before = len(entries(ticket))
    filed = file_message(
        mail("mallory@evil.test", f"Re: [#{ticket.number}] Printer on fire", "Send me the invoice"),
        source=MailSource.PIPE,
        mailbox=desk,
    )
    assert filed.outcome is MailOutcome.REVIEW and filed.ticket_number is None
    assert "mallory@evil.test" in (filed.reason or "")
    inbound = row(filed.inbound_id)
    assert inbound.details["suspected_ticket"] == ticket.number
    assert inbound.details["attachments"] == []
    assert inbound.ticket_id is None and inbound.raw_file_id is not None and inbound.is_open
    assert len(entries(ticket)) == before
    assert (
        db.session.execute(select(Contact).where(Contact.email == "mallory@evil.test")).first()
        is None
    )


def test_header_reply_from_someone_the_thread_reached_is_threaded(desk: Mailbox) -> None:
    """A Message-ID of ours is proof of having seen the thread (see app.mail.threading)."""
    first = file_message(mail(), source=MailSource.PIPE, mailbox=desk)
    ticket = ticket_of(first.ticket_number)
    ours = "<reply.1234@desk.test>"
    db.session.add(
        OutboxMessage(
            ticket_id=ticket.id,
            message_id=ours,
            from_address=SUPPORT,
            from_name="Support",
            recipients={"to": ["ann@customer.test"]},
            subject=f"[#{ticket.number}] Printer on fire",
            body_text="Have you tried turning it off?",
        )
    )
    db.session.commit()
    filed = file_message(
        mail("colleague@customer.test", "Re: your printer", in_reply_to=ours),
        source=MailSource.PIPE,
        mailbox=desk,
    )
    assert filed.outcome is MailOutcome.APPENDED and filed.ticket_number == ticket.number
    # ... also when it quotes the number: the headers vouch for the sender.
    filed = file_message(
        mail("colleague@customer.test", f"Re: [#{ticket.number}] x", in_reply_to=ours),
        source=MailSource.PIPE,
        mailbox=desk,
    )
    assert filed.outcome is MailOutcome.APPENDED
    # A reply to the customer's own first mail threads the same way.
    first_id = row(first.inbound_id).message_id
    filed = file_message(
        mail("boss@customer.test", "Re: Printer on fire", in_reply_to=f"<{first_id}>"),
        source=MailSource.PIPE,
        mailbox=desk,
    )
    assert filed.ticket_number == ticket.number


def test_a_ccd_customer_becomes_a_recipient_and_their_reply_is_threaded(desk: Mailbox) -> None:
    first = file_message(
        mail(cc="Bob <bob@customer.test>, support2@desk.test"), source=MailSource.PIPE, mailbox=desk
    )
    ticket = ticket_of(first.ticket_number)
    assert {(r.address, r.kind) for r in ticket.recipients} == {
        ("ann@customer.test", "to"),
        ("bob@customer.test", "cc"),
        ("support2@desk.test", "cc"),  # not one of ours: no mailbox or identity has it
    }
    filed = file_message(
        mail("bob@customer.test", f"Re: [#{ticket.number}] Printer on fire", message_id=None),
        source=MailSource.PIPE,
        mailbox=desk,
    )
    assert filed.outcome is MailOutcome.APPENDED and filed.ticket_number == ticket.number
    assert ticket_of(ticket.number).contact.email == "ann@customer.test"


def test_a_reply_that_had_us_in_bcc_never_changes_the_customer(desk: Mailbox, app: Flask) -> None:
    first = file_message(mail(cc="bob@customer.test"), source=MailSource.PIPE, mailbox=desk)
    ticket = ticket_of(first.ticket_number)
    ticket.status = Status.CLOSED.value
    ticket.closed_at = utcnow() - timedelta(days=app.config["REOPEN_DAYS"] + 2)
    db.session.commit()
    recipients_before = {r.address for r in ticket.recipients}
    # Bob writes to someone else and puts the desk in Bcc (we are in neither To nor Cc).
    filed = file_message(
        mail(
            "bob@customer.test",
            f"Re: [#{ticket.number}] Printer on fire",
            to="carol@other.test",
            cc="dave@other.test",
        ),
        source=MailSource.PIPE,
        mailbox=desk,
    )
    assert filed.outcome is MailOutcome.CREATED
    follow_up = ticket_of(filed.ticket_number)
    assert follow_up.contact_id == ticket.contact_id  # still Ann's, not Bob's
    assert "carol@other.test" not in {r.address for r in follow_up.recipients}
    assert "dave@other.test" not in {r.address for r in follow_up.recipients}
    db.session.refresh(ticket)
    assert {r.address for r in ticket.recipients} == recipients_before


def test_one_message_reaching_two_mailboxes_is_filed_once(desk: Mailbox) -> None:
    other = Mailbox(name="Sales", address="sales@desk.test", host="imap.test", username="x")
    db.session.add(other)
    db.session.commit()
    raw = mail(to=f"{SUPPORT}, sales@desk.test")
    first = file_message(raw, source=MailSource.IMAP, mailbox=desk, source_ref="uid 7")
    again = file_message(raw, source=MailSource.IMAP, mailbox=other, source_ref="uid 3")
    assert first.outcome is MailOutcome.CREATED
    assert again.outcome is MailOutcome.DUPLICATE and again.inbound_id is None
    assert again.ticket_number == first.ticket_number
    assert db.session.execute(select(func.count(InboundMail.id))).scalar_one() == 1
    assert db.session.execute(select(func.count(Ticket.id))).scalar_one() == 1
    originals = db.session.execute(
        select(func.count(VaultFile.id)).where(VaultFile.kind == FileKind.MAIL_ORIGINAL.value)
    ).scalar_one()
    assert originals == 1


def test_the_same_bytes_without_message_id_are_a_duplicate(desk: Mailbox) -> None:
    raw = mail(message_id=None)
    outcomes = [o.outcome for o in file_batch([(raw, "a"), (raw, "b")], source=MailSource.IMPORT)]
    assert outcomes == [MailOutcome.CREATED, MailOutcome.DUPLICATE]
    assert db.session.execute(select(InboundMail.dedupe_key)).scalar_one().startswith("sha:")


def test_employee_mail_to_the_desk_is_distributed_cc_is_only_filed(desk: Mailbox) -> None:
    agent = factories.staff_user(Role.AGENT)
    db.session.commit()
    first = file_message(mail(), source=MailSource.PIPE, mailbox=desk)
    number = first.ticket_number
    sent = file_message(
        mail(agent.email, f"Re: [#{number}] Printer", "We are on our way."),
        source=MailSource.PIPE,
        mailbox=desk,
    )
    assert sent.outcome is MailOutcome.APPENDED
    ticket = ticket_of(number)
    (staff_entry,) = [e for e in entries(ticket) if e.kind == EntryKind.MAIL_OUT.value]
    assert staff_entry.author_id == agent.id
    # Answering an unmanaged ticket, by mail as in the browser, makes the agent its manager.
    assert ticket.assignee_id == agent.id
    (outbox,) = db.session.execute(select(OutboxMessage)).scalars()
    assert outbox.entry_id == staff_entry.id and "We are on our way." in outbox.body_text
    # Cc to the desk: the customer already has it; filed, not sent again.
    cc_only = file_message(
        mail(
            agent.email,
            f"Re: [#{number}] Printer",
            "Told them by phone.",
            to="ann@customer.test",
            cc=SUPPORT,
        ),
        source=MailSource.PIPE,
        mailbox=desk,
    )
    assert cc_only.outcome is MailOutcome.APPENDED and "without sending" in (cc_only.reason or "")
    assert db.session.execute(select(func.count(OutboxMessage.id))).scalar_one() == 1
    last = entries(ticket)[-1]
    assert last.author_id == agent.id and last.body_text.strip() == "Told them by phone."
    # No customer entry: staff mail does not put the ticket in the inbox as unread.
    assert row(cc_only.inbound_id).ticket_id == ticket.id


def test_employee_mail_naming_no_ticket_waits_for_review(desk: Mailbox) -> None:
    agent = factories.staff_user(Role.AGENT)
    db.session.commit()
    filed = file_message(mail(agent.email, "Lunch?"), source=MailSource.PIPE, mailbox=desk)
    assert filed.outcome is MailOutcome.REVIEW
    assert db.session.execute(select(func.count(Ticket.id))).scalar_one() == 0


def test_out_of_office_about_nothing_opens_no_ticket(desk: Mailbox) -> None:
    ai_before, mail_before = queue("ai").count, queue("mail").count
    filed = file_message(
        mail(
            "away@customer.test",
            "Out of Office: Printer on fire",
            "I am away until Monday.",
            headers={"Auto-Submitted": "auto-replied"},
        ),
        source=MailSource.PIPE,
        mailbox=desk,
    )
    assert filed.outcome is MailOutcome.IGNORED
    inbound = row(filed.inbound_id)
    assert inbound.robot == "auto_reply" and inbound.raw_file_id is not None
    assert db.session.execute(select(func.count(Ticket.id))).scalar_one() == 0
    assert (queue("ai").count, queue("mail").count) == (ai_before, mail_before)


def test_out_of_office_on_a_ticket_is_filed_internally_without_notifying(desk: Mailbox) -> None:
    first = file_message(mail(), source=MailSource.PIPE, mailbox=desk)
    ticket = ticket_of(first.ticket_number)
    ticket.in_inbox = False
    db.session.commit()
    ai_before = queue("ai").count
    filed = file_message(
        mail(
            subject=f"Automatic reply: [#{ticket.number}] Printer",
            headers={"Auto-Submitted": "auto-replied"},
        ),
        source=MailSource.PIPE,
        mailbox=desk,
    )
    assert filed.outcome is MailOutcome.APPENDED
    last = entries(ticket)[-1]
    assert last.visibility == "internal" and last.data["robot"]["kind"] == "auto_reply"
    db.session.refresh(ticket)
    assert not ticket.in_inbox and queue("ai").count == ai_before


def test_bounce_is_filed_on_its_ticket_and_flags_the_contact(desk: Mailbox) -> None:
    first = file_message(mail(), source=MailSource.PIPE, mailbox=desk)
    ticket = ticket_of(first.ticket_number)
    ours = "<answer.99@desk.test>"
    db.session.add(
        OutboxMessage(
            ticket_id=ticket.id,
            message_id=ours,
            from_address=SUPPORT,
            from_name="Support",
            recipients={"to": ["ann@customer.test"]},
            subject="x",
            body_text="y",
        )
    )
    db.session.commit()
    dsn = (
        "From: Mail Delivery System <MAILER-DAEMON@mx.customer.test>\r\n"
        f"To: {SUPPORT}\r\nSubject: Undelivered Mail Returned to Sender\r\n"
        "Message-ID: <bounce.1@mx.customer.test>\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
        "--B\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n"
        "--B\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.customer.test\r\n\r\n"
        "Final-Recipient: rfc822; ann@customer.test\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        "Diagnostic-Code: smtp; 550 5.1.1 user unknown\r\n"
        "--B\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"From: {SUPPORT}\r\nTo: ann@customer.test\r\nMessage-ID: {ours}\r\nSubject: x\r\n"
        "--B--\r\n"
    ).encode()
    filed = file_message(dsn, source=MailSource.PIPE, mailbox=desk)
    assert filed.outcome is MailOutcome.APPENDED and filed.ticket_number == ticket.number
    assert row(filed.inbound_id).robot == "bounce"
    last = entries(ticket)[-1]
    assert last.visibility == "internal" and last.data["robot"]["recipients"] == [
        "ann@customer.test"
    ]
    contact = ticket_of(ticket.number).contact
    db.session.refresh(contact)
    assert contact.mail_bounced_at is not None and "user unknown" in contact.mail_bounce_reason
    # Our own copy is marked bounced and the ticket is back in front of the agents.
    sent = db.session.scalar(select(OutboxMessage).where(OutboxMessage.message_id == ours))
    assert sent.status == "bounced" and "ann@customer.test" in sent.last_error
    assert ticket_of(ticket.number).in_inbox


def test_customer_mail_on_a_worked_ticket_is_passed_on_to_its_manager(desk: Mailbox) -> None:
    first = file_message(mail(), source=MailSource.PIPE, mailbox=desk)
    ticket = ticket_of(first.ticket_number)
    agent = factories.staff_user(Role.AGENT)
    ticket.assignee = agent
    db.session.commit()
    reply = mail(subject=f"Re: [#{ticket.number}] Printer on fire", body="Still burning.")
    filed = file_message(reply, source=MailSource.PIPE, mailbox=desk)
    assert filed.outcome is MailOutcome.APPENDED
    copies = db.session.scalars(
        select(OutboxMessage).where(OutboxMessage.ticket_id == ticket.id)
    ).all()
    assert len(copies) == 1, "one copy of the customer's mail for the ticket's staff"
    copy = copies[0]
    assert copy.recipients["to"] == [agent.email.lower()]
    assert copy.auto_submitted == "auto-generated" and "Still burning." in copy.body_text
    assert copy.in_reply_to and copy.in_reply_to.strip("<>") in reply.decode()
    # The first mail opened the ticket with nobody on it: nothing was passed on then.


def test_mail_from_our_own_address_is_ignored(desk: Mailbox) -> None:
    filed = file_message(mail(SUPPORT, "Loop?"), source=MailSource.PIPE, mailbox=desk)
    assert filed.outcome is MailOutcome.IGNORED and row(filed.inbound_id).robot == "own"


def test_a_sender_over_the_hourly_limit_is_quarantined(desk: Mailbox, app: Flask) -> None:
    app.config["MAIL_SENDER_LIMIT_PER_HOUR"] = 3
    outcomes = [
        file_message(mail(subject=f"spam {i}"), source=MailSource.PIPE, mailbox=desk).outcome
        for i in range(5)
    ]
    assert outcomes[:3] == [MailOutcome.CREATED] * 3
    assert outcomes[3:] == [MailOutcome.QUARANTINED] * 2
    held = (
        db.session.execute(select(InboundMail).where(InboundMail.outcome == "quarantined"))
        .scalars()
        .all()
    )
    assert all("throttled" in h.reason and h.raw_file_id for h in held)
    # Other senders are not affected.
    assert file_message(mail("zoe@customer.test"), source=MailSource.PIPE).outcome is (
        MailOutcome.CREATED
    )


def test_unreadable_bytes_are_quarantined_with_the_original(desk: Mailbox) -> None:
    raw = b"\x00\x01garbage that is no mail\xff" * 10
    filed = file_message(raw, source=MailSource.PIPE, mailbox=desk)
    assert filed.outcome is MailOutcome.QUARANTINED and "unreadable" in filed.reason
    inbound = row(filed.inbound_id)
    assert b"".join(get_vault().open(inbound.raw_file.blob_id)) == raw


def test_a_failure_while_filing_quarantines_and_keeps_the_original(
    desk: Mailbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(ingest, "store_parts", refuse)
    raw = mail(attachments=[("a.pdf", "application/pdf", b"%PDF-1.4")])
    filed = file_message(raw, source=MailSource.PIPE, mailbox=desk)
    assert filed.outcome is MailOutcome.QUARANTINED and "disk full" in filed.reason
    inbound = row(filed.inbound_id)
    assert inbound.raw_file_id is not None
    # Nothing half-made stays behind: no ticket, no contact from the rolled-back savepoint.
    assert db.session.execute(select(func.count(Ticket.id))).scalar_one() == 0
    assert db.session.execute(select(func.count(Contact.id))).scalar_one() == 0


def test_a_batch_keeps_going_past_bad_messages(desk: Mailbox) -> None:
    items = [(mail(subject=f"n{i}"), f"m{i}") for i in range(3)]
    items.insert(1, (b"\xff\xfe", "bad"))
    results = file_batch(items, source=MailSource.IMPORT, mailbox=desk)
    assert [r.outcome for r in results] == [
        MailOutcome.CREATED,
        MailOutcome.QUARANTINED,
        MailOutcome.CREATED,
        MailOutcome.CREATED,
    ]
    assert db.session.execute(select(func.count(InboundMail.id))).scalar_one() == 4


def test_staff_mail_reaching_us_by_bcc_is_filed_not_sent(desk: Mailbox) -> None:
    """A staff member's mail reaching the desk by Bcc is filed but never sent."""
    agent = factories.staff_user(Role.AGENT)
    db.session.commit()
    first = file_message(mail(), source=MailSource.PIPE, mailbox=desk)
    filed = file_message(
        mail(agent.email, f"Re: [#{first.ticket_number}] x", "fyi", to="ann@customer.test"),
        source=MailSource.PIPE,
        mailbox=desk,
    )
    assert filed.outcome is MailOutcome.APPENDED and "bcc" in (filed.reason or "")
    assert db.session.execute(select(func.count(OutboxMessage.id))).scalar_one() == 0


def test_html_mail_is_stored_sanitised_with_inline_images_from_the_vault(desk: Mailbox) -> None:
    msg = EmailMessage()
    msg["From"] = "ann@customer.test"
    msg["To"] = SUPPORT
    msg["Subject"] = "Screenshot"
    msg["Message-ID"] = make_msgid()
    msg.set_content("See the screenshot.")
    msg.add_alternative(
        '<p onclick="steal()">See <img src="cid:shot@ann"> and '
        '<img src="https://tracker.example/pixel.gif"></p><script>alert(1)</script>'
        '<a href="javascript:alert(2)">x</a>',
        subtype="html",
    )
    msg.get_payload()[1].add_related(
        b"\x89PNG\r\n\x1a\nfake", maintype="image", subtype="png", cid="<shot@ann>"
    )
    filed = file_message(msg.as_bytes(), source=MailSource.PIPE, mailbox=desk)
    assert filed.outcome is MailOutcome.CREATED and filed.attachments == []
    (entry,) = entries(ticket_of(filed.ticket_number))
    (image,) = entry.attachments
    assert image.kind == FileKind.INLINE.value
    assert entry.data["inline"] == {"shot@ann": image.public_id}
    assert entry.data["remote_images"] is True
    html = entry.body_html or ""
    assert f'data-vd-inline="{image.public_id}"' in html
    for bad in ("<script", "onclick", "javascript:", "src="):
        assert bad not in html
    assert 'data-vd-remote="https://tracker.example/pixel.gif"' in html  # inert until asked
    assert entry.body_text.strip() == "See the screenshot."


# --- held mail: review, quarantine, ignored ---------------------------------------------


def _review_case(desk: Mailbox) -> tuple[Ticket, InboundMail, bytes]:
    first = file_message(mail(), source=MailSource.PIPE, mailbox=desk)
    ticket = ticket_of(first.ticket_number)
    raw = mail(
        "newcolleague@customer.test",
        f"Re: [#{ticket.number}] Printer on fire",
        "I took over from Ann.",
        attachments=[("report.pdf", "application/pdf", b"%PDF-1.4 report")],
    )
    filed = file_message(raw, source=MailSource.PIPE, mailbox=desk)
    assert filed.outcome is MailOutcome.REVIEW
    return ticket, row(filed.inbound_id), raw


def test_an_agent_files_a_reviewed_mail_on_the_ticket(desk: Mailbox) -> None:
    agent = factories.staff_user(Role.AGENT)
    db.session.commit()
    ticket, inbound, raw = _review_case(desk)
    assert held.original_bytes(inbound) == raw
    assert inbound.details["attachments"] == ["report.pdf"]  # named, not yet stored
    filed = held.file_on(inbound, ticket, Actor.staff(agent))
    db.session.commit()
    assert filed.outcome is MailOutcome.APPENDED and filed.ticket_number == ticket.number
    assert filed.attachments == ["report.pdf"]
    last = entries(ticket)[-1]
    assert last.body_text.strip() == "I took over from Ann."
    assert [f.display_name for f in last.attachments] == ["report.pdf"]
    db.session.refresh(inbound)
    assert inbound.decision == "attached" and inbound.decided_by_id == agent.id
    assert inbound.decided_at is not None and inbound.ticket_id == ticket.id
    assert inbound.entry_id == last.id and not inbound.is_open
    logged = db.session.execute(
        select(AuditLog).where(AuditLog.action == "mail.file_on")
    ).scalar_one()
    assert logged.ticket_id == ticket.id and logged.actor_id == agent.id
    with pytest.raises(held.AlreadyDecided):
        held.new_ticket(inbound, Actor.staff(agent))


def test_an_agent_makes_a_reviewed_mail_a_new_ticket(desk: Mailbox) -> None:
    agent = factories.staff_user(Role.AGENT)
    db.session.commit()
    ticket, inbound, _ = _review_case(desk)
    filed = held.new_ticket(inbound, Actor.staff(agent))
    db.session.commit()
    assert filed.outcome is MailOutcome.CREATED and filed.ticket_number != ticket.number
    new = ticket_of(filed.ticket_number)
    assert new.contact.email == "newcolleague@customer.test" and not new.contact.verified
    assert new.subject == "Printer on fire"
    db.session.refresh(inbound)
    assert inbound.decision == "new_ticket"


def test_discarding_needs_a_reason_and_keeps_the_original(desk: Mailbox) -> None:
    agent = factories.staff_user(Role.AGENT)
    db.session.commit()
    _, inbound, raw = _review_case(desk)
    with pytest.raises(InvalidInput):
        held.discard(inbound, Actor.staff(agent), "   ")
    held.discard(inbound, Actor.staff(agent), "Phishing attempt")
    db.session.commit()
    db.session.refresh(inbound)
    assert inbound.decision == "discarded" and inbound.decision_reason == "Phishing attempt"
    assert held.original_bytes(inbound) == raw
    with pytest.raises(held.AlreadyDecided):
        held.discard(inbound, Actor.staff(agent), "twice")


def test_retry_files_a_throttled_mail_and_leaves_an_unreadable_one_held(
    desk: Mailbox, app: Flask
) -> None:
    admin = factories.staff_user(Role.ADMIN)
    db.session.commit()
    app.config["MAIL_SENDER_LIMIT_PER_HOUR"] = 1
    file_message(mail(subject="one"), source=MailSource.PIPE, mailbox=desk)
    throttled = file_message(mail(subject="two"), source=MailSource.PIPE, mailbox=desk)
    assert throttled.outcome is MailOutcome.QUARANTINED
    inbound = row(throttled.inbound_id)
    filed = held.retry(inbound, Actor.staff(admin))
    db.session.commit()
    assert filed.outcome is MailOutcome.CREATED and filed.ticket_number
    db.session.refresh(inbound)
    assert inbound.decision == "retried" and inbound.outcome == "created"
    broken = file_message(b"\x00\x01 not mail", source=MailSource.PIPE, mailbox=desk)
    inbound = row(broken.inbound_id)
    again = held.retry(inbound, Actor.staff(admin))
    db.session.commit()
    assert again.outcome is MailOutcome.QUARANTINED
    db.session.refresh(inbound)
    assert inbound.is_open
    with pytest.raises(InvalidInput):
        held.new_ticket(inbound, Actor.staff(admin))


def test_jobs_of_a_batch_reach_redis_only_with_its_commit(desk: Mailbox) -> None:
    """Each message runs in a savepoint; releasing one must not hand jobs to RQ early."""
    before = queue("ai").count
    context = ingest.Context.load(MailSource.IMPORT, desk)
    for i in range(3):
        ingest.file_one(mail(subject=f"batch {i}"), context)
        assert queue("ai").count == before  # nothing committed yet, nothing enqueued
    db.session.commit()
    assert queue("ai").count == before + 3
    job = queue("ai").fetch_job(queue("ai").job_ids[-1])
    assert job.func_name == "app.jobs.ai.classify_ticket" and job.retries_left == 2


_NOT_MAIL = ("licen", "copying", "readme", "sources")


def test_every_real_message_in_the_corpora_is_filed_or_held_with_a_reason(desk: Mailbox) -> None:
    """About a thousand real messages (tests/data/mail, with their licences): none raises."""
    from app.mail.sources import batches, iter_messages

    folder = Path(__file__).parent / "data" / "mail"
    files = [
        p
        for p in sorted(folder.rglob("*"))
        if p.is_file()
        and p.suffix.lower() not in (".json", ".md", ".list", ".py")
        and not p.name.lower().startswith(_NOT_MAIL)
    ]
    assert len(files) > 900
    outcomes: dict[str, int] = {}
    for batch in batches(iter_messages([str(p) for p in files])):
        for filed in file_batch([(m.raw, m.ref) for m in batch], source=MailSource.IMPORT):
            outcome = filed.outcome.value
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
            if filed.outcome in (MailOutcome.CREATED, MailOutcome.APPENDED):
                assert filed.ticket_number
            elif filed.outcome is not MailOutcome.DUPLICATE:
                assert filed.reason, filed
    # Robots (sisimai's bounces and auto-replies) open no ticket; people's mail does.
    assert outcomes["ignored"] > 500 and outcomes["created"] > 250
    # Held only for what a person would hold it for.
    reasons = db.session.execute(
        select(InboundMail.reason).where(InboundMail.outcome == "quarantined")
    ).scalars()
    assert {r.split(":")[0] for r in reasons} <= {"no sender address", "throttled", "unreadable"}
    not_filed = db.session.execute(
        select(func.count(InboundMail.id)).where(InboundMail.raw_file_id.is_(None))
    ).scalar_one()
    assert not_filed == 0


@pytest.mark.parametrize(
    ("subject", "numbers", "shown"),
    [
        ("[#T-104233] Printer", ["T-104233"], "Printer"),
        ("Re: AW: WG: [#T-104233] Re: Printer", ["T-104233"], "Printer"),
        ("SV:Fwd:  [ # t-104233 ]   Printer  on fire", ["T-104233"], "Printer on fire"),
        ("RE[2]: Re: [#T-104233] [#T-1100007] Printer", ["T-104233", "T-1100007"], "Printer"),
        ("Re: Ticket T-104233 printer", [], "Ticket T-104233 printer"),
        ("Re: [#X-104233] other system", [], "[#X-104233] other system"),
        ("Re: ", [], ""),
    ],
)
def test_subject_numbers_and_the_subject_shown(
    ctx: None, subject: str, numbers: list[str], shown: str
) -> None:
    from app.mail.threading import normalise_subject, subject_numbers

    assert subject_numbers(subject) == numbers
    assert normalise_subject(subject) == shown


def test_mail_is_kept_whole_whatever_the_upload_limit(desk: Mailbox, app: Flask) -> None:
    app.config["VAULT_MAX_UPLOAD_BYTES"] = 100  # far below this message and its file
    raw = mail(attachments=[("big.bin", "application/octet-stream", b"\x01" * 5000)])
    filed = file_message(raw, source=MailSource.PIPE, mailbox=desk)
    assert filed.outcome is MailOutcome.CREATED and filed.attachments == ["big.bin"]
    inbound = row(filed.inbound_id)
    assert inbound.raw_file.size == len(raw)
    (entry,) = entries(ticket_of(filed.ticket_number))
    assert [f.size for f in entry.attachments] == [5000]


def test_a_known_contact_gets_the_ticket_on_their_account(desk: Mailbox) -> None:
    known = factories.contact("Acme GmbH")
    db.session.commit()
    filed = file_message(
        mail(f"Someone <{known.email.upper()}>"), source=MailSource.PIPE, mailbox=desk
    )
    ticket = ticket_of(filed.ticket_number)
    assert ticket.contact_id == known.id and ticket.account_id == known.account_id
    assert known.verified
    assert db.session.execute(select(func.count(Contact.id))).scalar_one() == 1


def test_mailing_list_traffic_opens_no_ticket(desk: Mailbox) -> None:
    ai_before = queue("ai").count
    filed = file_message(
        mail(
            "newsletter@vendor.test",
            "Our spring offers",
            headers={"List-Id": "<offers.vendor.test>", "List-Unsubscribe": "<mailto:u@x.test>"},
        ),
        source=MailSource.PIPE,
        mailbox=desk,
    )
    assert filed.outcome is MailOutcome.IGNORED and row(filed.inbound_id).robot == "list"
    assert db.session.execute(select(func.count(Ticket.id))).scalar_one() == 0
    assert queue("ai").count == ai_before


def test_a_decision_taken_elsewhere_meanwhile_is_respected(desk: Mailbox, app: Flask) -> None:
    """Agent A has the review page open; agent B discards the mail; A's click files nothing."""
    agent = factories.staff_user(Role.AGENT)
    db.session.commit()
    ticket, inbound, _ = _review_case(desk)
    before = len(entries(ticket))
    other = db.engine.connect()  # agent B's request, on its own connection
    try:
        other.execute(
            update(InboundMail)
            .where(InboundMail.id == inbound.id)
            .values(decision="discarded", decided_at=utcnow(), decision_reason="spam")
        )
        other.commit()
    finally:
        other.close()
    with pytest.raises(held.AlreadyDecided):
        held.file_on(inbound, ticket, Actor.staff(agent))
    db.session.rollback()
    assert len(entries(ticket)) == before


@pytest.mark.postgres
def test_two_agents_deciding_at_once_file_the_mail_once_on_postgres(
    tmp_path: Path, redis_server: Any, postgres_database: str
) -> None:
    """A's decision is not committed yet when B clicks: B waits, then finds it decided."""
    import threading as threads

    from flask_migrate import upgrade

    from app import create_app
    from tests.conftest import base_config

    instance = tmp_path / "instance"
    instance.mkdir()
    app = create_app(base_config(instance, redis_server.url, postgres_database))
    with app.app_context():
        upgrade()
        desk = Mailbox(name="Support", address=SUPPORT, host="imap.test", username="s")
        db.session.add(desk)
        agents = [factories.staff_user(Role.AGENT) for _ in range(2)]
        db.session.commit()
        ticket, inbound, _ = _review_case(desk)
        ids = (inbound.id, ticket.id, [a.id for a in agents])
        db.session.remove()
    a_decided, b_started = threads.Event(), threads.Event()
    outcomes: dict[str, str] = {}

    def agent(name: str, index: int) -> None:
        with app.app_context():
            try:
                mail_row = db.session.get(InboundMail, ids[0])
                target = db.session.get(Ticket, ids[1])
                actor = Actor.staff(db.session.get(User, ids[2][index]))
                if name == "b":
                    a_decided.wait(10)
                    b_started.set()
                held.file_on(mail_row, target, actor)
                if name == "a":
                    a_decided.set()
                    b_started.wait(10)
                    time.sleep(0.5)  # B is now waiting on the row A holds
                db.session.commit()
                outcomes[name] = "filed"
            except held.AlreadyDecided:
                db.session.rollback()
                outcomes[name] = "already decided"
            finally:
                db.session.remove()

    workers = [threads.Thread(target=agent, args=(n, i)) for i, n in enumerate("ab")]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
    assert outcomes == {"a": "filed", "b": "already decided"}
    with app.app_context():
        filed_entries = db.session.execute(
            select(func.count(StreamEntry.id)).where(
                StreamEntry.ticket_id == ids[1], StreamEntry.body_text.contains("took over")
            )
        ).scalar_one()
        assert filed_entries == 1
        db.session.remove()
        db.engine.dispose()


@pytest.mark.postgres
def test_one_message_filed_by_two_workers_at_once_lands_once_on_postgres(
    tmp_path: Path, redis_server: Any, postgres_database: str
) -> None:
    """Two pollers fetch the same message (two mailboxes) and file it at the same moment."""
    import threading as threads

    from flask_migrate import upgrade
    from sqlalchemy import create_engine, text

    from app import create_app
    from tests.conftest import base_config

    instance = tmp_path / "instance"
    instance.mkdir()
    app = create_app(base_config(instance, redis_server.url, postgres_database))
    with app.app_context():
        upgrade()
        db.engine.dispose()
    raw = mail(to=f"{SUPPORT}, sales@desk.test")
    outcomes: list[str] = []

    def worker() -> None:
        with app.app_context():
            try:
                outcomes.append(file_message(raw, source=MailSource.IMAP).outcome.value)
            finally:
                db.session.remove()

    engine = create_engine(postgres_database)
    try:
        with engine.connect() as blocker:
            # Hold both workers inside their transactions: whoever claimed the row waits
            # for a ticket number, the other waits on the claimed dedupe key.
            blocker.execute(text("LOCK TABLE ticket_number IN EXCLUSIVE MODE"))
            workers = [threads.Thread(target=worker) for _ in range(2)]
            for w in workers:
                w.start()
            deadline = time.monotonic() + 20
            waiting = 0
            while waiting < 2 and time.monotonic() < deadline:
                with engine.connect() as probe:
                    waiting = probe.execute(
                        text(
                            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = "
                            "'Lock' AND (query ILIKE 'INSERT INTO ticket_number%' OR "
                            "query ILIKE 'INSERT INTO inbound_mail%')"
                        )
                    ).scalar_one()
                time.sleep(0.05)
            assert waiting == 2
            blocker.rollback()
        for w in workers:
            w.join(30)
    finally:
        engine.dispose()
    assert sorted(outcomes) == ["created", "duplicate"]
    with app.app_context():
        assert db.session.execute(select(func.count(Ticket.id))).scalar_one() == 1
        assert db.session.execute(select(func.count(InboundMail.id))).scalar_one() == 1
        db.session.remove()
        db.engine.dispose()
