"""Fixtures for the vault tests: key rings, and both storage back ends.

The S3 back end runs against a real S3-compatible HTTP server (moto in server
mode) on loopback, so requests go through botocore's real HTTP stack,
multipart uploads included; nothing is mocked at the Python level.
"""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from vault import KeyRing, LocalDirectoryStorage, S3Storage, Vault, storage_from_url
from vault.storage import BlobStorage


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
