"""Streaming authenticated encryption of file bodies (format version 1).

The construction follows the STREAM design used by age and Tink's streaming
AEAD, so a file of any size is processed in constant memory and any chunk can
be decrypted on its own (HTTP range requests).

Header (stored separately from the body, see :mod:`vault.vault`)::

    offset  size  field
    0       4     magic b"VDKV"
    4       1     format version (1)
    5       1     algorithm (1 = AES-256-GCM chunks, HKDF-SHA256 subkey)
    6       4     plaintext chunk size, big endian (65536)
    10      32    random per-file salt
    42      1     length n of the key id
    43      n     key id of the KEK that wraps the data key (ASCII)
    43+n    1     length of the wrapped data key (60)
    44+n    60    wrapped data key: 12-byte nonce + AES-GCM(KEK, data key)

The wrapped data key is sealed with every header byte before it, plus a
caller supplied context (the blob id), as associated data. So flipping any
header bit, or moving a header to another blob id, makes unwrapping fail. The
body does not use the header as associated data on purpose: key rotation
rewrites the key id and wrapped key, and must not have to touch the body.

Body: the plaintext is cut into 64 KiB chunks; chunk ``i`` is sealed with
AES-256-GCM under ``subkey = HKDF-SHA256(data key, salt, info)`` and the nonce
``i`` (11 bytes, big endian) ``|| last`` (1 byte, 1 for the final chunk). The
index stops reordering, dropping and duplicating chunks, the last flag stops
truncation and appending, and the per-file subkey stops chunks from moving
between files. Every chunk but the last is full; the last may be full, and is
empty only for an empty file, so a 0-byte file is a single 16-byte tag.
"""

from __future__ import annotations

import os
import queue
import struct
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .exc import IntegrityError, InvalidRange, VaultError
from .keys import KEY_ID_RE, KeyRing

__all__ = [
    "CHUNK_SIZE",
    "Digest",
    "FORMAT_VERSION",
    "TAG_SIZE",
    "Decryptor",
    "EncryptionResult",
    "Header",
    "ciphertext_size",
    "decrypt_range",
    "decrypt_stream",
    "encrypt_stream",
    "plaintext_size",
    "rewrap_header",
]

MAGIC = b"VDKV"
FORMAT_VERSION = 1
ALGORITHM_AES256GCM_HKDF_SHA256 = 1
CHUNK_SIZE = 64 * 1024
TAG_SIZE = 16
SALT_SIZE = 32
DATA_KEY_SIZE = 32
WRAPPED_KEY_SIZE = 12 + DATA_KEY_SIZE + TAG_SIZE
SEALED_CHUNK_SIZE = CHUNK_SIZE + TAG_SIZE
#: Chunks read, sealed and written per step of :func:`encrypt_stream`. Fewer costs
#: measurably more Python per byte; 8 or 16 measured no better than 3 on 2 cores.
_BLOCK_CHUNKS = 3
#: Block buffers when hashing too: one being read, one being sealed, one being hashed
#: (8 measured no better).
_DIGEST_SLOTS = 3

_FIXED = struct.Struct(">4sBBI32s")
_HKDF_INFO = b"vaultdesk/stream/v1"
_COUNTER_LIMIT = 1 << 88


class Readable(Protocol):
    """The part of a binary file object the encryptor needs."""

    def read(self, size: int = -1, /) -> bytes: ...


class Writable(Protocol):
    """Where sealed chunks go: a file, a storage writer, a socket wrapper.

    As with a file, ``data`` may be a reused buffer: keep a copy, not a reference.
    """

    def write(self, data: bytes | bytearray | memoryview, /) -> int | None: ...


class Digest(Protocol):
    """What :func:`encrypt_stream` needs of a hash object (``hashlib.sha256()``, say)."""

    def update(self, data: bytes | bytearray | memoryview, /) -> None: ...


@dataclass(frozen=True, slots=True)
class Header:
    """The parsed per-file header: everything needed to recover the data key."""

    salt: bytes
    key_id: str
    wrapped_key: bytes
    version: int = FORMAT_VERSION
    chunk_size: int = CHUNK_SIZE

    def _prefix(self) -> bytes:
        key_id = self.key_id.encode("ascii")
        return (
            _FIXED.pack(
                MAGIC, self.version, ALGORITHM_AES256GCM_HKDF_SHA256, self.chunk_size, self.salt
            )
            + bytes([len(key_id)])
            + key_id
            + bytes([len(self.wrapped_key)])
        )

    def to_bytes(self) -> bytes:
        """Serialise in the layout documented at the top of this module."""
        return self._prefix() + self.wrapped_key

    @staticmethod
    def wrap_aad(prefix: bytes, context: bytes) -> bytes:
        """Associated data for the wrapped key: the header up to it, then the context."""
        return prefix + len(context).to_bytes(4, "big") + context

    @classmethod
    def parse(cls, data: bytes) -> Header:
        """Parse strictly: any unexpected value means tampering or corruption."""
        malformed = IntegrityError("the file header is malformed")
        if len(data) < _FIXED.size + 2:
            raise malformed
        magic, version, algorithm, chunk_size, salt = _FIXED.unpack_from(data)
        if magic != MAGIC:
            raise malformed
        if version != FORMAT_VERSION or algorithm != ALGORITHM_AES256GCM_HKDF_SHA256:
            raise IntegrityError(f"unsupported file format {version}/{algorithm}")
        if chunk_size != CHUNK_SIZE:
            raise malformed
        pos = _FIXED.size
        id_len = data[pos]
        key_id_raw = data[pos + 1 : pos + 1 + id_len]
        pos += 1 + id_len
        if pos >= len(data) or data[pos] != WRAPPED_KEY_SIZE:
            raise malformed
        wrapped = data[pos + 1 :]
        if len(wrapped) != WRAPPED_KEY_SIZE:
            raise malformed
        try:
            key_id = key_id_raw.decode("ascii")
        except UnicodeDecodeError:
            raise malformed from None
        if not KEY_ID_RE.match(key_id):
            raise malformed
        return cls(salt=salt, key_id=key_id, wrapped_key=wrapped)


@dataclass(frozen=True, slots=True)
class EncryptionResult:
    """What :func:`encrypt_stream` produced besides the body it wrote."""

    header: bytes
    key_id: str
    plaintext_size: int
    ciphertext_size: int


def ciphertext_size(size: int) -> int:
    """Body length for ``size`` plaintext bytes (one tag per chunk, at least one chunk)."""
    chunks = max(1, -(-size // CHUNK_SIZE))
    return size + chunks * TAG_SIZE


def plaintext_size(body_size: int) -> int:
    """Plaintext length of a body of ``body_size`` bytes.

    Lengths that no encryption could have produced are refused here, which
    catches most truncation before any chunk is even read.
    """
    if body_size < TAG_SIZE:
        raise IntegrityError("the file body is truncated")
    chunks = -(-body_size // SEALED_CHUNK_SIZE)
    last = body_size - (chunks - 1) * SEALED_CHUNK_SIZE
    if last < TAG_SIZE or (last == TAG_SIZE and chunks > 1):
        raise IntegrityError("the file body has an impossible length")
    return body_size - chunks * TAG_SIZE


def _derive_subkey(data_key: bytes, salt: bytes) -> AESGCM:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=_HKDF_INFO)
    return AESGCM(hkdf.derive(data_key))


def _nonce(index: int, last: bool) -> bytes:
    if index >= _COUNTER_LIMIT:
        raise VaultError("file too long for the chunk counter")
    return index.to_bytes(11, "big") + (b"\x01" if last else b"\x00")


def _read_full(src: Readable, view: memoryview) -> int:
    """Fill ``view`` from ``src`` unless EOF comes first; returns the byte count.

    ``readinto`` fills the preallocated buffer without creating a new bytes
    object per chunk; a single call may legally return fewer bytes than asked
    (pipes, sockets, request bodies), so keep reading until full or EOF.
    """
    readinto = getattr(src, "readinto", None)
    total = 0
    wanted = len(view)
    while total < wanted:
        if readinto is not None:
            got = readinto(view[total:])
        else:
            data = src.read(wanted - total)
            got = len(data) if data is not None else None
            if got:
                view[total : total + got] = data
        if got is None:
            raise VaultError("the source stream is non-blocking and had no data")
        if got == 0:
            break
        total += got
    return total


def _new_header(keyring: KeyRing, context: bytes) -> tuple[bytes, str, bytes]:
    data_key = os.urandom(DATA_KEY_SIZE)
    salt = os.urandom(SALT_SIZE)
    key_id = keyring.current_id
    draft = Header(salt=salt, key_id=key_id, wrapped_key=bytes(WRAPPED_KEY_SIZE))
    wrapped_id, wrapped = keyring.wrap(data_key, Header.wrap_aad(draft._prefix(), context))
    if wrapped_id != key_id:
        # The current key changed between the two calls (concurrent rotation): retry
        # so the key id written in the header always matches the wrapping key.
        return _new_header(keyring, context)
    header = Header(salt=salt, key_id=key_id, wrapped_key=wrapped)
    return header.to_bytes(), key_id, data_key


class _ReservingSink(Writable, Protocol):
    """A sink that can lend the next bytes of its own buffer, to seal into in place.

    ``reserve(size)`` returns a writable view of exactly ``size`` bytes that
    counts as written; it must be filled before the next call on the sink.
    ``None`` means those bytes would straddle two of its buffers: ``write``
    them instead. The local storage writer offers this, so ciphertext goes
    from AES-GCM straight into the buffer the disk is written from, with no
    copy in between.
    """

    def reserve(self, size: int, /) -> memoryview | None: ...


class _Batcher:
    """Gives any :class:`Writable` the reserving interface, over one buffer of its own.

    Sealed chunks are collected and passed on a few at a time, so a plain file
    or an S3 writer still gets one ``write`` per block rather than per chunk.
    """

    def __init__(self, dst: Writable, size: int = _BLOCK_CHUNKS * SEALED_CHUNK_SIZE) -> None:
        self._dst = dst
        self._buffer = memoryview(bytearray(size))
        self._filled = 0

    def reserve(self, size: int, /) -> memoryview:
        if self._filled + size > len(self._buffer):
            self.flush()
        start = self._filled
        self._filled += size
        return self._buffer[start : self._filled]

    def write(self, data: bytes | bytearray | memoryview, /) -> int | None:
        self.flush()
        return self._dst.write(data)

    def flush(self) -> None:
        if self._filled:
            self._dst.write(self._buffer[: self._filled])
            self._filled = 0


def _sealer(aead: AESGCM) -> Callable[[bytes, memoryview, None, memoryview], int]:
    """``encrypt_into(nonce, data, aad, buffer)`` where ``cryptography`` has it (>= 46).

    Older releases only return new ``bytes``; copying those into the buffer
    gives the same output, one allocation and one copy more per chunk.
    """
    encrypt_into: Callable[[bytes, memoryview, None, memoryview], int] | None
    encrypt_into = getattr(aead, "encrypt_into", None)
    if encrypt_into is not None:
        return encrypt_into

    def encrypt_and_copy(nonce: bytes, data: memoryview, aad: None, buffer: memoryview) -> int:
        buffer[:] = aead.encrypt(nonce, data, aad)
        return len(buffer)

    return encrypt_and_copy


class _BlockHasher:
    """Feeds a digest block by block, in order, on one helper thread.

    The caller must not refill a block's buffer before :meth:`release` of that
    buffer's slot returns. Two plain queues and a thread rather than an
    executor: a ``Future`` per block costs locks and Python calls on the very
    thread this is meant to unload. The thread is only started once a second
    block shows up: a file that fits in one block (most uploads) is hashed
    inline, where a thread would cost more than it saves.
    """

    def __init__(self, digest: Digest, slots: int) -> None:
        self._digest = digest
        self._busy = [False] * slots
        self._todo: queue.SimpleQueue[tuple[int, memoryview] | None] = queue.SimpleQueue()
        self._done: queue.SimpleQueue[int] = queue.SimpleQueue()
        self._error: BaseException | None = None
        self._first: tuple[int, memoryview] | None = None
        self._thread: threading.Thread | None = None

    def submit(self, slot: int, block: memoryview) -> None:
        if self._thread is None:
            if self._first is None:
                self._first = (slot, block)
                return
            self._thread = threading.Thread(target=self._run, name="vault-digest", daemon=True)
            self._thread.start()
            self._busy[self._first[0]] = True
            self._todo.put(self._first)
            self._first = None
        self._busy[slot] = True
        self._todo.put((slot, block))

    def _run(self) -> None:
        while (item := self._todo.get()) is not None:
            slot, block = item
            if self._error is None:  # after an error, keep acknowledging so nobody waits forever
                try:
                    self._digest.update(block)
                except BaseException as error:  # re-raised in the caller's thread
                    self._error = error
            self._done.put(slot)

    def release(self, slot: int) -> None:
        """Return once the digest is done with the buffer in ``slot`` (re-raising its error)."""
        if self._first is not None and self._first[0] == slot:
            self._digest.update(self._first[1])
            self._first = None
        while self._busy[slot]:
            self._busy[self._done.get()] = False
        if self._error is not None:
            raise self._error

    def finish(self) -> None:
        """Return once every submitted block is in the digest."""
        if self._first is not None:
            self.release(self._first[0])
        for slot in range(len(self._busy)):
            self.release(slot)

    def close(self) -> None:
        """Stop the thread; after a failure too, so no buffer is read after it is freed."""
        if self._thread is not None:
            self._todo.put(None)
            self._thread.join()
            self._thread = None


def encrypt_stream(
    src: Readable,
    dst: Writable,
    keyring: KeyRing,
    *,
    context: bytes = b"",
    digest: Digest | None = None,
) -> EncryptionResult:
    """Encrypt everything ``src`` yields into ``dst``; return the header to keep beside it.

    The source is read a block of :data:`_BLOCK_CHUNKS` chunks at a time into
    preallocated buffers, and each chunk is sealed with ``encrypt_into`` into
    room that ``dst`` lends (see :class:`_ReservingSink`) or, for an ordinary
    writable, into a buffer passed on once per block: at 64 KiB a chunk,
    per-chunk reads, writes and fresh ``bytes`` objects were a real share of
    the cost. Like a file, ``dst`` must be done with what ``write`` hands it
    when the call returns. A block is read before the previous one is sealed,
    because only then is it known whether the previous one holds the last chunk.

    ``digest`` (a ``hashlib`` object, say) is updated with the plaintext, in
    order, one whole block per call, on a helper thread: SHA-256 costs more
    CPU than AES-GCM, and this way it runs on another core while this thread
    reads and seals instead of adding to them. Memory use is fixed whatever
    the size: two blocks in and one out (576 KiB), one more block in with a
    digest, so the hashing thread can fall a block behind.
    """
    header, key_id, data_key = _new_header(keyring, context)
    aead = _derive_subkey(data_key, Header.parse(header).salt)
    seal_into = _sealer(aead)
    block_size = _BLOCK_CHUNKS * CHUNK_SIZE
    slots = 2 if digest is None else _DIGEST_SLOTS
    ring = [memoryview(bytearray(block_size)) for _ in range(slots)]
    sink: _ReservingSink = dst if hasattr(dst, "reserve") else _Batcher(dst)  # type: ignore[assignment]
    scratch: memoryview | None = None
    hasher = None if digest is None else _BlockHasher(digest, len(ring))
    index = 0
    total = 0
    written = 0
    slot = 0
    try:
        current = ring[slot][: _read_full(src, ring[slot])]
        while True:
            if hasher is not None and len(current):
                hasher.submit(slot, current)
            if len(current) == block_size:
                slot = (slot + 1) % len(ring)
                if hasher is not None:
                    hasher.release(slot)
                following = ring[slot][: _read_full(src, ring[slot])]
            else:
                following = current[:0]  # a short block: the source is exhausted
            final_block = not following
            chunks = max(1, -(-len(current) // CHUNK_SIZE))  # an empty file is one empty chunk
            for number in range(chunks):
                piece = current[number * CHUNK_SIZE : (number + 1) * CHUNK_SIZE]
                nonce = _nonce(index, final_block and number == chunks - 1)
                size = len(piece) + TAG_SIZE
                target = sink.reserve(size)
                if target is None:  # it would straddle two of the sink's buffers
                    if scratch is None:
                        scratch = memoryview(bytearray(SEALED_CHUNK_SIZE))
                    seal_into(nonce, piece, None, scratch[:size])
                    sink.write(scratch[:size])
                else:
                    seal_into(nonce, piece, None, target)
                index += 1
                written += size
            total += len(current)
            if final_block:
                break
            current = following
        if isinstance(sink, _Batcher):
            sink.flush()
        if hasher is not None:
            hasher.finish()
    finally:
        if hasher is not None:
            hasher.close()
    return EncryptionResult(
        header=header, key_id=key_id, plaintext_size=total, ciphertext_size=written
    )


class Decryptor:
    """Opens one file's header once, then decrypts any of its chunks."""

    def __init__(self, header: bytes, keyring: KeyRing, *, context: bytes = b"") -> None:
        parsed = Header.parse(header)
        prefix = header[: len(header) - WRAPPED_KEY_SIZE]
        data_key = keyring.unwrap(
            parsed.key_id, parsed.wrapped_key, Header.wrap_aad(prefix, context)
        )
        self.header = parsed
        self._aead = _derive_subkey(data_key, parsed.salt)

    def decrypt_chunk(self, index: int, sealed: bytes, *, last: bool) -> bytes:
        """Open chunk ``index``; :class:`IntegrityError` if it is not exactly that chunk."""
        try:
            return self._aead.decrypt(_nonce(index, last), sealed, None)
        except InvalidTag:
            raise IntegrityError(f"chunk {index} of the file failed authentication") from None

    def iter_plaintext(self, body: Readable) -> Iterator[bytes]:
        """Decrypt a whole body read sequentially, without knowing its length.

        Each chunk is authenticated before it is yielded, but truncation can
        only be noticed at the very end: consumers must treat an exception
        raised late in the iteration as "the whole file is bad".
        """
        current = _read_exact(body, SEALED_CHUNK_SIZE)
        index = 0
        while True:
            if len(current) < SEALED_CHUNK_SIZE:
                if len(current) < TAG_SIZE or (len(current) == TAG_SIZE and index > 0):
                    raise IntegrityError("the file body is truncated")
                yield self.decrypt_chunk(index, current, last=True)
                return
            following = _read_exact(body, SEALED_CHUNK_SIZE)
            yield self.decrypt_chunk(index, current, last=not following)
            if not following:
                return
            current = following
            index += 1

    def iter_range(
        self,
        open_body: Callable[[int, int], BinaryIO],
        body_size: int,
        start: int,
        end: int,
    ) -> Iterator[bytes]:
        """Yield plaintext bytes ``start`` to ``end`` *inclusive*, as in HTTP ``Range``.

        Only the chunks overlapping the range are fetched (``open_body(offset,
        stop)`` must return the ciphertext bytes ``offset`` up to ``stop``) and
        decrypted. An ``end`` past the last byte is clamped, as RFC 9110 asks;
        a range that does not overlap the file raises :class:`InvalidRange`.
        """
        size = plaintext_size(body_size)
        if start < 0 or end < start or start >= size:
            raise InvalidRange(start, end, size)
        end = min(end, size - 1)
        last_index = (body_size - 1) // SEALED_CHUNK_SIZE
        first = start // CHUNK_SIZE
        final = end // CHUNK_SIZE
        offset = first * SEALED_CHUNK_SIZE
        stop = min((final + 1) * SEALED_CHUNK_SIZE, body_size)
        stream = open_body(offset, stop)
        try:
            for index in range(first, final + 1):
                sealed = _read_exact(stream, min(SEALED_CHUNK_SIZE, stop - offset))
                offset += len(sealed)
                plain = self.decrypt_chunk(index, sealed, last=index == last_index)
                lo = start - index * CHUNK_SIZE if index == first else 0
                hi = end - index * CHUNK_SIZE + 1 if index == final else len(plain)
                yield plain if (lo, hi) == (0, len(plain)) else plain[lo:hi]
        finally:
            close = getattr(stream, "close", None)
            if close is not None:
                close()


def _read_exact(src: Readable, size: int) -> bytes:
    """Read ``size`` bytes unless EOF comes first (short reads are not EOF)."""
    data = src.read(size)
    if len(data) == size or not data:
        return data
    parts = [data]
    missing = size - len(data)
    while missing:
        more = src.read(missing)
        if not more:
            break
        parts.append(more)
        missing -= len(more)
    return b"".join(parts)


def decrypt_stream(
    header: bytes, body: Readable, keyring: KeyRing, *, context: bytes = b""
) -> Iterator[bytes]:
    """Decrypt a whole body sequentially; see :meth:`Decryptor.iter_plaintext`."""
    return Decryptor(header, keyring, context=context).iter_plaintext(body)


def decrypt_range(
    header: bytes,
    open_body: Callable[[int, int], BinaryIO],
    body_size: int,
    start: int,
    end: int,
    keyring: KeyRing,
    *,
    context: bytes = b"",
) -> Iterator[bytes]:
    """Yield plaintext bytes ``start``..``end`` inclusive; see :meth:`Decryptor.iter_range`."""
    return Decryptor(header, keyring, context=context).iter_range(open_body, body_size, start, end)


def rewrap_header(header: bytes, keyring: KeyRing, *, context: bytes = b"") -> bytes:
    """Return ``header`` with its data key re-sealed under the ring's current KEK.

    The salt and data key stay the same, so the body remains valid untouched.
    """
    parsed = Header.parse(header)
    prefix = header[: len(header) - WRAPPED_KEY_SIZE]
    data_key = keyring.unwrap(parsed.key_id, parsed.wrapped_key, Header.wrap_aad(prefix, context))
    draft = Header(salt=parsed.salt, key_id=keyring.current_id, wrapped_key=bytes(WRAPPED_KEY_SIZE))
    key_id, wrapped = keyring.wrap(data_key, Header.wrap_aad(draft._prefix(), context))
    if key_id != draft.key_id:
        return rewrap_header(header, keyring, context=context)
    return Header(salt=parsed.salt, key_id=key_id, wrapped_key=wrapped).to_bytes()
