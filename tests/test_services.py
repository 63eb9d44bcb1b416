"""Proof that each helper in tests/services.py gives a real, working service.

If one of these fails, every test built on that fixture would fail for reasons unrelated to
Vaultdesk, so this file is the first place to look.
"""

from __future__ import annotations

import imaplib
import smtplib
import uuid
from email.message import EmailMessage

import psycopg
import pytest
import sqlalchemy as sa

from tests import services
from tests.services import DovecotServer, PostgresServer, RedisServer, SmtpSink, free_port

# Load the fixtures even when tests/conftest.py does not (yet); registering twice is a no-op.
pytest_plugins = ["tests.services"]


def test_free_port_is_bindable() -> None:
    import socket

    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_redis_set_get(redis_server: RedisServer) -> None:
    key = f"test:{uuid.uuid4()}"
    with redis_server.client() as client:
        client.set(key, "vault", ex=60)
        assert client.get(key) == b"vault"
    assert redis_server.url == f"redis://127.0.0.1:{redis_server.port}/0"


def test_postgres_databases_are_isolated(postgres_server: PostgresServer) -> None:
    first = postgres_server.create_database("iso_a")
    second = postgres_server.create_database("iso_b")
    engines = [sa.create_engine(first), sa.create_engine(second)]
    try:
        with engines[0].begin() as conn:
            conn.execute(sa.text("CREATE TABLE ticket (id serial PRIMARY KEY, subject text)"))
            conn.execute(sa.text("INSERT INTO ticket (subject) VALUES ('Ünïcode ok')"))
        with engines[0].connect() as conn:
            assert conn.scalar(sa.text("SELECT subject FROM ticket")) == "Ünïcode ok"
            assert conn.scalar(sa.text("SHOW server_encoding")) == "UTF8"
        with engines[1].connect() as conn:
            assert conn.scalar(sa.text("SELECT to_regclass('ticket')")) is None
    finally:
        for engine in engines:
            engine.dispose()
        postgres_server.drop_database("iso_a")
        postgres_server.drop_database("iso_b")
    with psycopg.connect(postgres_server.dsn()) as conn:
        names = {row[0] for row in conn.execute("SELECT datname FROM pg_database")}
    assert not names & {"iso_a", "iso_b"}


def test_postgres_database_fixture(postgres_database: str) -> None:
    engine = sa.create_engine(postgres_database)
    try:
        with engine.connect() as conn:
            assert conn.scalar(sa.text("SELECT current_user")) == "test"
    finally:
        engine.dispose()


def _mail(subject: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "desk@vaultdesk.test"
    msg["To"] = "customer@example.test"
    msg["Subject"] = subject
    msg["X-Vaultdesk-Ticket"] = "T-1"
    msg.set_content("Hello from the help desk.\n")
    return msg


def test_smtp_sink_receives_raw_message(smtp_sink: SmtpSink) -> None:
    with smtplib.SMTP(smtp_sink.host, smtp_sink.port, timeout=10) as smtp:
        smtp.send_message(_mail("Ticket opened"))
    [received] = smtp_sink.wait_for(1)
    assert received.mail_from == "desk@vaultdesk.test"
    assert received.rcpt_tos == ("customer@example.test",)
    assert b"Subject: Ticket opened\r\n" in received.content
    assert b"X-Vaultdesk-Ticket: T-1\r\n" in received.content
    assert received.message.get_content() == "Hello from the help desk.\n"


def test_smtp_sink_fail_next_then_succeeds(smtp_sink: SmtpSink) -> None:
    smtp_sink.fail_next(1, code=451)
    with smtplib.SMTP(smtp_sink.host, smtp_sink.port, timeout=10) as smtp:
        with pytest.raises(smtplib.SMTPResponseException) as info:
            smtp.send_message(_mail("first try"))
        assert info.value.smtp_code == 451
        smtp.send_message(_mail("second try"))  # same connection, like a retrying sender
    [received] = smtp_sink.wait_for(1)
    assert received.message["Subject"] == "second try"


def test_smtp_sink_can_refuse_the_sender_permanently(smtp_sink: SmtpSink) -> None:
    smtp_sink.fail_next(1, code=550, message="No such sender", stage="mail")
    with smtplib.SMTP(smtp_sink.host, smtp_sink.port, timeout=10) as smtp:
        with pytest.raises(smtplib.SMTPSenderRefused) as info:
            smtp.send_message(_mail("refused"))
    assert info.value.smtp_code == 550
    assert smtp_sink.messages == []


def test_smtp_sink_wait_for_times_out_clearly(smtp_sink: SmtpSink) -> None:
    with pytest.raises(AssertionError, match="expected 1 message"):
        smtp_sink.wait_for(1, timeout=0.1)


def test_imap_append_search_fetch(imap_server: DovecotServer) -> None:
    user, password = f"agent-{uuid.uuid4().hex[:8]}", "s3cret"
    imap_server.add_user(user, password)
    raw = _mail("Printer on fire").as_bytes().replace(b"\n", b"\r\n")
    uid = imap_server.append(user, password, raw)
    assert uid == 1

    client = imaplib.IMAP4(imap_server.host, imap_server.port, timeout=10)
    try:
        client.login(user, password)
        client.select("INBOX")
        status, data = client.uid("SEARCH", "HEADER", "Subject", '"Printer on fire"')
        assert status == "OK" and data[0].split() == [b"1"]
        status, data = client.uid("FETCH", "1", "(BODY.PEEK[])")
        assert status == "OK"
        assert data[0][1] == raw
    finally:
        client.logout()


def test_imap_rejects_wrong_password(imap_server: DovecotServer) -> None:
    imap_server.add_user("bob", "right")
    with pytest.raises(imaplib.IMAP4.error):
        imap_server.connect("bob", "wrong")
    imap_server.add_user("bob", "other")  # same length, same second: must still apply
    imap_server.connect("bob", "other").logout()


def test_imap_append_creates_other_mailboxes(imap_server: DovecotServer) -> None:
    user = f"agent-{uuid.uuid4().hex[:8]}"
    imap_server.add_user(user, "pw")
    imap_server.append(user, "pw", _mail("archived").as_bytes(), mailbox="Old Tickets")
    with imap_server.connect(user, "pw") as client:
        status, data = client.select('"Old Tickets"', readonly=True)
        assert status == "OK" and data == [b"1"]


@pytest.mark.parametrize(
    ("ci", "outcome"), [("true", pytest.fail.Exception), ("", pytest.skip.Exception)]
)
def test_missing_program_skips_locally_but_fails_on_ci(
    monkeypatch: pytest.MonkeyPatch, tmp_path: object, ci: str, outcome: type[BaseException]
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no redis-server on it
    monkeypatch.setenv("CI", ci)
    with pytest.raises(outcome, match="redis-server"):
        next(services._serve(RedisServer()))
