"""A Dovecot with TLS (implicit and STARTTLS) under a throw-away CA, for the IMAP client tests.

The certificate names only ``localhost``, so connecting by ``127.0.0.1`` must fail the
host name check: that proves the client verifies names, not only the chain.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.services import DovecotServer, ServiceBinaryMissing, _unavailable, free_port


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def make_ca_and_server(folder: Path, host: str = "localhost") -> tuple[Path, Path, Path]:
    """Write ca.pem, server.pem and server.key into ``folder``; their paths."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("Vaultdesk test CA"))
        .issuer_name(_name("Vaultdesk test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(host))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([x509.OID_SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_path, cert_path, key_path = folder / "ca.pem", folder / "server.pem", folder / "server.key"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return ca_path, cert_path, key_path


class TlsDovecotServer(DovecotServer):
    """The suite's Dovecot plus TLS: STARTTLS on ``port``, implicit TLS on ``tls_port``."""

    def __init__(self) -> None:
        super().__init__()
        self.tls_port = 0
        self.ca_file: Path | None = None

    def _config(self) -> str:
        d = self.directory
        if self.ca_file is None:
            self.ca_file, cert, key = make_ca_and_server(d)
            key.chmod(0o600)
        self.tls_port = free_port()
        config = super()._config()
        config = config.replace(
            "ssl = no",
            f"ssl = yes\nssl_cert = <{d / 'server.pem'}\nssl_key = <{d / 'server.key'}",
        )
        return config.replace(
            "inet_listener imaps {\n    port = 0\n  }",
            f"inet_listener imaps {{\n    address = {self.host}\n    port = {self.tls_port}\n  }}",
        )


def serve_tls() -> Iterator[TlsDovecotServer]:
    """For a fixture: start the TLS server (skip when Dovecot is missing), stop it after."""
    server = TlsDovecotServer()
    try:
        server.start()
    except ServiceBinaryMissing as exc:
        _unavailable(exc)
    try:
        yield server
    finally:
        server.stop()
