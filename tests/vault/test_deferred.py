"""Deferred durability: a batch's blobs are flushed together, once each, when asked.

The guarantee callers build on: when ``deferred_durability`` is left normally (or
``sync`` returns), every file written through it and every directory holding one has
been fsynced; before that, nothing was (so a caller must not commit rows naming them).
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from vault import KeyRing, LocalDirectoryStorage, Part, Vault
from vault import storage as storage_module
from vault.storage import BlobStorage

from .helpers import pattern

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/fd").is_dir(), reason="needs /proc to name the fsynced files"
)


@pytest.fixture
def flushes(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every path fsynced, in order; the real fsync still runs."""
    seen: list[str] = []
    real = os.fsync

    def recording(fd: int) -> None:
        seen.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(os, "fsync", recording)
    yield seen


def _paths(storage: LocalDirectoryStorage, blob_id: str) -> set[str]:
    return {str(storage.path(blob_id, part)) for part in (Part.HEADER, Part.BODY)}


def test_blobs_are_flushed_once_each_when_the_batch_ends(
    local_vault: Vault, flushes: list[str]
) -> None:
    storage = local_vault.storage
    assert isinstance(storage, LocalDirectoryStorage)
    data = [pattern(size, seed) for seed, size in enumerate([0, 100, 70_000, 2_500_000])]
    with local_vault.deferred_durability() as batch:
        stored = [batch.put(io.BytesIO(d), max_size=2**40) for d in data]
        # Readable at once (renamed into place), but nothing flushed yet.
        assert [b"".join(batch.iter_plaintext(s.blob_id)) for s in stored] == data
        assert flushes == []
    files = set().union(*(_paths(storage, s.blob_id) for s in stored))
    directories = {str(Path(p).parent) for p in files}
    assert sorted(flushes) == sorted(files | directories)  # each exactly once
    assert [b"".join(local_vault.iter_plaintext(s.blob_id)) for s in stored] == data


def test_nothing_is_flushed_when_the_batch_fails(local_vault: Vault, flushes: list[str]) -> None:
    with pytest.raises(RuntimeError), local_vault.deferred_durability() as batch:
        batch.put(io.BytesIO(b"x" * 10), max_size=100)
        raise RuntimeError("the transaction failed")
    assert flushes == []


def test_many_files_are_flushed_with_one_syncfs(
    local_vault: Vault, flushes: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    if storage_module._SYNCFS is None:
        pytest.skip("no syncfs(2) in this C library")
    monkeypatch.setattr(storage_module, "SYNCFS_FROM", 4)
    with local_vault.deferred_durability() as batch:
        stored = [batch.put(io.BytesIO(b"%d" % i), max_size=100) for i in range(3)]
    assert flushes == []  # six files: the file system was flushed as a whole instead
    assert [b"".join(local_vault.iter_plaintext(s.blob_id)) for s in stored] == [
        b"0",
        b"1",
        b"2",
    ]


def test_a_file_shredded_before_the_flush_is_skipped(
    local_vault: Vault, flushes: list[str]
) -> None:
    with local_vault.deferred_durability() as batch:
        kept = batch.put(io.BytesIO(b"kept"), max_size=100)
        gone = batch.put(io.BytesIO(b"duplicate"), max_size=100)
        batch.shred(gone.blob_id)  # a duplicate's original: deleted durably at once
    assert not local_vault.exists(gone.blob_id)
    assert b"".join(local_vault.iter_plaintext(kept.blob_id)) == b"kept"


def test_outside_a_batch_every_write_is_flushed_at_once(
    local_vault: Vault, flushes: list[str]
) -> None:
    stored = local_vault.put(io.BytesIO(b"now"), max_size=100)
    storage = local_vault.storage
    assert isinstance(storage, LocalDirectoryStorage)
    directory = str(storage.path(stored.blob_id, Part.BODY).parent)
    # Each part flushed under its temporary name before the rename, then the directory.
    assert len([p for p in flushes if "/.tmp-" in p]) == 2
    assert flushes.count(directory) == 2


def test_a_durable_back_end_is_its_own_deferred_view(keyring: KeyRing) -> None:
    class Durable(BlobStorage):  # the S3 case: a write is durable when it returns
        writer = open = size = exists = delete = iter_ids = None  # type: ignore[assignment]

    Durable.__abstractmethods__ = frozenset()
    storage = Durable()
    assert storage.deferred() is storage
    storage.sync()  # nothing to do, nothing raised
