"""Header injection through every field of an outbox row, sent to a real SMTP server.

Each field is set on the stored row as an attacker could make it arrive (a customer's
subject or name from mail-in, a Message-ID quoted from their mail), then the relay sends.
What arrives must have no extra header and no extra recipient; an address that could
carry a header is refused and nothing is sent.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from app.extensions import db
from app.mail.compose import header_text
from app.models import OutboxMessage, OutboxRecipient
from tests.services import SmtpSink
from tests.test_relay import CUSTOMER, make_world, reply, send_now, use_smtp

EVIL = "evil@attacker.test"
B64 = base64.b64encode(f"x\r\nBcc: {EVIL}".encode()).decode()
TEXT_PAYLOADS = [
    f"Hello\r\nBcc: {EVIL}",
    f"Hello\nBcc: {EVIL}",
    f"Hello\rBcc: {EVIL}",
    f"=?utf-8?q?Hello=0D=0ABcc:_{EVIL}?=",
    f"=?utf-8?b?{B64}?=",
    f"=?utf-8?q?=3D=3Futf-8=3Fq=3Fx=3D0D=3D0ABcc:_{EVIL}=3F=3D?=",  # encoded twice
    f"Hello\u2028Bcc: {EVIL}",
    f"Hello\x00\x0bBcc: {EVIL}",
]
ADDRESS_PAYLOADS = [
    f"nora@customer.test\r\nBcc: {EVIL}",
    f"nora@customer.test>, <{EVIL}",
    f"=?utf-8?q?nora=0D=0ABcc:_{EVIL}?=@customer.test",
    f"nora@customer.test, {EVIL}",
]
MSGID_PAYLOADS = [
    f"<a@b.test>\r\nBcc: {EVIL}",
    f"=?utf-8?q?<a@b.test>=0D=0ABcc:_{EVIL}?=",
    f"<a@b.test> {EVIL}",
]


def only_customer(app: Flask) -> int:
    """A reply whose row has the customer as its one recipient."""
    return reply(app, make_world(app, customer_only=True))


def tamper(app: Flask, outbox_id: int, **values: Any) -> None:
    with app.app_context():
        message = db.session.get(OutboxMessage, outbox_id)
        for key, value in values.items():
            if key.startswith("recipient_"):
                delivery = message.deliveries[0]
                setattr(delivery, key.removeprefix("recipient_"), value)
            else:
                setattr(message, key, value)
        db.session.commit()


def assert_clean(sink: SmtpSink) -> Any:
    (arrived,) = sink.wait_for(1)
    assert arrived.rcpt_tos == (CUSTOMER,)
    raw = arrived.content.replace(b"\r\n", b"\n").decode("ascii")
    head = raw.split("\n\n", 1)[0]
    assert "\nBcc:" not in head and not head.startswith("Bcc:")
    mail = arrived.message
    assert mail["Bcc"] is None
    for header in ("To", "Cc", "From", "Reply-To"):
        if mail[header] is not None:
            assert EVIL not in {a.addr_spec for a in mail[header].addresses}
    assert sorted(mail.keys()) == sorted(set(mail.keys()))  # no header twice
    return mail


@pytest.mark.parametrize("payload", TEXT_PAYLOADS)
@pytest.mark.parametrize("field", ["subject", "from_name", "recipient_name"])
def test_text_fields_cannot_add_headers(
    app: Flask, smtp_sink: SmtpSink, field: str, payload: str
) -> None:
    use_smtp(app, smtp_sink)
    outbox_id = only_customer(app)
    tamper(app, outbox_id, **{field: payload})
    assert send_now(app, outbox_id).status == "sent"
    mail = assert_clean(smtp_sink)
    shown = {
        "subject": str(mail["Subject"]),
        "from_name": mail["From"].addresses[0].display_name,
        "recipient_name": mail["To"].addresses[0].display_name,
    }[field]
    assert "\n" not in shown and "\r" not in shown


@pytest.mark.parametrize("payload", ADDRESS_PAYLOADS)
@pytest.mark.parametrize("field", ["from_address", "reply_to", "recipient_address"])
def test_addresses_that_could_carry_headers_are_refused(
    app: Flask, smtp_sink: SmtpSink, field: str, payload: str
) -> None:
    use_smtp(app, smtp_sink)
    outbox_id = only_customer(app)
    tamper(app, outbox_id, **{field: payload})
    outcome = send_now(app, outbox_id)
    assert outcome.status == "failed" and "invalid address" in (outcome.error or "")
    assert smtp_sink.messages == []


@pytest.mark.parametrize("payload", MSGID_PAYLOADS)
@pytest.mark.parametrize("field", ["in_reply_to", "references"])
def test_quoted_message_ids_cannot_add_headers(
    app: Flask, smtp_sink: SmtpSink, field: str, payload: str
) -> None:
    use_smtp(app, smtp_sink)
    outbox_id = only_customer(app)
    tamper(app, outbox_id, **{field: payload})
    assert send_now(app, outbox_id).status == "sent"
    mail = assert_clean(smtp_sink)
    value = mail["In-Reply-To" if field == "in_reply_to" else "References"]
    assert value is None or EVIL not in str(value)


def test_own_message_id_and_language_are_checked_too(app: Flask, smtp_sink: SmtpSink) -> None:
    use_smtp(app, smtp_sink)
    outbox_id = only_customer(app)
    tamper(
        app, outbox_id, message_id=f"<x@desk.test>\r\nBcc: {EVIL}", language=f"en\r\nBcc: {EVIL}"
    )
    # The Message-ID's valid part is kept; the language cannot break its header either.
    assert send_now(app, outbox_id).status == "sent"
    mail = assert_clean(smtp_sink)
    assert mail["Message-ID"] == "<x@desk.test>"


def test_a_customer_subject_with_encoded_words_reaches_the_relay_safely(
    app: Flask, smtp_sink: SmtpSink
) -> None:
    """Through the domain: a ticket whose subject came in with an encoded-word trick."""
    from app.models import Ticket

    use_smtp(app, smtp_sink)
    world = make_world(app, customer_only=True)
    with app.app_context():
        ticket = db.session.get(Ticket, world["ticket_id"])
        ticket.subject = f"=?utf-8?q?Invoice=0D=0ABcc:_{EVIL}?="
        db.session.commit()
    outbox_id = reply(app, world)
    assert send_now(app, outbox_id).status == "sent"
    mail = assert_clean(smtp_sink)
    assert str(mail["Subject"]).startswith(f"[#{world['number']}] Invoice")
    with app.app_context():
        deliveries = db.session.scalars(select(OutboxRecipient)).all()
        assert [d.address for d in deliveries] == [CUSTOMER]


def test_header_text_keeps_ordinary_text() -> None:
    assert header_text("Grüße aus Köln – Rechnung #12") == "Grüße aus Köln – Rechnung #12"
    assert header_text("=?utf-8?q?Gr=C3=BC=C3=9Fe?=") == "Grüße"
    assert "\n" not in header_text("a\r\nb") and header_text("a\r\nb") == "a b"


def test_the_html_part_never_takes_typed_text_as_markup(app: Flask, smtp_sink: SmtpSink) -> None:
    use_smtp(app, smtp_sink)
    world = make_world(app, customer_only=True)
    text = 'Try <script>alert(1)</script> & <a href="javascript:x">this</a>\nhttps://example.test/a?b=1&c=2'
    outbox_id = reply(app, world, text)
    assert send_now(app, outbox_id).status == "sent"
    mail = assert_clean(smtp_sink)
    html = mail.get_body(("html",)).get_content()
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert 'href="javascript' not in html and "&amp; &lt;a href=" in html
    assert '<a href="https://example.test/a?b=1&amp;c=2">' in html
    assert mail.get_body(("plain",)).get_content().startswith("Try <script>")


@pytest.mark.parametrize(
    "name",
    ['Doe, "John" <x@y.test>', "Jörg Müller-Lüdenscheidt", "O'Brien; (work)", "Ünïcödé " * 20],
)
def test_ordinary_awkward_names_arrive_as_they_are(name: str) -> None:
    """Quotes, commas, brackets and long non-ASCII names are quoted or encoded, not refused."""
    from datetime import UTC, datetime

    from app.mail.compose import build_copy

    message = OutboxMessage(
        message_id="<a.1@desk.test>",
        from_address="support@desk.test",
        from_name=f"{name} via Desk",
        reply_to="support@desk.test",
        subject=name,
        body_text="Hello",
        language="en",
        created_at=datetime.now(UTC),
    )
    delivery = OutboxRecipient(kind="to", address=CUSTOMER, name=name)
    message.deliveries.append(delivery)
    mail = build_copy(message, delivery, []).mail
    assert mail["To"].addresses[0].display_name == name.strip()
    assert mail["To"].addresses[0].addr_spec == CUSTOMER
    assert str(mail["Subject"]) == " ".join(name.split())
