"""The block-wise encryptor and its hashing thread.

The body must stay byte for byte what the documented format says, however the
encryptor batches its work, so it is checked here against an independent
implementation of the format written from the module docstring.
"""

from __future__ import annotations

import hashlib
import io
import threading
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from vault import KeyRing, LocalDirectoryStorage, Vault, encrypt_stream
from vault import crypto as crypto_module
from vault import vault as vault_module
from vault.crypto import Header

from .helpers import CHUNK, all_objects, pattern
from .test_crypto import Trickle

BLOCK = crypto_module._BLOCK_CHUNKS * CHUNK
SIZES = [0, 1, CHUNK, BLOCK - 1, BLOCK, BLOCK + 1, 2 * BLOCK, 5 * BLOCK + 7]
CONTEXT = b"0123456789abcdef0123456789abcdef"


def reference_body(header: bytes, data: bytes, ring: KeyRing, context: bytes) -> bytes:
    """Seal ``data`` exactly as the format documentation describes, chunk by chunk."""
    parsed = Header.parse(header)
    prefix = header[: len(header) - len(parsed.wrapped_key)]
    data_key = ring.unwrap(parsed.key_id, parsed.wrapped_key, Header.wrap_aad(prefix, context))
    subkey = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=parsed.salt, info=b"vaultdesk/stream/v1"
    ).derive(data_key)
    aead = AESGCM(subkey)
    pieces = [data[i : i + CHUNK] for i in range(0, len(data), CHUNK)] or [b""]
    return b"".join(
        aead.encrypt(index.to_bytes(11, "big") + bytes([index == len(pieces) - 1]), piece, None)
        for index, piece in enumerate(pieces)
    )


def no_digest_threads() -> bool:
    return not any(thread.name == "vault-digest" for thread in threading.enumerate())


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("with_digest", [True, False])
def test_body_is_the_documented_format(size: int, with_digest: bool, keyring: KeyRing) -> None:
    data = pattern(size)
    out = io.BytesIO()
    digest = hashlib.sha256() if with_digest else None
    result = encrypt_stream(io.BytesIO(data), out, keyring, context=CONTEXT, digest=digest)
    assert out.getvalue() == reference_body(result.header, data, keyring, CONTEXT)
    assert result.plaintext_size == size
    assert result.ciphertext_size == len(out.getvalue())
    if digest is not None:
        assert digest.hexdigest() == hashlib.sha256(data).hexdigest()
    assert no_digest_threads()


def test_digest_does_not_depend_on_how_the_source_delivers(keyring: KeyRing) -> None:
    data = pattern(2 * BLOCK + 777)
    digest = hashlib.sha256()
    out = io.BytesIO()
    result = encrypt_stream(Trickle(data), out, keyring, digest=digest)
    assert digest.hexdigest() == hashlib.sha256(data).hexdigest()
    assert out.getvalue() == reference_body(result.header, data, keyring, b"")


def test_without_encrypt_into_the_output_is_the_same(
    keyring: KeyRing, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Older ``cryptography`` releases have no ``encrypt_into``; the fallback must match."""

    class OldAESGCM:
        def __init__(self, key: bytes) -> None:
            self._aead = AESGCM(key)

        def encrypt(self, nonce: bytes, data: bytes, aad: bytes | None) -> bytes:
            return self._aead.encrypt(nonce, data, aad)

    monkeypatch.setattr(crypto_module, "AESGCM", OldAESGCM)
    data = pattern(2 * BLOCK + 5)
    out = io.BytesIO()
    result = encrypt_stream(io.BytesIO(data), out, keyring, context=CONTEXT)
    assert out.getvalue() == reference_body(result.header, data, keyring, CONTEXT)


class FailingDigest:
    """Hashes like SHA-256 until its ``fail_at``-th update, which raises."""

    def __init__(self, fail_at: int) -> None:
        self.calls = 0
        self.fail_at = fail_at
        self._inner = hashlib.sha256()

    def update(self, data: bytes | bytearray | memoryview, /) -> None:
        self.calls += 1
        if self.calls == self.fail_at:
            raise MemoryError("digest failed")
        self._inner.update(data)

    def hexdigest(self) -> str:
        return self._inner.hexdigest()


@pytest.mark.parametrize("fail_at", [1, 2, 5])
def test_a_digest_error_reaches_the_caller_and_stops_the_thread(
    keyring: KeyRing, fail_at: int
) -> None:
    digest = FailingDigest(fail_at)
    with pytest.raises(MemoryError, match="digest failed"):
        encrypt_stream(io.BytesIO(pattern(8 * BLOCK)), io.BytesIO(), keyring, digest=digest)
    assert no_digest_threads()


def test_a_source_error_stops_the_thread(keyring: KeyRing) -> None:
    class Broken(io.RawIOBase):
        served = 0

        def readable(self) -> bool:
            return True

        def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
            if self.served >= 4 * BLOCK:
                raise ConnectionResetError("client went away")
            buffer[: len(buffer)] = bytes(len(buffer))
            self.served += len(buffer)
            return len(buffer)

    with pytest.raises(ConnectionResetError):
        encrypt_stream(Broken(), io.BytesIO(), keyring, digest=hashlib.sha256())
    assert no_digest_threads()


def test_put_leaves_nothing_when_hashing_fails(
    tmp_path: Path, keyring: KeyRing, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = LocalDirectoryStorage(tmp_path / "blobs")
    vault = Vault(storage, keyring)
    failing = FailingDigest(3)
    monkeypatch.setattr(vault_module.hashlib, "sha256", lambda: failing)
    with pytest.raises(MemoryError):
        vault.put(io.BytesIO(pattern(6 * BLOCK)), max_size=6 * BLOCK)
    assert all_objects(storage) == []
    assert no_digest_threads()


@pytest.mark.parametrize("size", [BLOCK - 1, 4 * BLOCK + 3])
def test_put_digest_matches_for_sources_without_readinto(
    tmp_path: Path, keyring: KeyRing, size: int
) -> None:
    from .test_crypto import ReadOnly

    vault = Vault(LocalDirectoryStorage(tmp_path / "blobs"), keyring)
    data = pattern(size)
    stored = vault.put(ReadOnly(data), max_size=size)
    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    assert b"".join(vault.iter_plaintext(stored.blob_id)) == data


@pytest.mark.parametrize("size", [0, BLOCK + 1, 2 * 1024 * 1024 + 12345])
@pytest.mark.parametrize("direct_io", [True, False])
def test_body_sealed_in_place_into_local_storage_is_the_documented_format(
    tmp_path: Path, keyring: KeyRing, size: int, direct_io: bool
) -> None:
    """The local writer lends its buffers; chunks straddling two of them take the other path."""
    from vault import Part, new_blob_id

    storage = LocalDirectoryStorage(tmp_path, write_behind_mb=1, direct_io=direct_io)
    blob_id = new_blob_id()
    data = pattern(size)
    digest = hashlib.sha256()
    with storage.writer(blob_id, Part.BODY) as sink:
        assert hasattr(sink, "reserve")
        result = encrypt_stream(io.BytesIO(data), sink, keyring, context=CONTEXT, digest=digest)
    body = storage.read(blob_id, Part.BODY)
    assert body == reference_body(result.header, data, keyring, CONTEXT)
    assert digest.hexdigest() == hashlib.sha256(data).hexdigest()
