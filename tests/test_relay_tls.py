"""The relay talks to servers that want encryption and a login: STARTTLS on the submission
port, implicit TLS (smtps), AUTH, and a certificate it must verify.

A private aiosmtpd server with a certificate made for this test; the client trusts it
through ``SSL_CERT_FILE`` (what OpenSSL's default verify paths read), as an operator with
a private CA would.
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from flask import Flask

from app.mail import relay
from tests.services import free_port
from tests.test_relay import CUSTOMER, make_world, reply, row, send_now

USER, PASSWORD = "relay-user", "relay pass: with @ and /"


def make_certificate(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class Collector:
    def __init__(self) -> None:
        self.messages: list[tuple[tuple[str, ...], bytes, bool]] = []
        self.connections: list[Any] = []  # the client's address and port, per message
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        with self.lock:
            self.messages.append(
                (tuple(envelope.rcpt_tos), envelope.content, session.ssl is not None)
            )
            self.connections.append(session.peer)
        return "250 2.0.0 Ok: queued as TLS1"


def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
    from aiosmtpd.smtp import AuthResult, LoginPassword

    ok = (
        isinstance(data, LoginPassword)
        and data.login.decode() == USER
        and data.password.decode() == PASSWORD
    )
    return AuthResult(success=ok)


@pytest.fixture
def certificate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    cert, key = make_certificate(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    return cert, key


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


@pytest.fixture
def starttls_server(certificate: tuple[Path, Path]) -> Iterator[tuple[int, Collector]]:
    from aiosmtpd.controller import Controller

    collector = Collector()
    port = free_port()
    controller = Controller(
        collector,
        hostname="127.0.0.1",
        port=port,
        tls_context=server_context(*certificate),
        require_starttls=True,
        auth_required=True,
        authenticator=authenticator,
    )
    controller.start()
    yield port, collector
    controller.stop()


@pytest.fixture
def smtps_server(certificate: tuple[Path, Path]) -> Iterator[tuple[int, Collector]]:
    collector = Collector()
    port = free_port()
    controller = _smtps(collector, port, certificate)
    controller.start()
    yield port, collector
    controller.stop()


def _smtps(collector: Collector, port: int, certificate: tuple[Path, Path]) -> Any:
    from aiosmtpd.controller import Controller

    return Controller(
        collector,
        hostname="127.0.0.1",
        port=port,
        ssl_context=server_context(*certificate),
        auth_required=True,
        # aiosmtpd only counts STARTTLS as TLS for AUTH; this whole connection is TLS.
        auth_require_tls=False,
        authenticator=authenticator,
    )


def only_customer(app: Flask) -> int:
    return reply(app, make_world(app, customer_only=True))


def url(scheme: str, port: int, password: str = PASSWORD, query: str = "") -> str:
    from urllib.parse import quote

    return f"{scheme}://{USER}:{quote(password, safe='')}@127.0.0.1:{port}{query}"


def test_starttls_and_login(app: Flask, starttls_server: tuple[int, Collector]) -> None:
    port, collector = starttls_server
    app.config["SMTP_URL"] = url("smtp", port, query="?starttls=1")
    outbox_id = only_customer(app)
    assert send_now(app, outbox_id).status == "sent"
    ((rcpt, _content, encrypted),) = collector.messages
    assert rcpt == (CUSTOMER,) and encrypted
    assert row(app, outbox_id)["server_answer"] == "250 2.0.0 Ok: queued as TLS1"


# aiosmtpd warns about AUTH without STARTTLS even when the whole connection is TLS.
@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_implicit_tls_and_login(app: Flask, smtps_server: tuple[int, Collector]) -> None:
    port, collector = smtps_server
    app.config["SMTP_URL"] = url("smtps", port)
    outbox_id = only_customer(app)
    outcome = send_now(app, outbox_id)
    assert outcome.status == "sent", outcome.error
    assert [m[0] for m in collector.messages] == [(CUSTOMER,)]


def test_a_wrong_password_is_retried_not_lost(
    app: Flask, starttls_server: tuple[int, Collector]
) -> None:
    port, collector = starttls_server
    app.config["SMTP_URL"] = url("smtp", port, password="wrong", query="?starttls=1")
    outbox_id = only_customer(app)
    outcome = send_now(app, outbox_id)
    assert outcome.status == "queued" and outcome.retry_at is not None
    assert collector.messages == [] and row(app, outbox_id)["status"] == "queued"


def test_an_untrusted_certificate_is_refused(
    app: Flask, starttls_server: tuple[int, Collector], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SSL_CERT_FILE")
    port, collector = starttls_server
    app.config["SMTP_URL"] = url("smtp", port, query="?starttls=1")
    outbox_id = only_customer(app)
    outcome = send_now(app, outbox_id)
    assert outcome.status == "queued" and "CERTIFICATE_VERIFY_FAILED" in (outcome.error or "")
    assert collector.messages == []


def test_a_batch_goes_over_one_connection(
    app: Flask, starttls_server: tuple[int, Collector]
) -> None:
    """One TLS handshake and one login for many replies: what makes 200 a second possible."""
    port, collector = starttls_server
    app.config["SMTP_URL"] = url("smtp", port, query="?starttls=1")
    world = make_world(app, customer_only=True)
    ids = [reply(app, world, f"Reply {n}") for n in range(5)]
    with app.app_context():
        via = relay.transport()
        try:
            outcomes = relay.drain(ids[0], via, batch=10)
        finally:
            via.close()
    assert [o.status for o in outcomes] == ["sent"] * 5
    assert len(collector.messages) == 5
    assert len(set(collector.connections)) == 1
