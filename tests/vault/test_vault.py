"""The Vault facade, end to end, against both back ends."""

from __future__ import annotations

import hashlib
import io
import tracemalloc
from pathlib import Path

import pytest

from vault import (
    BlobNotFound,
    FileTooLarge,
    IntegrityError,
    InvalidBlobId,
    InvalidRange,
    KeyInUseError,
    KeyRing,
    LocalDirectoryStorage,
    Part,
    StoredFile,
    UnknownKeyError,
    Vault,
)

from .helpers import CHUNK, SEALED, all_objects, pattern

SIZES = [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 9 * 1024 * 1024 + 5]
PNG = bytes.fromhex("89504e470d0a1a0a0000000d49484452") + bytes(200)
PDF = b"%PDF-1.7\n" + bytes(300)


@pytest.mark.parametrize("size", SIZES)
def test_round_trip(vault: Vault, size: int) -> None:
    data = pattern(size)
    stored = vault.put(io.BytesIO(data), max_size=size)
    assert stored.size == size
    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    assert stored.key_id == vault.keyring.current_id
    assert vault.size(stored.blob_id) == size
    assert b"".join(vault.iter_plaintext(stored.blob_id)) == data
    with vault.open(stored.blob_id) as reader:
        assert reader.size == size
        assert reader.read() == data


def test_stored_file_is_frozen(vault: Vault) -> None:
    stored = vault.put(io.BytesIO(b"x"), max_size=10)
    with pytest.raises(AttributeError):
        stored.size = 2  # type: ignore[misc]
    assert isinstance(stored, StoredFile)


@pytest.mark.parametrize(
    ("content", "mime"),
    [(PNG, "image/png"), (PDF, "application/pdf"), (b"hello, plain text", None), (b"", None)],
)
def test_mime_type_is_sniffed_from_content(
    local_vault: Vault, content: bytes, mime: str | None
) -> None:
    stored = local_vault.put(io.BytesIO(content), max_size=10_000)
    assert stored.mime_type == (mime or "application/octet-stream")


def test_read_range(vault: Vault) -> None:
    data = pattern(3 * CHUNK + 1000)
    blob_id = vault.put(io.BytesIO(data), max_size=len(data)).blob_id
    for start, end in [
        (0, 9),
        (len(data) - 10, len(data) - 1),
        (CHUNK - 5, CHUNK + 5),
        (CHUNK, 2 * CHUNK + 2),
        (5, len(data) + 50),
    ]:
        assert b"".join(vault.read_range(blob_id, start, end)) == data[start : end + 1]
    for start, end in [(len(data), len(data) + 5), (-1, 3), (10, 9)]:
        with pytest.raises(InvalidRange):
            vault.read_range(blob_id, start, end)


def test_reader_seeks_like_a_file(vault: Vault) -> None:
    data = pattern(2 * CHUNK + 300)
    blob_id = vault.put(io.BytesIO(data), max_size=len(data)).blob_id
    with vault.open(blob_id) as reader:
        reader.seek(CHUNK + 7)
        assert reader.read(20) == data[CHUNK + 7 : CHUNK + 27]
        reader.seek(-10, io.SEEK_END)
        assert reader.read() == data[-10:]
        assert reader.read() == b""
        reader.seek(3)
        assert reader.tell() == 3
        assert io.BufferedReader(reader).read(5) == data[3:8]


def test_too_large_is_refused_and_leaves_nothing(vault: Vault) -> None:
    data = pattern(2 * CHUNK + 10)
    with pytest.raises(FileTooLarge) as raised:
        vault.put(io.BytesIO(data), max_size=len(data) - 1)
    assert raised.value.max_size == len(data) - 1
    assert all_objects(vault.storage) == []
    assert vault.put(io.BytesIO(data), max_size=len(data)).size == len(data)


def test_too_large_big_upload_stops_early_and_leaves_nothing(vault: Vault) -> None:
    class Endless(io.RawIOBase):
        served = 0

        def readable(self) -> bool:
            return True

        def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
            buffer[:] = bytes(len(buffer))
            self.served += len(buffer)
            return len(buffer)

    source = Endless()
    with pytest.raises(FileTooLarge):
        vault.put(source, max_size=10 * 1024 * 1024)
    assert source.served <= 10 * 1024 * 1024 + 2 * CHUNK
    assert all_objects(vault.storage) == []


def test_failure_after_body_commit_removes_the_body(
    local_storage: LocalDirectoryStorage, keyring: KeyRing
) -> None:
    class HeaderWriteFails(LocalDirectoryStorage):
        def put(self, blob_id: str, part: Part, data: object) -> int:
            if part is Part.HEADER:
                raise OSError("disk full")
            return super().put(blob_id, part, data)  # type: ignore[arg-type]

    vault = Vault(HeaderWriteFails(local_storage.root), keyring)
    with pytest.raises(OSError, match="disk full"):
        vault.put(io.BytesIO(pattern(CHUNK * 2)), max_size=CHUNK * 2)
    assert all_objects(local_storage) == []


def test_zero_limit_accepts_only_empty_files(vault: Vault) -> None:
    assert vault.put(io.BytesIO(b""), max_size=0).size == 0
    with pytest.raises(FileTooLarge):
        vault.put(io.BytesIO(b"x"), max_size=0)


def test_shred_makes_the_file_unreadable(vault: Vault) -> None:
    keep = vault.put(io.BytesIO(b"keep me"), max_size=100)
    gone = vault.put(io.BytesIO(pattern(CHUNK + 1)), max_size=CHUNK + 1)
    vault.shred(gone.blob_id)
    vault.shred(gone.blob_id)  # idempotent
    assert not vault.exists(gone.blob_id)
    with pytest.raises(BlobNotFound, match="shredded"):
        vault.iter_plaintext(gone.blob_id)  # raised before any byte could be sent
    with pytest.raises(BlobNotFound):
        vault.open(gone.blob_id)
    with pytest.raises(BlobNotFound):
        vault.read_range(gone.blob_id, 0, 1)
    assert set(vault.storage.iter_ids(Part.BODY)) == {keep.blob_id}
    assert b"".join(vault.iter_plaintext(keep.blob_id)) == b"keep me"


def test_body_without_header_cannot_be_read_even_with_all_keys(vault: Vault) -> None:
    stored = vault.put(io.BytesIO(b"secret"), max_size=100)
    vault.storage.delete(stored.blob_id, Part.HEADER)  # a shred interrupted half-way
    with pytest.raises(BlobNotFound):
        list(vault.iter_plaintext(stored.blob_id))


def test_untrusted_ids_are_refused(vault: Vault) -> None:
    for bad in ("../x", "/etc/passwd", "a" * 31 + "\x00"):
        with pytest.raises(InvalidBlobId):
            vault.open(bad)
        with pytest.raises(InvalidBlobId):
            vault.shred(bad)


def test_rotation_keeps_files_readable_and_gates_retirement(vault: Vault) -> None:
    files = {
        vault.put(io.BytesIO(pattern(n, seed=n)), max_size=n).blob_id: pattern(n, seed=n)
        for n in (0, 10, CHUNK + 3)
    }
    bodies = {blob_id: vault.storage.read(blob_id, Part.BODY) for blob_id in files}
    old = vault.keyring.current_id
    assert vault.key_ids_in_use() == {old}

    new = vault.keyring.add()
    late = vault.put(io.BytesIO(b"after rotation"), max_size=100)
    assert late.key_id == new
    files[late.blob_id] = b"after rotation"
    assert vault.key_ids_in_use() == {old, new}
    with pytest.raises(KeyInUseError):
        vault.retire_kek(old)
    assert old in vault.keyring

    report = vault.rewrap()
    assert (report.key_id, report.rewrapped, report.already_current) == (new, 3, 1)
    assert vault.key_ids_in_use() == {new}
    for blob_id in bodies:
        assert vault.storage.read(blob_id, Part.BODY) == bodies[blob_id]  # bodies untouched
    vault.retire_kek(old)
    assert old not in vault.keyring
    for blob_id, data in files.items():
        assert b"".join(vault.iter_plaintext(blob_id)) == data
        assert vault.key_id_of(blob_id) == new


def test_add_kek_and_rewrap_reports_counts(vault: Vault) -> None:
    for n in range(3):
        vault.put(io.BytesIO(b"x" * n), max_size=10)
    first = vault.keyring.current_id
    report = vault.add_kek_and_rewrap()
    assert report.key_id != first
    assert (report.rewrapped, report.already_current) == (3, 0)
    again = vault.rewrap()
    assert (again.rewrapped, again.already_current) == (0, 3)
    vault.retire_kek(first)
    with pytest.raises(KeyInUseError):
        vault.retire_kek(report.key_id)


def test_other_key_ring_cannot_read(vault: Vault) -> None:
    stored = vault.put(io.BytesIO(b"secret"), max_size=100)
    stranger = Vault(vault.storage, KeyRing.generate())
    with pytest.raises(UnknownKeyError):
        list(stranger.iter_plaintext(stored.blob_id))
    impostor = Vault(vault.storage, KeyRing({stored.key_id: bytes(32)}, stored.key_id))
    with pytest.raises(IntegrityError):
        list(impostor.iter_plaintext(stored.blob_id))


def test_headers_swapped_between_blobs_are_refused(vault: Vault) -> None:
    a = vault.put(io.BytesIO(b"a" * 100), max_size=1000)
    b = vault.put(io.BytesIO(b"b" * 100), max_size=1000)
    header_a = vault.storage.read(a.blob_id, Part.HEADER)
    body_a = vault.storage.read(a.blob_id, Part.BODY)
    vault.storage.put(b.blob_id, Part.HEADER, header_a)
    vault.storage.put(b.blob_id, Part.BODY, body_a)
    with pytest.raises(IntegrityError):
        list(vault.iter_plaintext(b.blob_id))


def test_tampered_body_object_is_refused(vault: Vault) -> None:
    data = pattern(2 * CHUNK + 5)
    blob_id = vault.put(io.BytesIO(data), max_size=len(data)).blob_id
    body = bytearray(vault.storage.read(blob_id, Part.BODY))
    body[SEALED + 100] ^= 0x04
    vault.storage.put(blob_id, Part.BODY, bytes(body))
    with pytest.raises(IntegrityError):
        list(vault.iter_plaintext(blob_id))
    with pytest.raises(IntegrityError), vault.open(blob_id) as reader:
        reader.read()
    with pytest.raises(IntegrityError):
        list(vault.read_range(blob_id, CHUNK, CHUNK))
    assert b"".join(vault.read_range(blob_id, 0, 99)) == data[:100]


def test_no_plaintext_reaches_the_storage_directory(
    local_storage: LocalDirectoryStorage, keyring: KeyRing
) -> None:
    marker = b"VAULTDESK-PLAINTEXT-MARKER-7f3a9c"
    vault = Vault(local_storage, keyring)
    for size in (len(marker), CHUNK + 50, 3 * CHUNK):
        content = (marker * (size // len(marker) + 1))[:size]
        vault.put(io.BytesIO(content), max_size=size)
    files = [p for p in local_storage.root.rglob("*") if p.is_file()]
    assert len(files) == 6
    for path in files:
        raw = path.read_bytes()
        assert marker not in raw, path
        assert marker[:12] not in raw, path
        assert marker.hex().encode() not in raw, path


def test_put_memory_stays_flat(tmp_path: Path, keyring: KeyRing) -> None:
    """Memory is bounded by the write-behind queue, whatever the file size or disk speed.

    The queue may hold up to ``write_behind_mb`` of ciphertext while the disk is slow (a
    loaded machine), so the bound below is that depth plus a few chunks, not less.
    """
    local_vault = Vault(LocalDirectoryStorage(tmp_path / "blobs", write_behind_mb=2), keyring)
    size = 48 * 1024 * 1024

    class Zeros(io.RawIOBase):
        left = size

        def readable(self) -> bool:
            return True

        def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
            n = min(len(buffer), self.left)
            buffer[:n] = bytes(n)
            self.left -= n
            return n

    tracemalloc.start()
    try:
        stored = local_vault.put(Zeros(), max_size=size)
        total = sum(len(piece) for piece in local_vault.iter_plaintext(stored.blob_id))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert total == size
    assert peak < (2 + 4) * 1024 * 1024, f"peak {peak} bytes for a 48 MiB file"
