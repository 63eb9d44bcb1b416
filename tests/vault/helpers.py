"""Helpers shared by the vault tests."""

from __future__ import annotations

from typing import Any

from vault import LocalDirectoryStorage, S3Storage
from vault.storage import BlobStorage

CHUNK = 64 * 1024
SEALED = CHUNK + 16


def all_objects(storage: BlobStorage) -> list[str]:
    """Every object name the back end holds, including stray temp files and uploads."""
    if isinstance(storage, LocalDirectoryStorage):
        return sorted(
            str(path.relative_to(storage.root))
            for path in storage.root.rglob("*")
            if path.is_file()
        )
    assert isinstance(storage, S3Storage)
    client: Any = storage.client
    listed = client.list_objects_v2(Bucket=storage.bucket).get("Contents", [])
    uploads = client.list_multipart_uploads(Bucket=storage.bucket).get("Uploads", [])
    return sorted([item["Key"] for item in listed] + [f"upload:{u['Key']}" for u in uploads])


def pattern(size: int, seed: int = 0) -> bytes:
    """Deterministic, non-repeating test content (random would hide off-by-one shifts less)."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += (seed * 1_000_003 + counter).to_bytes(8, "big")
        counter += 1
    return bytes(out[:size])
