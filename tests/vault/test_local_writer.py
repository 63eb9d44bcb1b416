"""The local back end's write path: O_DIRECT and its fallbacks, bounded memory, failures.

O_DIRECT support depends on the file system the tests run on, so the cases
that need it on or off force it through ``_set_direct`` instead of relying on
where the temporary directory happens to live.
"""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from vault import LocalDirectoryStorage, Part, new_blob_id
from vault import storage as storage_module

from .helpers import SEALED, all_objects, pattern

MIB = 1024 * 1024
SIZES = [0, 1, 4095, 4096, 3 * SEALED, MIB - 1, MIB, MIB + 1, 3 * MIB + 12345]


def write_in_pieces(storage: LocalDirectoryStorage, blob_id: str, data: bytes) -> None:
    """Pieces of three sealed chunks, a size that never divides the 1 MiB buffers."""
    view = memoryview(data)
    with storage.writer(blob_id, Part.BODY) as sink:
        for offset in range(0, len(data), 3 * SEALED):
            sink.write(view[offset : offset + 3 * SEALED])


def no_writer_threads() -> bool:
    return not any(thread.name == "vault-write-behind" for thread in threading.enumerate())


@pytest.fixture
def fake_direct(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Pretend every file system accepts O_DIRECT; records each switch on or off."""
    switches: list[bool] = []

    def set_direct(fd: int, enabled: bool) -> bool:
        switches.append(enabled)
        return True

    monkeypatch.setattr(storage_module, "_set_direct", set_direct)
    return switches


@pytest.mark.parametrize("direct_io", [True, False])
@pytest.mark.parametrize("size", SIZES)
def test_any_size_round_trips(tmp_path: Path, size: int, direct_io: bool) -> None:
    storage = LocalDirectoryStorage(tmp_path, write_behind_mb=2, direct_io=direct_io)
    data = pattern(size)
    blob_id = new_blob_id()
    write_in_pieces(storage, blob_id, data)
    assert storage.read(blob_id, Part.BODY) == data
    assert all_objects(storage) == [f"{blob_id[:2]}/{blob_id}.body"]
    assert no_writer_threads()


def test_the_tail_is_written_without_o_direct(tmp_path: Path, fake_direct: list[bool]) -> None:
    storage = LocalDirectoryStorage(tmp_path)
    data = pattern(2 * MIB + 100)
    blob_id = new_blob_id()
    write_in_pieces(storage, blob_id, data)
    assert fake_direct == [True, False]  # on at the start, off for the last 100 bytes
    assert storage.read(blob_id, Part.BODY) == data


def test_a_file_system_refusing_o_direct_gets_buffered_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(storage_module, "_set_direct", lambda fd, enabled: False)
    storage = LocalDirectoryStorage(tmp_path)
    data = pattern(2 * MIB + 100)
    blob_id = new_blob_id()
    write_in_pieces(storage, blob_id, data)
    assert storage.read(blob_id, Part.BODY) == data


def test_o_direct_writes_refused_late_fall_back_to_buffered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_direct: list[bool]
) -> None:
    """Some file systems accept the flag and then refuse the writes with EINVAL."""
    real_write = os.write
    refused: list[int] = []

    def write(fd: int, data: memoryview) -> int:
        if fake_direct[-1]:
            refused.append(len(data))
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_write(fd, data)

    monkeypatch.setattr(storage_module.os, "write", write)
    storage = LocalDirectoryStorage(tmp_path)
    data = pattern(3 * MIB + 5)
    blob_id = new_blob_id()
    write_in_pieces(storage, blob_id, data)
    assert refused == [MIB]  # the first buffer, once; then buffered for good
    assert fake_direct == [True, False]
    assert storage.read(blob_id, Part.BODY) == data


@pytest.mark.parametrize("fail_after", [0, 2])
def test_a_write_error_in_the_thread_reaches_the_caller_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fail_after: int
) -> None:
    real_write = os.write
    calls: list[int] = []

    def write(fd: int, data: memoryview) -> int:
        calls.append(len(data))
        if len(calls) > fail_after:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(storage_module.os, "write", write)
    storage = LocalDirectoryStorage(tmp_path, write_behind_mb=2)
    with pytest.raises(OSError, match="No space left"):
        write_in_pieces(storage, new_blob_id(), pattern(8 * MIB))
    assert all_objects(storage) == []
    assert no_writer_threads()


def test_memory_is_at_most_write_behind_mb_buffers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    allocated: list[int] = []
    real_buffer: Callable[[int], memoryview] = storage_module._aligned_buffer

    def counting_buffer(size: int) -> memoryview:
        allocated.append(size)
        return real_buffer(size)

    monkeypatch.setattr(storage_module, "_aligned_buffer", counting_buffer)
    storage = LocalDirectoryStorage(tmp_path, write_behind_mb=3)
    data = pattern(20 * MIB + 1)
    blob_id = new_blob_id()
    write_in_pieces(storage, blob_id, data)
    assert 1 <= len(allocated) <= 3
    assert set(allocated) == {MIB}
    assert storage.read(blob_id, Part.BODY) == data


def test_buffers_are_aligned_for_o_direct() -> None:
    import ctypes

    for size in (4096, MIB):
        view = storage_module._aligned_buffer(size)
        assert len(view) == size and not view.readonly
        address = ctypes.addressof(ctypes.c_char.from_buffer(view))
        assert address % 4096 == 0


def test_small_puts_are_written_inline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_thread(*args: object, **kwargs: object) -> None:
        raise AssertionError("a header must not start a write-behind thread")

    monkeypatch.setattr(storage_module, "_WriteBehind", no_thread)
    storage = LocalDirectoryStorage(tmp_path)
    blob_id = new_blob_id()
    assert storage.put(blob_id, Part.HEADER, b"header bytes") == 12
    assert storage.read(blob_id, Part.HEADER) == b"header bytes"
    assert storage.put(blob_id, Part.HEADER, memoryview(b"replaced")) == 8
    assert storage.read(blob_id, Part.HEADER) == b"replaced"


def test_write_behind_mb_must_be_positive(tmp_path: Path) -> None:
    from vault import ConfigurationError

    with pytest.raises(ConfigurationError):
        LocalDirectoryStorage(tmp_path, write_behind_mb=0)


def test_reserved_room_is_written_in_order_and_never_straddles_buffers(tmp_path: Path) -> None:
    storage = LocalDirectoryStorage(tmp_path)
    blob_id = new_blob_id()
    expected = bytearray()
    refused = 0
    with storage.writer(blob_id, Part.BODY) as sink:
        for number in range(40):
            piece = bytes([number]) * SEALED
            room = sink.reserve(len(piece))
            if room is None:  # 16 sealed chunks are a little more than one buffer
                refused += 1
                sink.write(piece)
            else:
                assert len(room) == len(piece)
                room[:] = piece
            expected += piece
    assert refused == 2
    assert storage.read(blob_id, Part.BODY) == bytes(expected)
