"""Blob back ends: where headers and encrypted bodies physically live.

A back end only ever sees ciphertext and ids the vault generated itself. Ids
are checked against :data:`BLOB_ID_RE` on every call, so no string coming
from a user (file name, URL segment) can reach a file system path or an S3
key. Each blob has two parts stored as separate objects, a tiny header and
the body; see :class:`Part` for why.
"""

from __future__ import annotations

import copy
import ctypes
import enum
import errno
import io
import os
import queue
import re
import secrets
import tempfile
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, BinaryIO, Protocol, TypeAlias
from urllib.parse import parse_qs, unquote, urlsplit

try:
    import fcntl
except ImportError:  # not POSIX: no O_DIRECT either, buffered writes only
    fcntl = None  # type: ignore[assignment]

from ._fs import fsync_dir
from .exc import BlobNotFound, ConfigurationError, InvalidBlobId

#: What writers accept; ``collections.abc.Buffer`` would need Python 3.12.
Buffer: TypeAlias = bytes | bytearray | memoryview

__all__ = [
    "BLOB_ID_RE",
    "BlobStorage",
    "BlobWriter",
    "LocalDirectoryStorage",
    "Part",
    "S3Storage",
    "check_blob_id",
    "fsync_file",
    "new_blob_id",
    "storage_from_url",
]

#: 128 random bits as lowercase hex: nothing else is ever accepted as a blob id.
BLOB_ID_RE = re.compile(r"\A[0-9a-f]{32}\Z")

_DEFAULT_PART_SIZE = 8 * 1024 * 1024  # S3 minimum is 5 MiB for every part but the last
_COPY_SIZE = 1024 * 1024
_WRITEBACK_EVERY = 8 * 1024 * 1024
#: O_DIRECT wants buffer addresses, lengths and file offsets aligned to the device's
#: logical block; 4 KiB covers every common device (512-byte ones included).
_ALIGN = 4096
_O_DIRECT: int = getattr(os, "O_DIRECT", 0)


def new_blob_id() -> str:
    """Return a fresh unguessable blob id (128 random bits, hex)."""
    return secrets.token_hex(16)


def check_blob_id(blob_id: object) -> str:
    """Return ``blob_id`` if it is a well-formed id, else raise :class:`InvalidBlobId`."""
    if not isinstance(blob_id, str) or not BLOB_ID_RE.match(blob_id):
        raise InvalidBlobId(f"invalid blob id {blob_id!r}")
    return blob_id


class Part(enum.StrEnum):
    """The two objects making up a blob.

    The header is kept apart from the body so that key rotation rewrites only
    ~100-byte objects (S3 cannot rewrite part of an object), and so that
    crypto-shredding is "delete the header": without it the body is noise.
    """

    HEADER = "hdr"
    BODY = "body"


class BlobWriter(Protocol):
    """Sink handed out by :meth:`BlobStorage.writer`."""

    def write(self, data: Buffer, /) -> int: ...


class _Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class BlobStorage(ABC):
    """Minimal interface every back end implements.

    Writes go through :meth:`writer`, a context manager that publishes the
    object only if the ``with`` block finishes without an exception, so a
    failed or refused upload never leaves a partial object behind.
    """

    @abstractmethod
    def writer(self, blob_id: str, part: Part) -> AbstractContextManager[BlobWriter]:
        """Stream a new version of the object; it replaces any old one atomically on success."""

    @abstractmethod
    def open(self, blob_id: str, part: Part, start: int = 0, stop: int | None = None) -> BinaryIO:
        """Return a stream of bytes ``start`` up to (excluding) ``stop`` of the object."""

    @abstractmethod
    def size(self, blob_id: str, part: Part) -> int:
        """Length of the object in bytes; :class:`BlobNotFound` if it does not exist."""

    @abstractmethod
    def exists(self, blob_id: str, part: Part) -> bool:
        """Whether the object exists."""

    @abstractmethod
    def delete(self, blob_id: str, part: Part) -> None:
        """Remove the object durably; deleting a missing object is not an error."""

    @abstractmethod
    def iter_ids(self, part: Part = Part.HEADER) -> Iterator[str]:
        """Yield the id of every blob that has ``part`` (order unspecified)."""

    def deferred(self) -> BlobStorage:
        """A view of this storage whose writes are made durable later, by :meth:`sync`.

        For many small blobs written together (a batch of received mail), a flush to the
        device per object is most of the cost; the caller writes them all through the view
        and calls its :meth:`sync` once, before anything that names them is committed.
        Until then a crash may lose or tear them: they must not be referenced yet. The
        default suits back ends whose writes are durable when they return (S3): the view
        is the storage itself and ``sync`` has nothing to do.
        """
        return self

    def sync(self) -> None:
        """Make durable everything written through this :meth:`deferred` view so far."""
        return  # writes of this back end are durable when they return

    def put(self, blob_id: str, part: Part, data: bytes | _Readable) -> int:
        """Store ``data`` (bytes or a readable stream) and return its length."""
        total = 0
        with self.writer(blob_id, part) as sink:
            if isinstance(data, bytes | bytearray | memoryview):
                sink.write(data)
                return len(data)
            while chunk := data.read(_COPY_SIZE):
                sink.write(chunk)
                total += len(chunk)
        return total

    def read(self, blob_id: str, part: Part) -> bytes:
        """Return a whole object; meant for headers, never for bodies."""
        with self.open(blob_id, part) as stream:
            return stream.read()


class _BoundedReader(io.RawIOBase):
    """A file positioned at ``start`` that reports EOF at ``stop``."""

    def __init__(self, raw: io.FileIO, remaining: int) -> None:
        super().__init__()
        self._raw = raw
        self._remaining = remaining

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        view = memoryview(buffer).cast("B")
        if self._remaining <= 0 or not len(view):
            return 0
        got = self._raw.readinto(view[: self._remaining]) or 0
        self._remaining -= got
        return got

    def close(self) -> None:
        self._raw.close()
        super().close()


def _aligned_buffer(size: int) -> memoryview:
    """A writable buffer of ``size`` bytes whose address is a multiple of ``_ALIGN``.

    ``O_DIRECT`` transfers straight from user memory, which the kernel only
    accepts at block-aligned addresses. A ``bytearray`` rather than an anonymous
    ``mmap`` keeps the buffers visible to ``tracemalloc``, so memory tests see them.
    """
    raw = bytearray(size + _ALIGN)
    address = ctypes.addressof(ctypes.c_char.from_buffer(raw))
    start = -address % _ALIGN
    return memoryview(raw)[start : start + size]


def _set_direct(fd: int, enabled: bool) -> bool:
    """Switch ``O_DIRECT`` on or off for an open file; False where that is refused."""
    if not _O_DIRECT or fcntl is None:
        return False
    try:
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        fcntl.fcntl(fd, fcntl.F_SETFL, flags | _O_DIRECT if enabled else flags & ~_O_DIRECT)
    except OSError:
        return False
    return True


class _WriteBehind:
    """File writer that hands full buffers to a background thread.

    Encryption and hashing keep the caller's thread busy; without this the disk
    would sit idle while they run and vice versa. Writes are copied into a pool
    of at most ``buffers`` aligned buffers of ``buffer_size`` bytes, which is all
    the memory this writer ever holds, whatever the file size; the caller may
    reuse its own buffer as soon as ``write`` returns. A full buffer is handed
    to the thread at the next call rather than at once, so that what
    :meth:`reserve` lent is filled before it is written.

    With ``direct`` the file is written with ``O_DIRECT`` where the file system
    allows it: the bytes go from the buffer to the device without being copied
    into the page cache first. That copy (and the page-cache churn after it)
    costs as much CPU as SHA-256 on some virtual machines, CPU the encryptor
    needs, and the ciphertext is not going to be read back soon anyway. The
    last, partial buffer and any file system that refuses ``O_DIRECT`` fall
    back to ordinary buffered writes with early writeback.
    """

    def __init__(
        self, fd: int, *, buffers: int, buffer_size: int = _COPY_SIZE, direct: bool = False
    ) -> None:
        if buffers < 1 or buffer_size % _ALIGN:
            raise ValueError("need at least one buffer of a multiple of the alignment")
        self._fd = fd
        self._buffer_size = buffer_size
        self._spare_buffers = buffers
        self._free: queue.SimpleQueue[memoryview] = queue.SimpleQueue()
        self._full: queue.SimpleQueue[tuple[memoryview, int] | None] = queue.SimpleQueue()
        self._current: memoryview | None = None
        self._filled = 0
        self._want_direct = direct
        self._direct = False
        self._error: BaseException | None = None
        self._unsynced = 0
        self._synced_offset = 0
        # Started with the first full buffer: most blobs (headers aside, mail originals,
        # small attachments) fit in one buffer, and for them a thread and two fcntl calls
        # cost more than the write itself. Such a file is written by ``finish`` inline.
        self._thread: threading.Thread | None = None

    @property
    def direct(self) -> bool:
        """Whether the bytes are currently written with ``O_DIRECT``."""
        return self._direct

    def write(self, data: Buffer, /) -> int:
        if self._error is not None:
            raise self._error
        source = memoryview(data).cast("B")
        size = len(source)
        while len(source):
            if self._filled == self._buffer_size:
                self._hand_over()
            if self._current is None:
                self._current = self._take_buffer()
            taken = min(self._buffer_size - self._filled, len(source))
            self._current[self._filled : self._filled + taken] = source[:taken]
            self._filled += taken
            source = source[taken:]
        return size

    def reserve(self, size: int, /) -> memoryview | None:
        """Lend the next ``size`` bytes of the current buffer, to be filled in place.

        The encryptor seals straight into the buffer the disk is written from,
        saving a copy of every byte. The view counts as written and must be
        filled before the next call; ``None`` when it would straddle two buffers
        (about one chunk per buffer), in which case the caller uses ``write``.
        """
        if self._error is not None:
            raise self._error
        if self._filled == self._buffer_size:
            self._hand_over()
        if self._current is None:
            self._current = self._take_buffer()
        if self._filled + size > self._buffer_size:
            return None
        start = self._filled
        self._filled += size
        return self._current[start : self._filled]

    def _take_buffer(self) -> memoryview:
        """A free buffer: a recycled one, a new one while under the limit, else wait."""
        try:
            return self._free.get_nowait()
        except queue.Empty:
            pass
        if self._spare_buffers:
            self._spare_buffers -= 1
            return _aligned_buffer(self._buffer_size)
        return self._free.get()  # the writer thread always gives buffers back, even failing

    def _start(self) -> None:
        self._direct = self._want_direct and _set_direct(self._fd, True)
        self._thread = threading.Thread(target=self._run, name="vault-write-behind", daemon=True)
        self._thread.start()

    def _hand_over(self) -> None:
        if self._current is not None and self._filled:
            if self._thread is None:
                self._start()
            self._full.put((self._current, self._filled))
            self._current = None
            self._filled = 0

    def _run(self) -> None:
        while (item := self._full.get()) is not None:
            buffer, length = item
            if self._error is None:  # after an error, keep draining so write() never blocks
                try:
                    self._write_all(buffer[:length])
                except BaseException as error:  # re-raised in the producer thread
                    self._error = error
            self._free.put(buffer)

    def _write_all(self, view: memoryview) -> None:
        if self._direct and len(view) % _ALIGN:
            self._direct = not _set_direct(self._fd, False)  # the tail cannot go direct
        while len(view):
            try:
                written = os.write(self._fd, view)
            except OSError as error:
                # Some file systems accept the flag when it is set but refuse the writes.
                if error.errno != errno.EINVAL or not self._direct:
                    raise
                if not _set_direct(self._fd, False):
                    raise
                self._direct = False
                continue
            view = view[written:]
            if not self._direct:
                self._unsynced += written
        if self._unsynced >= _WRITEBACK_EVERY:
            self._start_writeback()

    def _start_writeback(self) -> None:
        """Ask the kernel to start writing what we have so far to the device.

        Only for buffered writes: otherwise the whole file sits dirty in the
        page cache until the final fsync, and the device idles while we
        encrypt. On Linux DONTNEED starts asynchronous writeback of the range
        (it cannot drop dirty pages); it also keeps ciphertext from crowding
        useful data out of the cache.
        """
        self._unsynced = 0
        fadvise = getattr(os, "posix_fadvise", None)
        if fadvise is None:
            return
        end = os.lseek(self._fd, 0, os.SEEK_CUR)
        fadvise(self._fd, self._synced_offset, end - self._synced_offset, os.POSIX_FADV_DONTNEED)
        self._synced_offset = end

    def finish(self) -> None:
        """Wait for every write to reach the file; re-raise the first write error."""
        if self._thread is None:  # it all fitted in one buffer: write it here, buffered
            if self._current is not None and self._filled:
                self._write_all(self._current[: self._filled])
            self._current = None
            self._filled = 0
            return
        self._hand_over()
        self._full.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error

    def abandon(self) -> None:
        """Stop the thread after a failure without raising a second error."""
        self._current = None
        self._filled = 0
        if self._thread is None:
            return
        self._full.put(None)
        self._thread.join()


#: From this many files on, one ``syncfs(2)`` of the vault's file system replaces the
#: per-file and per-directory fsyncs of a deferred batch (where the C library has it).
SYNCFS_FROM = 512
_SYNC_THREADS = 8


def _libc_syncfs() -> Any:
    """``syncfs(2)`` through ctypes (``os`` has no binding), or None where it is missing."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        function = libc.syncfs
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int]
    function.restype = ctypes.c_int
    return function


_SYNCFS = _libc_syncfs() if os.name == "posix" else None


def syncfs(path: Path) -> bool:
    """Flush the whole file system holding ``path`` to its device; False if unsupported."""
    if _SYNCFS is None:
        return False
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        if _SYNCFS(fd) != 0:
            number = ctypes.get_errno()
            raise OSError(number, os.strerror(number), str(path))
    finally:
        os.close(fd)
    return True


def fsync_file(path: Path) -> None:
    """Flush one file's data and metadata; a file deleted meanwhile needs nothing."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _PendingSync:
    """Files written without fsync and the directories their names were added to."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.files: set[Path] = set()
        self.directories: set[Path] = set()

    def add(self, path: Path) -> None:
        with self._lock:
            self.files.add(path)
            self.directories.add(path.parent)

    def take(self) -> tuple[list[Path], list[Path]]:
        with self._lock:
            files, directories = sorted(self.files), sorted(self.directories)
            self.files.clear()
            self.directories.clear()
        return files, directories


class LocalDirectoryStorage(BlobStorage):
    """Blobs as files under one directory, fanned out by the first two hex digits.

    Objects are written to a temporary file in the target directory, fsynced,
    renamed over the final name and the directory fsynced, so a crash leaves
    either the old object or the new one, never a torn one.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        write_behind_mb: int = 16,
        direct_io: bool = True,
    ) -> None:
        """``write_behind_mb`` bounds the memory queued for the disk per write.

        More lets encryption run further ahead of a bursty device but costs
        that much memory per concurrent upload; buffers are only allocated as
        a write needs them, so small files use little. ``direct_io`` writes
        bodies with ``O_DIRECT`` where the file system supports it (see
        :class:`_WriteBehind` for why); turn it off to go through the page cache.
        """
        if write_behind_mb < 1:
            raise ConfigurationError("write_behind_mb must be at least 1")
        self.write_behind_mb = write_behind_mb
        self.direct_io = direct_io
        self.root = Path(root).absolute()
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._pending: _PendingSync | None = None  # set on a deferred() view only
        self._fans: set[str] = set()  # fan-out directories known to exist (views share it)

    def __repr__(self) -> str:
        return f"LocalDirectoryStorage({str(self.root)!r})"

    def path(self, blob_id: str, part: Part) -> Path:
        """File system path of an object (the id is validated first)."""
        check_blob_id(blob_id)
        return self.root / blob_id[:2] / f"{blob_id}.{Part(part).value}"

    @contextmanager
    def _replacing(self, blob_id: str, part: Part) -> Iterator[int]:
        """Yield a descriptor of a fresh temporary file that replaces the object on success."""
        target = self.path(blob_id, part)
        fan = blob_id[:2]
        if fan not in self._fans:
            target.parent.mkdir(mode=0o700, exist_ok=True)
            self._fans.add(fan)
        try:
            fd, temp_name = tempfile.mkstemp(prefix=".tmp-", dir=target.parent)  # mode 0600
        except FileNotFoundError:  # the directory went away behind our back (a wiped vault)
            target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd, temp_name = tempfile.mkstemp(prefix=".tmp-", dir=target.parent)
        temp = Path(temp_name)
        pending = self._pending
        try:
            yield fd
            if pending is None:
                os.fsync(fd)
            os.close(fd)
            fd = -1
            os.replace(temp, target)
        except BaseException:
            if fd >= 0:
                os.close(fd)
            temp.unlink(missing_ok=True)
            raise
        if pending is None:
            fsync_dir(target.parent)
        else:
            pending.add(target)

    def deferred(self) -> LocalDirectoryStorage:
        """A view writing without fsync; its :meth:`sync` flushes the batch at once.

        Each object is still written to a temporary file and renamed into place, so no
        reader ever sees half of one; only the flush to the device waits for ``sync``.
        Deletions stay durable at once (shredding must not be undone by a crash).
        """
        view = copy.copy(self)
        view._pending = _PendingSync()
        return view

    def sync(self) -> None:
        """Flush every file written through this view, then every directory they are in.

        Each file and each distinct directory once, by a few threads (fsync releases the
        GIL and the device takes concurrent flushes); from :data:`SYNCFS_FROM` files on,
        a single ``syncfs(2)`` of the vault's file system instead. Raises on the first
        failure: the caller must not commit rows naming blobs that may not be durable.
        """
        if self._pending is None:
            return
        files, directories = self._pending.take()
        if not files:
            return
        if len(files) >= SYNCFS_FROM and syncfs(self.root):
            return
        if len(files) + len(directories) <= 2:
            for path in files:
                fsync_file(path)
            for directory in directories:
                fsync_dir(directory)
            return
        threads = min(_SYNC_THREADS, len(files))
        with ThreadPoolExecutor(threads, thread_name_prefix="vault-sync") as pool:
            list(pool.map(fsync_file, files))  # list(): re-raises the first error
            list(pool.map(fsync_dir, directories))

    @contextmanager
    def writer(self, blob_id: str, part: Part) -> Iterator[BlobWriter]:
        with self._replacing(blob_id, part) as fd:
            sink = _WriteBehind(fd, buffers=self.write_behind_mb, direct=self.direct_io)
            try:
                yield sink
                sink.finish()
            except BaseException:
                sink.abandon()
                raise

    def put(self, blob_id: str, part: Part, data: bytes | _Readable) -> int:
        """Store ``data``; bytes (headers, mostly) are written inline.

        A header is about 100 bytes: a write-behind thread and a 1 MiB aligned
        buffer would cost more than the write itself.
        """
        if not isinstance(data, bytes | bytearray | memoryview):
            return super().put(blob_id, part, data)
        view = memoryview(data).cast("B")
        with self._replacing(blob_id, part) as fd:
            while len(view):
                view = view[os.write(fd, view) :]
        return len(data)

    def open(self, blob_id: str, part: Part, start: int = 0, stop: int | None = None) -> BinaryIO:
        path = self.path(blob_id, part)
        try:
            handle = open(path, "rb", buffering=0)  # closed by the caller
        except FileNotFoundError:
            raise BlobNotFound(blob_id, f"no {Part(part).name.lower()}") from None
        if start:
            handle.seek(start)
        if stop is None:
            return io.BufferedReader(handle, _COPY_SIZE)
        bounded = _BoundedReader(handle, max(0, stop - start))
        return io.BufferedReader(bounded, _COPY_SIZE)

    def size(self, blob_id: str, part: Part) -> int:
        try:
            return self.path(blob_id, part).stat().st_size
        except FileNotFoundError:
            raise BlobNotFound(blob_id, f"no {Part(part).name.lower()}") from None

    def exists(self, blob_id: str, part: Part) -> bool:
        return self.path(blob_id, part).is_file()

    def delete(self, blob_id: str, part: Part) -> None:
        path = self.path(blob_id, part)
        try:
            path.unlink()
        except FileNotFoundError:
            return
        fsync_dir(path.parent)

    def iter_ids(self, part: Part = Part.HEADER) -> Iterator[str]:
        suffix = f".{Part(part).value}"
        for fan in self.root.iterdir():
            if len(fan.name) != 2 or not fan.is_dir():
                continue
            for entry in fan.iterdir():
                name = entry.name
                if name.endswith(suffix) and BLOB_ID_RE.match(name[: -len(suffix)]):
                    yield name[: -len(suffix)]


class _S3Writer:
    """Multipart upload with one reusable part buffer, so memory stays flat."""

    def __init__(self, client: Any, bucket: str, key: str, part_size: int) -> None:
        self._client = client
        self._bucket = bucket
        self._key = key
        self._view = memoryview(bytearray(part_size))
        self._filled = 0
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []

    def write(self, data: Buffer, /) -> int:
        source = memoryview(data).cast("B")
        size = len(source)
        while len(source):
            room = len(self._view) - self._filled
            taken = min(room, len(source))
            self._view[self._filled : self._filled + taken] = source[:taken]
            self._filled += taken
            source = source[taken:]
            if self._filled == len(self._view):
                self._send_part()
        return size

    def _send_part(self) -> None:
        if self._upload_id is None:
            started = self._client.create_multipart_upload(Bucket=self._bucket, Key=self._key)
            self._upload_id = started["UploadId"]
        number = len(self._parts) + 1
        answer = self._client.upload_part(
            Bucket=self._bucket,
            Key=self._key,
            UploadId=self._upload_id,
            PartNumber=number,
            Body=bytes(self._view[: self._filled]),
        )
        self._parts.append({"ETag": answer["ETag"], "PartNumber": number})
        self._filled = 0

    def commit(self) -> None:
        if self._upload_id is None:
            self._client.put_object(
                Bucket=self._bucket, Key=self._key, Body=bytes(self._view[: self._filled])
            )
            return
        if self._filled:
            self._send_part()
        self._client.complete_multipart_upload(
            Bucket=self._bucket,
            Key=self._key,
            UploadId=self._upload_id,
            MultipartUpload={"Parts": self._parts},
        )

    def abort(self) -> None:
        if self._upload_id is not None:
            self._client.abort_multipart_upload(
                Bucket=self._bucket, Key=self._key, UploadId=self._upload_id
            )


class S3Storage(BlobStorage):
    """Blobs as objects in an S3 (or S3-compatible) bucket under ``prefix``.

    Credentials come from boto3's usual chain (environment, config files,
    instance roles); they are deliberately never part of the storage URL.
    Note that on a versioned bucket deleting an object keeps old versions, so
    crypto-shredding then also needs a lifecycle rule that expires them.
    """

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        client: Any = None,
        endpoint_url: str | None = None,
        region_name: str | None = None,
        part_size: int = _DEFAULT_PART_SIZE,
    ) -> None:
        if client is None:
            try:  # deferred: the local back end must not need boto3 at all
                import boto3  # type: ignore[import-untyped,unused-ignore]
            except ImportError:
                raise ConfigurationError(
                    "S3 storage needs boto3: install the package with its s3 extra "
                    "(pip install 'vaultdesk[s3]')"
                ) from None
            client = boto3.client("s3", endpoint_url=endpoint_url, region_name=region_name)
        if part_size < 5 * 1024 * 1024:
            raise ConfigurationError("S3 multipart parts must be at least 5 MiB")
        self.bucket = bucket
        self.prefix = prefix if not prefix or prefix.endswith("/") else prefix + "/"
        self.client = client
        self.part_size = part_size

    def __repr__(self) -> str:
        return f"S3Storage(bucket={self.bucket!r}, prefix={self.prefix!r})"

    def key(self, blob_id: str, part: Part) -> str:
        """Object key of a blob part (the id is validated first)."""
        check_blob_id(blob_id)
        return f"{self.prefix}{blob_id[:2]}/{blob_id}.{Part(part).value}"

    @staticmethod
    def _is_missing(error: Exception) -> bool:
        response = getattr(error, "response", None) or {}
        code = str(response.get("Error", {}).get("Code", ""))
        return code in {"404", "NoSuchKey", "NotFound"}

    @contextmanager
    def writer(self, blob_id: str, part: Part) -> Iterator[BlobWriter]:
        sink = _S3Writer(self.client, self.bucket, self.key(blob_id, part), self.part_size)
        try:
            yield sink
            sink.commit()
        except BaseException:
            sink.abort()
            raise

    def open(self, blob_id: str, part: Part, start: int = 0, stop: int | None = None) -> BinaryIO:
        key = self.key(blob_id, part)
        if stop is not None and stop <= start:
            if not self.exists(blob_id, part):
                raise BlobNotFound(blob_id, f"no {Part(part).name.lower()}")
            return io.BytesIO()
        options: dict[str, Any] = {}
        if start or stop is not None:
            last = "" if stop is None else str(stop - 1)
            options["Range"] = f"bytes={start}-{last}"
        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=key, **options)
        except Exception as error:
            if self._is_missing(error):
                raise BlobNotFound(blob_id, f"no {Part(part).name.lower()}") from None
            raise
        return answer["Body"]  # type: ignore[no-any-return]

    def size(self, blob_id: str, part: Part) -> int:
        try:
            answer = self.client.head_object(Bucket=self.bucket, Key=self.key(blob_id, part))
        except Exception as error:
            if self._is_missing(error):
                raise BlobNotFound(blob_id, f"no {Part(part).name.lower()}") from None
            raise
        return int(answer["ContentLength"])

    def exists(self, blob_id: str, part: Part) -> bool:
        try:
            self.size(blob_id, part)
        except BlobNotFound:
            return False
        return True

    def delete(self, blob_id: str, part: Part) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self.key(blob_id, part))

    def iter_ids(self, part: Part = Part.HEADER) -> Iterator[str]:
        suffix = f".{Part(part).value}"
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix):
            for item in page.get("Contents", []):
                name = item["Key"][len(self.prefix) :].rpartition("/")[2]
                if name.endswith(suffix) and BLOB_ID_RE.match(name[: -len(suffix)]):
                    yield name[: -len(suffix)]


def storage_from_url(url: str | os.PathLike[str]) -> BlobStorage:
    """Build a back end from configuration, so switching is a config change only.

    * ``/srv/vault`` or ``file:///srv/vault`` → :class:`LocalDirectoryStorage`
    * ``s3://bucket/optional/prefix?endpoint_url=http://minio:9000&region=eu-west-1``
      → :class:`S3Storage` (credentials from the standard boto3 environment)
    """
    text = os.fspath(url)
    if "://" not in text:
        if not text:
            raise ConfigurationError("empty storage URL")
        return LocalDirectoryStorage(text)
    parts = urlsplit(text)
    if parts.scheme == "file":
        if parts.netloc not in {"", "localhost"} or parts.query or not parts.path:
            raise ConfigurationError(f"unsupported file URL {text!r}; use file:///abs/path")
        return LocalDirectoryStorage(unquote(parts.path))
    if parts.scheme == "s3":
        if not parts.netloc:
            raise ConfigurationError("s3 URL needs a bucket: s3://bucket/prefix")
        query = parse_qs(parts.query, strict_parsing=False)
        allowed = {"endpoint_url", "region", "region_name"}
        unknown = set(query) - allowed
        if unknown:
            raise ConfigurationError(f"unknown s3 URL options: {sorted(unknown)}")
        endpoints = query.get("endpoint_url", [])
        regions = query.get("region", []) + query.get("region_name", [])
        endpoint = endpoints[-1] if endpoints else None
        region = regions[-1] if regions else None
        return S3Storage(
            parts.netloc,
            unquote(parts.path.lstrip("/")),
            endpoint_url=endpoint,
            region_name=region,
        )
    raise ConfigurationError(f"unsupported storage URL scheme {parts.scheme!r}")
