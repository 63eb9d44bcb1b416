"""The streaming format itself: round trips, and every tampering the spec names."""

from __future__ import annotations

import io
import tracemalloc
from collections.abc import Callable
from typing import BinaryIO

import pytest

from vault import (
    IntegrityError,
    InvalidRange,
    KeyRing,
    UnknownKeyError,
    ciphertext_size,
    decrypt_range,
    decrypt_stream,
    encrypt_stream,
    plaintext_size,
    rewrap_header,
)
from vault.crypto import Header

from .helpers import CHUNK, SEALED, pattern

CONTEXT = b"0123456789abcdef0123456789abcdef"
SIZES = [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK, 5 * 1024 * 1024 + 123]


def seal(data: bytes, ring: KeyRing, context: bytes = CONTEXT) -> tuple[bytes, bytes]:
    out = io.BytesIO()
    result = encrypt_stream(io.BytesIO(data), out, ring, context=context)
    assert result.plaintext_size == len(data)
    assert result.ciphertext_size == len(out.getvalue())
    return result.header, out.getvalue()


def unseal(header: bytes, body: bytes, ring: KeyRing, context: bytes = CONTEXT) -> bytes:
    return b"".join(decrypt_stream(header, io.BytesIO(body), ring, context=context))


def chunks_of(body: bytes) -> list[bytes]:
    return [body[i : i + SEALED] for i in range(0, len(body), SEALED)]


@pytest.mark.parametrize("size", SIZES)
def test_round_trip(size: int, keyring: KeyRing) -> None:
    data = pattern(size)
    header, body = seal(data, keyring)
    assert len(body) == ciphertext_size(size)
    assert plaintext_size(len(body)) == size
    assert unseal(header, body, keyring) == data


def test_empty_file_is_one_authenticated_chunk(keyring: KeyRing) -> None:
    header, body = seal(b"", keyring)
    assert len(body) == 16
    with pytest.raises(IntegrityError):
        unseal(header, b"", keyring)
    with pytest.raises(IntegrityError):
        unseal(header, bytes(16), keyring)


class Trickle(io.RawIOBase):
    """A source that hands out at most 1000 bytes per call, like a slow socket."""

    def __init__(self, data: bytes) -> None:
        super().__init__()
        self._data = memoryview(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        size = min(len(buffer), 1000, len(self._data))
        buffer[:size] = self._data[:size]
        self._data = self._data[size:]
        return size


class ReadOnly:
    """A source with ``read`` but no ``readinto``."""

    def __init__(self, data: bytes) -> None:
        self._stream = io.BytesIO(data)

    def read(self, size: int = -1, /) -> bytes:
        return self._stream.read(size)


@pytest.mark.parametrize("source", [Trickle, ReadOnly])
def test_chunking_does_not_depend_on_how_the_source_delivers(
    source: Callable[[bytes], BinaryIO], keyring: KeyRing
) -> None:
    data = pattern(2 * CHUNK + 777)
    out = io.BytesIO()
    result = encrypt_stream(source(data), out, keyring)
    assert len(out.getvalue()) == ciphertext_size(len(data))
    assert unseal(result.header, out.getvalue(), keyring, b"") == data


def test_same_plaintext_encrypts_differently(keyring: KeyRing) -> None:
    data = pattern(1000)
    first, second = seal(data, keyring), seal(data, keyring)
    assert first[0] != second[0]
    assert first[1] != second[1]
    assert data[:64] not in first[1]


def test_memory_stays_flat_for_large_streams(keyring: KeyRing) -> None:
    class Zeros(io.RawIOBase):
        def __init__(self, size: int) -> None:
            super().__init__()
            self.left = size

        def readable(self) -> bool:
            return True

        def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
            size = min(len(buffer), self.left)
            buffer[:size] = bytes(size)
            self.left -= size
            return size

    class Sink:
        total = 0

        def write(self, data: bytes) -> int:
            self.total += len(data)
            return len(data)

    sink = Sink()
    tracemalloc.start()
    try:
        encrypt_stream(Zeros(32 * 1024 * 1024), sink, keyring)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert sink.total == ciphertext_size(32 * 1024 * 1024)
    assert peak < 1024 * 1024, f"peak {peak} bytes for a 32 MiB stream"


# -- tampering ------------------------------------------------------------------------


@pytest.fixture
def sealed3(keyring: KeyRing) -> tuple[bytes, bytes, bytes]:
    """Three full chunks and a short fourth: enough to reorder and cut."""
    data = pattern(3 * CHUNK + 500)
    header, body = seal(data, keyring)
    return data, header, body


@pytest.mark.parametrize("offset", [0, 100, SEALED + 5, 3 * SEALED + 10, -1])
def test_flipped_body_bit_is_refused(
    offset: int, sealed3: tuple[bytes, bytes, bytes], keyring: KeyRing
) -> None:
    _, header, body = sealed3
    tampered = bytearray(body)
    tampered[offset] ^= 0x01
    with pytest.raises(IntegrityError):
        unseal(header, bytes(tampered), keyring)


def test_every_flipped_header_bit_is_refused(keyring: KeyRing) -> None:
    header, body = seal(pattern(100), keyring)
    for position in range(len(header) * 8):
        tampered = bytearray(header)
        tampered[position // 8] ^= 1 << (position % 8)
        with pytest.raises((IntegrityError, UnknownKeyError)):
            unseal(bytes(tampered), body, keyring)
    assert unseal(header, body, keyring) == pattern(100)


def test_header_cut_or_extended_is_refused(keyring: KeyRing) -> None:
    header, body = seal(pattern(100), keyring)
    for bad in (header[:-1], header + b"\x00", header[:10], b""):
        with pytest.raises(IntegrityError):
            unseal(bad, body, keyring)


def test_header_moved_to_another_blob_is_refused(keyring: KeyRing) -> None:
    header, body = seal(pattern(100), keyring, context=b"a" * 32)
    with pytest.raises(IntegrityError):
        unseal(header, body, keyring, context=b"b" * 32)


@pytest.mark.parametrize(
    "cut",
    [
        pytest.param(lambda b: b[:-1], id="last-byte"),
        pytest.param(lambda b: b[:-100], id="inside-last-chunk"),
        pytest.param(lambda b: b[: 3 * SEALED], id="whole-last-chunk"),
        pytest.param(lambda b: b[: 3 * SEALED + 10], id="last-chunk-to-10-bytes"),
        pytest.param(lambda b: b[:SEALED], id="to-first-chunk"),
    ],
)
def test_truncation_is_refused(
    cut: Callable[[bytes], bytes], sealed3: tuple[bytes, bytes, bytes], keyring: KeyRing
) -> None:
    _, header, body = sealed3
    with pytest.raises(IntegrityError):
        unseal(header, cut(body), keyring)


def test_truncating_exact_multiple_at_chunk_boundary_is_refused(keyring: KeyRing) -> None:
    header, body = seal(pattern(3 * CHUNK), keyring)
    assert len(body) == 3 * SEALED
    with pytest.raises(IntegrityError):
        unseal(header, body[: 2 * SEALED], keyring)


def test_dropped_middle_chunk_is_refused(
    sealed3: tuple[bytes, bytes, bytes], keyring: KeyRing
) -> None:
    _, header, body = sealed3
    parts = chunks_of(body)
    with pytest.raises(IntegrityError):
        unseal(header, b"".join(parts[:1] + parts[2:]), keyring)


def test_swapped_chunks_are_refused(sealed3: tuple[bytes, bytes, bytes], keyring: KeyRing) -> None:
    _, header, body = sealed3
    parts = chunks_of(body)
    parts[0], parts[1] = parts[1], parts[0]
    with pytest.raises(IntegrityError):
        unseal(header, b"".join(parts), keyring)


def test_chunk_from_another_file_is_refused(keyring: KeyRing) -> None:
    header_a, body_a = seal(pattern(2 * CHUNK + 10, seed=1), keyring)
    _, body_b = seal(pattern(2 * CHUNK + 10, seed=2), keyring)
    mixed = chunks_of(body_a)
    mixed[1] = chunks_of(body_b)[1]
    with pytest.raises(IntegrityError):
        unseal(header_a, b"".join(mixed), keyring)


@pytest.mark.parametrize(
    "extra",
    [
        pytest.param(lambda b: b[-16:], id="copy-of-last-tag"),
        pytest.param(lambda b: b[:SEALED], id="copy-of-first-chunk"),
        pytest.param(lambda b: b"x", id="one-byte"),
        pytest.param(lambda b: bytes(SEALED), id="full-zero-chunk"),
    ],
)
def test_appended_data_is_refused(
    extra: Callable[[bytes], bytes], sealed3: tuple[bytes, bytes, bytes], keyring: KeyRing
) -> None:
    _, header, body = sealed3
    with pytest.raises(IntegrityError):
        unseal(header, body + extra(body), keyring)


def test_appending_after_full_final_chunk_is_refused(keyring: KeyRing) -> None:
    header, body = seal(pattern(CHUNK), keyring)
    _, other_body = seal(b"", keyring)
    with pytest.raises(IntegrityError):
        unseal(header, body + other_body, keyring)


def test_wrong_key_material_is_refused(keyring: KeyRing) -> None:
    header, body = seal(pattern(500), keyring)
    impostor = KeyRing({keyring.current_id: bytes(32)}, keyring.current_id)
    with pytest.raises(IntegrityError):
        unseal(header, body, impostor)


def test_missing_key_is_reported_by_id(keyring: KeyRing) -> None:
    header, body = seal(pattern(500), keyring)
    with pytest.raises(UnknownKeyError) as raised:
        unseal(header, body, KeyRing.generate())
    assert raised.value.key_id == keyring.current_id


def test_rewrap_moves_to_current_key_without_touching_body(keyring: KeyRing) -> None:
    data = pattern(CHUNK + 9)
    header, body = seal(data, keyring)
    old = keyring.current_id
    new = keyring.add()
    rewrapped = rewrap_header(header, keyring, context=CONTEXT)
    assert Header.parse(rewrapped).key_id == new
    keyring.retire(old, in_use=[])
    assert unseal(rewrapped, body, keyring) == data
    with pytest.raises(UnknownKeyError):
        unseal(header, body, keyring)


# -- ranges ---------------------------------------------------------------------------


class RecordingOpener:
    """Serves ciphertext ranges and remembers which ones were asked for."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.requests: list[tuple[int, int]] = []

    def __call__(self, offset: int, stop: int) -> BinaryIO:
        self.requests.append((offset, stop))
        return io.BytesIO(self.body[offset:stop])


def read_range(header: bytes, body: bytes, ring: KeyRing, start: int, end: int) -> bytes:
    opener = RecordingOpener(body)
    return b"".join(decrypt_range(header, opener, len(body), start, end, ring, context=CONTEXT))


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (0, 0),
        (0, 99),
        (3 * CHUNK + 400, 3 * CHUNK + 499),
        (CHUNK - 10, CHUNK + 9),
        (CHUNK - 1, CHUNK - 1),
        (CHUNK, CHUNK),
        (10, 3 * CHUNK + 10),
        (0, 3 * CHUNK + 499),
    ],
)
def test_range_returns_exactly_the_requested_bytes(
    start: int, end: int, sealed3: tuple[bytes, bytes, bytes], keyring: KeyRing
) -> None:
    data, header, body = sealed3
    assert read_range(header, body, keyring, start, end) == data[start : end + 1]


def test_range_end_past_the_file_is_clamped(
    sealed3: tuple[bytes, bytes, bytes], keyring: KeyRing
) -> None:
    data, header, body = sealed3
    assert read_range(header, body, keyring, len(data) - 5, len(data) + 1000) == data[-5:]


def test_range_fetches_only_the_chunks_it_needs(
    sealed3: tuple[bytes, bytes, bytes], keyring: KeyRing
) -> None:
    data, header, body = sealed3
    opener = RecordingOpener(body)
    got = b"".join(
        decrypt_range(
            header, opener, len(body), 2 * CHUNK + 1, 2 * CHUNK + 2, keyring, context=CONTEXT
        )
    )
    assert got == data[2 * CHUNK + 1 : 2 * CHUNK + 3]
    assert opener.requests == [(2 * SEALED, 3 * SEALED)]


@pytest.mark.parametrize(
    ("start", "end"),
    [(3 * CHUNK + 500, 3 * CHUNK + 600), (10**9, 10**9 + 5), (-1, 10), (50, 49)],
)
def test_unsatisfiable_range_is_refused(
    start: int, end: int, sealed3: tuple[bytes, bytes, bytes], keyring: KeyRing
) -> None:
    _, header, body = sealed3
    with pytest.raises(InvalidRange) as raised:
        read_range(header, body, keyring, start, end)
    assert raised.value.size == 3 * CHUNK + 500


def test_no_range_of_an_empty_file_exists(keyring: KeyRing) -> None:
    header, body = seal(b"", keyring)
    with pytest.raises(InvalidRange):
        read_range(header, body, keyring, 0, 0)


def test_range_over_a_tampered_chunk_is_refused_but_others_still_serve(
    sealed3: tuple[bytes, bytes, bytes], keyring: KeyRing
) -> None:
    data, header, body = sealed3
    tampered = bytearray(body)
    tampered[SEALED + 3] ^= 0x80
    with pytest.raises(IntegrityError):
        read_range(header, bytes(tampered), keyring, CHUNK, CHUNK + 10)
    assert read_range(header, bytes(tampered), keyring, 0, 10) == data[:11]


def test_range_detects_a_relabelled_final_chunk(keyring: KeyRing) -> None:
    data = pattern(3 * CHUNK)
    header, body = seal(data, keyring)
    with pytest.raises(IntegrityError):
        read_range(header, body[: 2 * SEALED], keyring, CHUNK, CHUNK + 5)
