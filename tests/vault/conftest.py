"""Fixtures for the vault tests: key rings, and both storage back ends.

The S3 back end runs against a real S3-compatible HTTP server (moto in server
mode) on loopback, so requests go through botocore's real HTTP stack,
multipart uploads included; nothing is mocked at the Python level.
"""

from __future__ import annotations

import secrets
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from vault import KeyRing, LocalDirectoryStorage, S3Storage, Vault, storage_from_url
from vault.storage import BlobStorage


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Start one moto S3 server for the whole session, with dummy credentials."""
    from moto.server import ThreadedMotoServer

    missing = tmp_path_factory.mktemp("aws") / "absent"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AWS_ACCESS_KEY_ID", "testing")
        patch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        patch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        patch.setenv("AWS_CONFIG_FILE", str(missing))
        patch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(missing))
        patch.delenv("AWS_PROFILE", raising=False)
        patch.delenv("AWS_SESSION_TOKEN", raising=False)
        port = _free_port()
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        server.start()
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            server.stop()


@pytest.fixture
def s3_storage(s3_endpoint: str) -> S3Storage:
    """A fresh bucket per test, reached through a configuration URL like production."""
    import boto3  # type: ignore[import-untyped,unused-ignore]

    bucket = f"vault-test-{secrets.token_hex(6)}"
    boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1").create_bucket(
        Bucket=bucket
    )
    storage = storage_from_url(f"s3://{bucket}/blobs?endpoint_url={s3_endpoint}&region=us-east-1")
    assert isinstance(storage, S3Storage)
    return storage


@pytest.fixture
def local_storage(tmp_path: Path) -> LocalDirectoryStorage:
    return LocalDirectoryStorage(tmp_path / "blobs")


@pytest.fixture(params=["local", "s3"])
def storage(request: pytest.FixtureRequest) -> BlobStorage:
    """Run a test once per back end: behaviour must not depend on where bytes live."""
    fixture = "local_storage" if request.param == "local" else "s3_storage"
    result: BlobStorage = request.getfixturevalue(fixture)
    return result


@pytest.fixture
def keyring() -> KeyRing:
    return KeyRing.generate()


@pytest.fixture
def vault(storage: BlobStorage, keyring: KeyRing) -> Vault:
    return Vault(storage, keyring)


@pytest.fixture
def local_vault(local_storage: LocalDirectoryStorage, keyring: KeyRing) -> Vault:
    return Vault(local_storage, keyring)
