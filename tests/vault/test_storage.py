"""Blob back ends: id validation, atomic writes, ranges, configuration URLs."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from vault import (
    BlobNotFound,
    ConfigurationError,
    InvalidBlobId,
    LocalDirectoryStorage,
    Part,
    S3Storage,
    check_blob_id,
    new_blob_id,
    storage_from_url,
)
from vault.storage import BlobStorage

from .helpers import all_objects, pattern

BAD_IDS = [
    "../x",
    "../../etc/passwd",
    "/etc/passwd",
    "/" + "a" * 31,
    "a" * 31 + "\x00",
    "a\x00" + "b" * 30,
    "A" * 32,
    "a" * 31,
    "a" * 33,
    "a" * 32 + "\n",
    "..",
    "",
    "g" * 32,
]


@pytest.mark.parametrize("blob_id", BAD_IDS)
def test_invalid_blob_ids_never_reach_the_backend(storage: BlobStorage, blob_id: str) -> None:
    with pytest.raises(InvalidBlobId):
        storage.put(blob_id, Part.BODY, b"data")
    with pytest.raises(InvalidBlobId):
        storage.open(blob_id, Part.BODY)
    with pytest.raises(InvalidBlobId):
        storage.exists(blob_id, Part.HEADER)
    with pytest.raises(InvalidBlobId):
        storage.delete(blob_id, Part.HEADER)
    assert all_objects(storage) == []


def test_generated_ids_are_valid_unique_and_map_inside_the_root(tmp_path: Path) -> None:
    storage = LocalDirectoryStorage(tmp_path)
    ids = {new_blob_id() for _ in range(1000)}
    assert len(ids) == 1000
    for blob_id in ids:
        assert check_blob_id(blob_id) == blob_id
        assert storage.path(blob_id, Part.BODY).parent.parent == storage.root


def test_put_open_range_delete(storage: BlobStorage) -> None:
    blob_id = new_blob_id()
    data = pattern(300_000)
    assert storage.put(blob_id, Part.BODY, data) == len(data)
    assert storage.exists(blob_id, Part.BODY)
    assert not storage.exists(blob_id, Part.HEADER)
    assert storage.size(blob_id, Part.BODY) == len(data)
    with storage.open(blob_id, Part.BODY, 1000, 70_000) as stream:
        assert stream.read() == data[1000:70_000]
    with storage.open(blob_id, Part.BODY, 299_990) as stream:
        assert stream.read() == data[299_990:]
    assert storage.read(blob_id, Part.BODY) == data
    storage.delete(blob_id, Part.BODY)
    storage.delete(blob_id, Part.BODY)  # idempotent
    assert not storage.exists(blob_id, Part.BODY)
    with pytest.raises(BlobNotFound):
        storage.open(blob_id, Part.BODY)
    with pytest.raises(BlobNotFound):
        storage.size(blob_id, Part.BODY)


def test_put_replaces_whole_object(storage: BlobStorage) -> None:
    blob_id = new_blob_id()
    storage.put(blob_id, Part.HEADER, b"long old header value")
    storage.put(blob_id, Part.HEADER, b"new")
    assert storage.read(blob_id, Part.HEADER) == b"new"


def test_failed_write_leaves_nothing_behind(storage: BlobStorage) -> None:
    blob_id = new_blob_id()
    with pytest.raises(RuntimeError, match="client went away"):
        with storage.writer(blob_id, Part.BODY) as sink:
            for _ in range(12):  # > 8 MiB: the S3 writer has started a multipart upload
                sink.write(bytes(1024 * 1024))
            raise RuntimeError("client went away")
    assert not storage.exists(blob_id, Part.BODY)
    assert all_objects(storage) == []


def test_failed_rewrite_keeps_previous_version(storage: BlobStorage) -> None:
    blob_id = new_blob_id()
    storage.put(blob_id, Part.HEADER, b"version 1")
    with pytest.raises(RuntimeError):
        with storage.writer(blob_id, Part.HEADER) as sink:
            sink.write(b"version 2, half written")
            raise RuntimeError
    assert storage.read(blob_id, Part.HEADER) == b"version 1"


def test_large_stream_round_trips_through_multipart(storage: BlobStorage) -> None:
    blob_id = new_blob_id()
    data = pattern(9 * 1024 * 1024 + 7)
    with storage.writer(blob_id, Part.BODY) as sink:
        view = memoryview(data)
        for offset in range(0, len(data), 65_552):
            sink.write(view[offset : offset + 65_552])
    assert storage.size(blob_id, Part.BODY) == len(data)
    with storage.open(blob_id, Part.BODY, 8 * 1024 * 1024 - 3, 8 * 1024 * 1024 + 3) as stream:
        assert stream.read() == data[8 * 1024 * 1024 - 3 : 8 * 1024 * 1024 + 3]
    assert storage.read(blob_id, Part.BODY) == data


def test_iter_ids_lists_blobs_with_the_part(storage: BlobStorage) -> None:
    a, b = new_blob_id(), new_blob_id()
    storage.put(a, Part.HEADER, b"h")
    storage.put(a, Part.BODY, b"b")
    storage.put(b, Part.BODY, b"b")
    assert set(storage.iter_ids(Part.HEADER)) == {a}
    assert set(storage.iter_ids(Part.BODY)) == {a, b}


def test_local_files_are_private_and_temp_files_are_ignored(tmp_path: Path) -> None:
    storage = LocalDirectoryStorage(tmp_path / "blobs")
    blob_id = new_blob_id()
    storage.put(blob_id, Part.BODY, b"x")
    path = storage.path(blob_id, Part.BODY)
    assert path.parent.name == blob_id[:2]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) & 0o077 == 0
    (path.parent / ".tmp-leftover").write_bytes(b"crash debris")
    (path.parent / "README").write_bytes(b"not a blob")
    assert list(storage.iter_ids(Part.BODY)) == [blob_id]


def test_storage_from_url_local(tmp_path: Path) -> None:
    plain = storage_from_url(str(tmp_path / "a"))
    assert isinstance(plain, LocalDirectoryStorage)
    assert plain.root == tmp_path / "a"
    as_url = storage_from_url(f"file://{tmp_path}/b%20c")
    assert isinstance(as_url, LocalDirectoryStorage)
    assert as_url.root == tmp_path / "b c"


def test_storage_from_url_s3(s3_endpoint: str) -> None:
    storage = storage_from_url(
        f"s3://bucket/some/prefix?endpoint_url={s3_endpoint}&region=eu-west-1"
    )
    assert isinstance(storage, S3Storage)
    assert (storage.bucket, storage.prefix) == ("bucket", "some/prefix/")
    assert storage.client.meta.region_name == "eu-west-1"
    assert storage.client.meta.endpoint_url == s3_endpoint


@pytest.mark.parametrize(
    "url",
    ["", "ftp://host/x", "s3:///prefix", "s3://bucket?colour=blue", "file://remote-host/x"],
)
def test_bad_storage_urls_are_refused(url: str) -> None:
    with pytest.raises(ConfigurationError):
        storage_from_url(url)
