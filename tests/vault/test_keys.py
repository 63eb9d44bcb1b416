"""Key ring: persistence, permissions, the string format, rotation rules."""

from __future__ import annotations

import base64
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from vault import ConfigurationError, IntegrityError, KeyInUseError, KeyRing, UnknownKeyError


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    """Prove permissions come from the code, not from a friendly umask."""
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


def b64(key: bytes) -> str:
    return base64.b64encode(key).decode()


def test_first_use_creates_private_directory_and_key(
    tmp_path: Path, permissive_umask: None
) -> None:
    directory = tmp_path / "instance" / "keys"
    ring = KeyRing.from_directory(directory)
    assert mode(directory) == 0o700
    files = sorted(p.name for p in directory.iterdir())
    assert files == sorted(["CURRENT", f"{ring.current_id}.key"])
    for name in files:
        assert mode(directory / name) == 0o600
    assert (directory / "CURRENT").read_text().strip() == ring.current_id


def test_reloaded_ring_opens_what_the_first_one_sealed(tmp_path: Path) -> None:
    first = KeyRing.from_directory(tmp_path / "keys")
    key_id, wrapped = first.wrap(b"k" * 32, b"aad")
    again = KeyRing.from_directory(tmp_path / "keys")
    assert again.current_id == first.current_id
    assert again.unwrap(key_id, wrapped, b"aad") == b"k" * 32
    with pytest.raises(IntegrityError):
        again.unwrap(key_id, wrapped, b"other aad")


def test_added_key_is_persisted_private_and_current(tmp_path: Path, permissive_umask: None) -> None:
    ring = KeyRing.from_directory(tmp_path / "keys")
    old = ring.current_id
    new = ring.add()
    assert mode(tmp_path / "keys" / f"{new}.key") == 0o600
    assert mode(tmp_path / "keys" / "CURRENT") == 0o600
    reloaded = KeyRing.from_directory(tmp_path / "keys")
    assert reloaded.current_id == new
    assert reloaded.key_ids == {old, new}


def test_key_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    ring = KeyRing.from_directory(tmp_path / "keys")
    os.chmod(tmp_path / "keys" / f"{ring.current_id}.key", 0o644)
    with pytest.raises(ConfigurationError, match="chmod 600"):
        KeyRing.from_directory(tmp_path / "keys")


def test_missing_directory_without_create_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError):
        KeyRing.from_directory(tmp_path / "nope", create=False)
    assert not (tmp_path / "nope").exists()


def test_other_process_rotation_is_picked_up_on_unwrap(tmp_path: Path) -> None:
    worker_a = KeyRing.from_directory(tmp_path / "keys")
    worker_b = KeyRing.from_directory(tmp_path / "keys")
    worker_a.add()
    key_id, wrapped = worker_a.wrap(b"d" * 32)
    assert worker_b.unwrap(key_id, wrapped) == b"d" * 32


def test_string_format_single_key() -> None:
    key = os.urandom(32)
    ring = KeyRing.from_string(f"k1:{b64(key)}")
    assert ring.current_id == "k1"
    key_id, wrapped = ring.wrap(b"x" * 32)
    assert KeyRing({"k1": key}, "k1").unwrap(key_id, wrapped) == b"x" * 32


def test_string_format_several_keys_with_current_and_urlsafe_base64() -> None:
    k1, k2 = os.urandom(32), os.urandom(32)
    spec = f" k1:{base64.urlsafe_b64encode(k1).decode()}, k2:{b64(k2)} ;current=k2 "
    ring = KeyRing.from_string(spec)
    assert ring.current_id == "k2"
    assert ring.key_ids == {"k1", "k2"}
    assert KeyRing.from_string(ring.to_string()).to_string() == ring.to_string()


@pytest.mark.parametrize(
    "spec",
    [
        "",
        "k1",
        f"k1:{b64(bytes(32))},k2:{b64(bytes(32))}",
        f"k1:{b64(bytes(32))};current=k9",
        f"k1:{b64(bytes(16))}",
        "k1:not*base64",
        f"k1:{b64(bytes(32))},k1:{b64(bytes(32))};current=k1",
        f"../evil:{b64(bytes(32))}",
        f"k1:{b64(bytes(32))};primary=k1",
    ],
)
def test_malformed_key_ring_strings_are_refused(spec: str) -> None:
    with pytest.raises(ConfigurationError):
        KeyRing.from_string(spec)


def test_repr_never_shows_key_material() -> None:
    key = os.urandom(32)
    ring = KeyRing.from_string(f"k1:{b64(key)}")
    assert b64(key) not in repr(ring)
    assert "k1" in repr(ring)


def test_retire_rules(tmp_path: Path) -> None:
    ring = KeyRing.from_directory(tmp_path / "keys")
    old = ring.current_id
    with pytest.raises(KeyInUseError):
        ring.retire(old, in_use=[])  # still current
    ring.add()
    with pytest.raises(KeyInUseError):
        ring.retire(old, in_use={old})
    with pytest.raises(UnknownKeyError):
        ring.retire("never-existed", in_use=[])
    ring.retire(old, in_use=[])
    assert old not in ring
    assert not (tmp_path / "keys" / f"{old}.key").exists()
    assert old not in KeyRing.from_directory(tmp_path / "keys").key_ids
