"""Mangled mail never escapes the pipeline: every message is filed or quarantined.

Hypothesis starts from real messages (tests/data/mail) and well-formed ones, then damages
them the way transports and broken clients do: bytes flipped, cut or inserted, header lines
with odd encodings and charsets added, boundaries broken, line ends mixed.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from app.extensions import db
from app.mail.ingest import file_message
from app.mail.parsing import MailUnreadable, parse_message
from app.models.inbound import InboundMail, MailOutcome, MailSource
from app.models.tickets import Ticket

DATA = Path(__file__).parent / "data" / "mail"
SEEDS = [p.read_bytes() for p in sorted((DATA / "stalwart").glob("*.eml"))[:12]] + [
    p.read_bytes() for p in sorted((DATA / "mimekit").glob("*.eml"))
]
WELL_FORMED = (
    b"From: Ann <ann@customer.test>\r\nTo: support@desk.test\r\nSubject: Printer\r\n"
    b"Message-ID: <seed@customer.test>\r\nMIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="XX"\r\n\r\n--XX\r\n'
    b"Content-Type: text/plain; charset=utf-8\r\n\r\nIt is on fire.\r\n--XX\r\n"
    b'Content-Type: application/pdf; name="a.pdf"\r\nContent-Transfer-Encoding: base64\r\n\r\n'
    b"JVBERi0xLjQK\r\n--XX--\r\n"
)
NASTY_HEADERS = [
    b"Subject: =?x-unknown?q?=FF=FE?= =?utf-8?b?////?=",
    b"From: =?utf-8?q?=E2=80=AE?= <\xff@\xfe>",
    b"Date: 31 Feb 99999 25:61:61 +9999",
    b"Message-ID: <<<>>>",
    b"References: " + b"<a@b> " * 300,
    b"Content-Type: multipart/mixed; boundary=",
    b"Content-Type: text/plain; charset=utf-7",
    b"Content-Transfer-Encoding: base64",
    b"Content-Disposition: attachment; filename*=utf-8''%FF%FE%00.exe",
    b"To: ;;;,,,<>,@,",
    b"Subject: [#T-100000] Re: AW: [#T-999999]",
    b"Auto-Submitted: auto-replied",
    b"\x00\x01\x02: \x03",
]


@st.composite
def mangled(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from([*SEEDS, WELL_FORMED])))
    for _ in range(draw(st.integers(0, 6))):
        action = draw(st.sampled_from(["flip", "cut", "insert", "header", "crlf", "truncate"]))
        position = draw(st.integers(0, max(len(data) - 1, 0)))
        if action == "flip" and data:
            data[position] = draw(st.integers(0, 255))
        elif action == "cut":
            del data[position : position + draw(st.integers(1, 200))]
        elif action == "insert":
            data[position:position] = draw(st.binary(min_size=1, max_size=50))
        elif action == "header":
            data[0:0] = draw(st.sampled_from(NASTY_HEADERS)) + b"\r\n"
        elif action == "crlf":
            data = bytearray(bytes(data).replace(b"\r\n", draw(st.sampled_from([b"\r", b"\n"]))))
        elif action == "truncate":
            data = data[:position]
    return bytes(data)


@settings(max_examples=300, deadline=None, database=None)
@given(raw=st.one_of(mangled(), st.binary(max_size=2000)))
def test_parsing_raises_nothing_but_unreadable(raw: bytes) -> None:
    try:
        parsed = parse_message(raw)
    except MailUnreadable:
        return
    for text in (parsed.subject, parsed.text, parsed.html or ""):
        assert "\x00" not in text
        text.encode("utf-8")  # no lone surrogates: every text can be stored and shown
    assert all(a.filename for a in parsed.attachments)


@pytest.mark.usefixtures("ctx")
@settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(raw=st.one_of(mangled(), st.binary(max_size=500)))
def test_every_mangled_message_is_filed_or_quarantined(raw: bytes) -> None:
    filed = file_message(raw, source=MailSource.IMPORT)
    if filed.outcome is MailOutcome.DUPLICATE:
        assert filed.inbound_id is None
        return
    inbound = db.session.get(InboundMail, filed.inbound_id)
    assert inbound is not None and inbound.outcome == filed.outcome.value
    assert inbound.raw_file_id is not None  # the original is kept whatever happened
    if filed.outcome in (MailOutcome.CREATED, MailOutcome.APPENDED):
        ticket = db.session.execute(
            select(Ticket).where(Ticket.number == filed.ticket_number)
        ).scalar_one()
        assert inbound.ticket_id == ticket.id and inbound.entry_id is not None
    else:
        assert filed.outcome in (
            MailOutcome.QUARANTINED,
            MailOutcome.REVIEW,
            MailOutcome.IGNORED,
        )
        if filed.outcome is MailOutcome.QUARANTINED:
            assert inbound.reason
