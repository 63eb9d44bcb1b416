"""The :class:`Vault` facade: the only part of the package the web app needs.

It ties a :class:`~vault.keys.KeyRing` to a :class:`~vault.storage.BlobStorage`
and adds what an upload handler needs besides encryption: a hard size limit,
a digest and a MIME type sniffed from the content itself (a client's
``Content-Type`` is attacker controlled and never consulted).
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import BinaryIO

import filetype  # type: ignore[import-untyped]

from .crypto import (
    CHUNK_SIZE,
    SEALED_CHUNK_SIZE,
    Decryptor,
    Header,
    Readable,
    encrypt_stream,
    plaintext_size,
    rewrap_header,
)
from .exc import BlobNotFound, FileTooLarge, InvalidRange
from .keys import KeyRing
from .storage import BlobStorage, Part, check_blob_id, new_blob_id

__all__ = ["DEFAULT_MIME_TYPE", "RewrapReport", "StoredFile", "Vault", "VaultReader"]

DEFAULT_MIME_TYPE = "application/octet-stream"
_SNIFF_SIZE = 8192  # filetype never looks further than this


@dataclass(frozen=True, slots=True)
class StoredFile:
    """What the app should record in its database row for a stored upload."""

    blob_id: str
    size: int
    sha256: str
    mime_type: str
    key_id: str


@dataclass(frozen=True, slots=True)
class RewrapReport:
    """Outcome of a re-wrap pass, for the operator running a rotation."""

    key_id: str
    rewrapped: int
    already_current: int


class _MeteredReader:
    """Wraps the upload stream to count and sniff the plaintext on its way to the encryptor.

    It works on the very buffer the encryptor fills, so no copy is made. It
    never asks the source for more than one byte past ``max_size``, and refuses
    as soon as that byte arrives: that bounds the work an oversized upload can
    cause, whatever block size the encryptor reads with.
    """

    def __init__(self, source: Readable, max_size: int) -> None:
        self._source = source
        self._readinto = getattr(source, "readinto", None)
        self._max_size = max_size
        self.size = 0
        self.head = bytearray()

    def _allowance(self, wanted: int) -> int:
        return max(0, min(wanted, self._max_size - self.size + 1))

    def read(self, size: int = -1, /) -> bytes:
        if size is None or size < 0:
            size = self._max_size + 1
        data = self._source.read(self._allowance(size))
        self._account(memoryview(data))
        return data

    def readinto(self, buffer: memoryview) -> int | None:
        buffer = buffer[: self._allowance(len(buffer))]
        if self._readinto is None:
            data = self._source.read(len(buffer))
            got = len(data)
            buffer[:got] = data
        else:
            got = self._readinto(buffer)
        if got:
            self._account(buffer[:got])
        return got

    def _account(self, view: memoryview) -> None:
        self.size += len(view)
        if self.size > self._max_size:
            raise FileTooLarge(self._max_size)
        if len(self.head) < _SNIFF_SIZE:
            self.head += view[: _SNIFF_SIZE - len(self.head)]


def _sniff(head: bytes) -> str:
    kind = filetype.guess(head) if head else None
    return kind.mime if kind is not None else DEFAULT_MIME_TYPE


class VaultReader(io.RawIOBase):
    """A seekable, read-only file object over one stored file's plaintext.

    Suitable for ``send_file`` and anything else that wants a file: reads are
    served chunk by chunk, and a seek only fetches the chunk it lands in.
    Wrap it in :class:`io.BufferedReader` for many small reads.
    """

    def __init__(
        self, storage: BlobStorage, blob_id: str, decryptor: Decryptor, body_size: int
    ) -> None:
        super().__init__()
        self._storage = storage
        self._blob_id = blob_id
        self._decryptor = decryptor
        self._body_size = body_size
        self._size = plaintext_size(body_size)
        self._last_index = (body_size - 1) // SEALED_CHUNK_SIZE
        self._pos = 0
        self._chunk_index = -1
        self._chunk = b""
        self._stream: BinaryIO | None = None
        self._stream_index = -1

    @property
    def size(self) -> int:
        """Plaintext length, known without decrypting anything."""
        return self._size

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}.get(whence)
        if base is None:
            raise ValueError(f"invalid whence {whence!r}")
        if base + offset < 0:
            raise ValueError("negative seek position")
        self._pos = base + offset
        return self._pos

    def _load(self, index: int) -> None:
        if self._stream is None or self._stream_index != index:
            self._drop_stream()
            self._stream = self._storage.open(
                self._blob_id, Part.BODY, index * SEALED_CHUNK_SIZE, self._body_size
            )
            self._stream_index = index
        sealed = self._stream.read(SEALED_CHUNK_SIZE)
        while len(sealed) < SEALED_CHUNK_SIZE and index < self._last_index:
            more = self._stream.read(SEALED_CHUNK_SIZE - len(sealed))
            if not more:
                break
            sealed += more
        self._stream_index += 1
        self._chunk = self._decryptor.decrypt_chunk(index, sealed, last=index == self._last_index)
        self._chunk_index = index

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        view = memoryview(buffer).cast("B")
        if self._pos >= self._size or not len(view):
            return 0
        index = self._pos // CHUNK_SIZE
        if index != self._chunk_index:
            self._load(index)
        offset = self._pos - index * CHUNK_SIZE
        taken = min(len(view), len(self._chunk) - offset)
        view[:taken] = self._chunk[offset : offset + taken]
        self._pos += taken
        return taken

    def _drop_stream(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None

    def close(self) -> None:
        self._drop_stream()
        self._chunk = b""
        super().close()


class Vault:
    """Encrypted file store: put, read (whole or ranges), shred, rotate keys.

    Thread-safe as long as the storage back end is; every method works on a
    single blob except the rotation helpers, which scan all headers.
    """

    def __init__(self, storage: BlobStorage, keyring: KeyRing) -> None:
        self.storage = storage
        self.keyring = keyring

    def __repr__(self) -> str:
        return f"Vault({self.storage!r}, {self.keyring!r})"

    # -- writing ----------------------------------------------------------------------

    @contextmanager
    def deferred_durability(self) -> Iterator[Vault]:
        """A vault for a batch of writes that become durable together, at the end.

        Storing a small file costs little but its flushes to the device (file and
        directory, for header and body); a batch of them written through the vault this
        yields skips those, and leaving the ``with`` block normally flushes each file and
        directory once (:meth:`BlobStorage.sync`). Commit the rows that name the blobs
        only after the block: a crash before then leaves at most orphan blobs, which the
        orphan sweep removes. On an exception nothing is flushed -- the caller rolls back
        and the blobs are orphans anyway. :meth:`sync` flushes earlier, by hand.
        """
        batch = self.deferred()
        yield batch
        batch.sync()

    def deferred(self) -> Vault:
        """The vault :meth:`deferred_durability` yields, for callers that manage it."""
        return Vault(self.storage.deferred(), self.keyring)

    def sync(self) -> None:
        """Make durable what was written through this vault (see :meth:`deferred_durability`)."""
        self.storage.sync()

    def put(self, stream: Readable, *, max_size: int, mime_type: str | None = None) -> StoredFile:
        """Encrypt and store everything ``stream`` yields, up to ``max_size`` bytes.

        The body is committed before the header, and a blob only counts as
        stored once its header exists, so a crash or a refusal at any point
        leaves no readable half-file. Raises :class:`FileTooLarge` (nothing
        kept) as soon as more than ``max_size`` bytes arrive.

        ``mime_type``: the type the caller knows for certain (a received message is
        ``message/rfc822``); the content is then not sniffed, which costs more than
        encrypting a small file.
        """
        if max_size < 0:
            raise ValueError("max_size must not be negative")
        blob_id = new_blob_id()
        meter = _MeteredReader(stream, max_size)
        digest = hashlib.sha256()
        try:
            with self.storage.writer(blob_id, Part.BODY) as sink:
                result = encrypt_stream(
                    meter, sink, self.keyring, context=blob_id.encode(), digest=digest
                )
            self.storage.put(blob_id, Part.HEADER, result.header)
        except BaseException:
            self._discard(blob_id)
            raise
        return StoredFile(
            blob_id=blob_id,
            size=result.plaintext_size,
            sha256=digest.hexdigest(),
            mime_type=mime_type or _sniff(bytes(meter.head)),
            key_id=result.key_id,
        )

    def _discard(self, blob_id: str) -> None:
        for part in (Part.HEADER, Part.BODY):
            try:
                self.storage.delete(blob_id, part)
            except Exception:  # noqa: S112 - best effort; the original error matters more
                continue

    # -- reading ----------------------------------------------------------------------

    def _header(self, blob_id: str) -> bytes:
        check_blob_id(blob_id)
        try:
            return self.storage.read(blob_id, Part.HEADER)
        except BlobNotFound:
            raise BlobNotFound(blob_id, "it was shredded or never stored") from None

    def _decryptor(self, blob_id: str) -> Decryptor:
        return Decryptor(self._header(blob_id), self.keyring, context=blob_id.encode())

    def exists(self, blob_id: str) -> bool:
        """Whether ``blob_id`` is stored and not shredded."""
        return self.storage.exists(check_blob_id(blob_id), Part.HEADER)

    def size(self, blob_id: str) -> int:
        """Plaintext size, from the body length alone (no decryption)."""
        self._header(blob_id)
        return plaintext_size(self.storage.size(blob_id, Part.BODY))

    def key_id_of(self, blob_id: str) -> str:
        """Id of the KEK currently wrapping this file's data key."""
        return Header.parse(self._header(blob_id)).key_id

    def open(self, blob_id: str) -> VaultReader:
        """Open the plaintext as a seekable read-only file object."""
        decryptor = self._decryptor(blob_id)
        return VaultReader(self.storage, blob_id, decryptor, self.storage.size(blob_id, Part.BODY))

    def iter_plaintext(self, blob_id: str) -> Iterator[bytes]:
        """Return an iterator over the whole plaintext, chunk by chunk.

        A missing or shredded blob and a bad header raise here, before any
        response has started; a damaged body can only raise during iteration.
        """
        decryptor = self._decryptor(blob_id)
        body = self.storage.open(blob_id, Part.BODY)

        def pieces() -> Iterator[bytes]:
            with body:
                yield from decryptor.iter_plaintext(body)

        return pieces()

    def read_range(self, blob_id: str, start: int, end: int) -> Iterator[bytes]:
        """Yield plaintext bytes ``start``..``end`` *inclusive* (HTTP ``Range`` semantics).

        ``end`` past the last byte is clamped; a range starting beyond the end
        of the file, or with ``end < start``, raises :class:`InvalidRange`
        before anything is fetched.
        """
        decryptor = self._decryptor(blob_id)
        body_size = self.storage.size(blob_id, Part.BODY)
        size = plaintext_size(body_size)
        if start < 0 or end < start or start >= size:
            raise InvalidRange(start, end, size)

        def open_body(offset: int, stop: int) -> BinaryIO:
            return self.storage.open(blob_id, Part.BODY, offset, stop)

        return decryptor.iter_range(open_body, body_size, start, end)

    # -- destruction ------------------------------------------------------------------

    def shred(self, blob_id: str) -> None:
        """Crypto-shred: delete the header (the only copy of the wrapped data key), then the body.

        Once the header is gone the body cannot be decrypted even with every
        KEK, so the file is destroyed even where the storage keeps stale
        copies of the body (snapshots, lazy deletion). Idempotent.
        """
        check_blob_id(blob_id)
        self.storage.delete(blob_id, Part.HEADER)
        self.storage.delete(blob_id, Part.BODY)

    # -- key rotation -----------------------------------------------------------------

    def key_ids_in_use(self) -> frozenset[str]:
        """Scan every stored header and return the KEK ids they need."""
        used: set[str] = set()
        for blob_id in self.storage.iter_ids(Part.HEADER):
            try:
                used.add(Header.parse(self.storage.read(blob_id, Part.HEADER)).key_id)
            except BlobNotFound:
                continue  # shredded while we were scanning
        return frozenset(used)

    def rewrap(self) -> RewrapReport:
        """Re-seal every data key not yet under the current KEK; bodies are untouched.

        Safe to interrupt and re-run: each header is replaced atomically and
        headers already on the current key are skipped.
        """
        current = self.keyring.current_id
        rewrapped = already = 0
        for blob_id in self.storage.iter_ids(Part.HEADER):
            try:
                header = self.storage.read(blob_id, Part.HEADER)
            except BlobNotFound:
                continue
            if Header.parse(header).key_id == current:
                already += 1
                continue
            new_header = rewrap_header(header, self.keyring, context=blob_id.encode())
            if not self.storage.exists(blob_id, Part.HEADER):
                continue  # shredded meanwhile: do not resurrect its key
            self.storage.put(blob_id, Part.HEADER, new_header)
            rewrapped += 1
        return RewrapReport(key_id=current, rewrapped=rewrapped, already_current=already)

    def add_kek_and_rewrap(self) -> RewrapReport:
        """Rotate: add a fresh KEK, make it current, and re-wrap every file to it."""
        self.keyring.add()
        return self.rewrap()

    def retire_kek(self, key_id: str) -> None:
        """Delete an old KEK after checking, by scanning headers, that no file needs it."""
        self.keyring.retire(key_id, in_use=self.key_ids_in_use())
