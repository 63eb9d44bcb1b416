"""Key-encryption keys (KEKs) and the key ring that holds them.

Each stored file gets its own random data key; only that data key is sealed
("wrapped") under a KEK. Rotating a KEK therefore means re-wrapping a few
dozen bytes per file instead of re-encrypting every body, and retiring a KEK
is safe as soon as no header refers to it any more.

Two sources are supported:

* a directory (default ``instance/keys/``) with one ``<key id>.key`` file per
  KEK holding the base64 encoded 32-byte key, plus a ``CURRENT`` file naming
  the KEK used for new files. The directory is created ``0700``, key files
  ``0600``, and a first KEK is generated on first use. Files readable by group
  or others are refused, as OpenSSH does with private keys.
* a string, typically an environment variable, of the form::

      <id>:<base64 key>[,<id>:<base64 key>...][;current=<id>]

  e.g. ``2024a:q83v...=,2025b:9Ksn...=;current=2025b``. ``;current=`` may be
  omitted when there is exactly one key. Standard and URL-safe base64 are both
  accepted. Key ids match ``[A-Za-z0-9][A-Za-z0-9_.-]{0,63}``.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import secrets
import stat
import threading
import time
from collections.abc import Collection, Iterable, Mapping
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ._fs import fsync_dir
from .exc import ConfigurationError, IntegrityError, KeyInUseError, UnknownKeyError

__all__ = ["DEFAULT_KEY_DIR", "KEK_SIZE", "KEY_ID_RE", "KeyRing", "generate_key_id"]

KEK_SIZE = 32
KEY_ID_RE = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")
DEFAULT_KEY_DIR = Path("instance") / "keys"

_WRAP_NONCE_SIZE = 12
_WRAP_DOMAIN = b"vaultdesk/kek-wrap/v1\x00"
_CURRENT_FILE = "CURRENT"
_KEY_SUFFIX = ".key"


def generate_key_id() -> str:
    """Return a fresh key id that sorts by creation date, so operators can tell old from new."""
    return f"{time.strftime('%Y%m%d', time.gmtime())}-{secrets.token_hex(4)}"


def _check_key_id(key_id: str) -> str:
    if not isinstance(key_id, str) or not KEY_ID_RE.match(key_id):
        raise ConfigurationError(f"invalid key id {key_id!r}")
    return key_id


def _check_key(key_id: str, key: bytes) -> bytes:
    if len(key) != KEK_SIZE:
        raise ConfigurationError(f"key {key_id!r} must be {KEK_SIZE} bytes, not {len(key)}")
    return bytes(key)


def _decode_key(key_id: str, text: str) -> bytes:
    cleaned = text.strip().replace("-", "+").replace("_", "/")
    try:
        raw = base64.b64decode(cleaned, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ConfigurationError(f"key {key_id!r} is not valid base64") from exc
    return _check_key(key_id, raw)


def _write_private_file(path: Path, data: bytes, *, exclusive: bool) -> None:
    """Write ``data`` to ``path`` with mode 0600 from the first byte, durably.

    The file is created with the final mode instead of chmod-ing afterwards so
    that key material is never briefly readable by other users.
    """
    # Replacing goes through a hidden temp file, so readers never see a half-written file.
    target = path if exclusive else path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(target, flags, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    if not exclusive:
        os.replace(target, path)
    fsync_dir(path.parent)


class KeyRing:
    """A set of KEKs addressed by id, one of which seals new data keys.

    The ring is safe to share between threads. A ring loaded from a directory
    writes every change back to it; a ring built from a string lives in memory
    only (export it again with :meth:`to_string`).
    """

    def __init__(
        self,
        keys: Mapping[str, bytes],
        current: str,
        *,
        directory: str | os.PathLike[str] | None = None,
    ) -> None:
        if not keys:
            raise ConfigurationError("a key ring needs at least one key")
        self._keys = {_check_key_id(k): _check_key(k, v) for k, v in keys.items()}
        if current not in self._keys:
            raise ConfigurationError(f"current key {current!r} is not in the key ring")
        self._current = current
        self._directory = Path(directory) if directory is not None else None
        self._lock = threading.RLock()

    # -- construction -----------------------------------------------------------------

    @classmethod
    def generate(cls) -> KeyRing:
        """Return an in-memory ring with one fresh KEK (tests, benchmarks, throwaway use)."""
        key_id = generate_key_id()
        return cls({key_id: AESGCM.generate_key(bit_length=256)}, key_id)

    @classmethod
    def from_string(cls, spec: str) -> KeyRing:
        """Parse the ``id:base64key,...;current=id`` format described in the module docs."""
        body, _, options = spec.strip().partition(";")
        current: str | None = None
        if options:
            name, sep, value = options.strip().partition("=")
            if name.strip() != "current" or not sep:
                raise ConfigurationError("key ring options must be ';current=<key id>'")
            current = _check_key_id(value.strip())
        keys: dict[str, bytes] = {}
        for item in body.split(","):
            key_id, sep, encoded = item.strip().partition(":")
            if not sep:
                raise ConfigurationError("key ring entries must look like '<id>:<base64 key>'")
            key_id = _check_key_id(key_id.strip())
            if key_id in keys:
                raise ConfigurationError(f"key id {key_id!r} appears twice")
            keys[key_id] = _decode_key(key_id, encoded)
        if current is None:
            if len(keys) != 1:
                raise ConfigurationError("';current=<key id>' is required with several keys")
            current = next(iter(keys))
        return cls(keys, current)

    @classmethod
    def from_directory(
        cls, directory: str | os.PathLike[str] = DEFAULT_KEY_DIR, *, create: bool = True
    ) -> KeyRing:
        """Load the ring from ``directory``, creating it and a first KEK if ``create``."""
        path = Path(directory)
        if not path.exists():
            if not create:
                raise ConfigurationError(f"key directory {str(path)!r} does not exist")
            path.mkdir(mode=0o700, parents=True)
            os.chmod(path, 0o700)  # mkdir honours the umask; the key directory must not
        keys, current = cls._read_directory(path)
        if not keys:
            if not create:
                raise ConfigurationError(f"key directory {str(path)!r} holds no keys")
            key_id = generate_key_id()
            key = AESGCM.generate_key(bit_length=256)
            _write_private_file(path / f"{key_id}{_KEY_SUFFIX}", cls._encode(key), exclusive=True)
            _write_private_file(path / _CURRENT_FILE, key_id.encode() + b"\n", exclusive=False)
            keys, current = {key_id: key}, key_id
        if current is None:
            if len(keys) != 1:
                raise ConfigurationError(f"{str(path / _CURRENT_FILE)!r} is missing")
            current = next(iter(keys))
        return cls(keys, current, directory=path)

    @staticmethod
    def _encode(key: bytes) -> bytes:
        return base64.b64encode(key) + b"\n"

    @staticmethod
    def _read_private(path: Path) -> str:
        info = path.stat()
        if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ConfigurationError(
                f"{str(path)!r} is accessible by group or others; chmod 600 it"
            )
        return path.read_text(encoding="ascii")

    @classmethod
    def _read_directory(cls, path: Path) -> tuple[dict[str, bytes], str | None]:
        keys: dict[str, bytes] = {}
        for entry in sorted(path.iterdir()):
            if entry.name.startswith(".") or entry.suffix != _KEY_SUFFIX:
                continue
            key_id = _check_key_id(entry.name[: -len(_KEY_SUFFIX)])
            keys[key_id] = _decode_key(key_id, cls._read_private(entry))
        current_file = path / _CURRENT_FILE
        current = None
        if current_file.exists():
            current = _check_key_id(cls._read_private(current_file).strip())
        return keys, current

    # -- inspection -------------------------------------------------------------------

    @property
    def current_id(self) -> str:
        """Id of the KEK that seals data keys of newly stored files."""
        return self._current

    @property
    def key_ids(self) -> frozenset[str]:
        """Ids of every KEK in the ring, current or not."""
        with self._lock:
            return frozenset(self._keys)

    @property
    def directory(self) -> Path | None:
        """Where changes are persisted, or ``None`` for an in-memory ring."""
        return self._directory

    def __contains__(self, key_id: object) -> bool:
        return key_id in self._keys

    def __repr__(self) -> str:
        # Never include key material: reprs end up in logs and tracebacks.
        return f"<KeyRing current={self._current!r} keys={sorted(self._keys)!r}>"

    def to_string(self) -> str:
        """Export the ring in the environment-variable format (contains secrets)."""
        with self._lock:
            items = ",".join(
                f"{key_id}:{base64.b64encode(key).decode()}" for key_id, key in self._keys.items()
            )
            return f"{items};current={self._current}"

    # -- changes ----------------------------------------------------------------------

    def add(
        self, key: bytes | None = None, *, key_id: str | None = None, make_current: bool = True
    ) -> str:
        """Add a KEK (fresh unless ``key`` is given) and by default make it current.

        The key file is written before ``CURRENT`` is switched, so a crash in
        between leaves a ring that still works with the previous current key.
        """
        key_id = _check_key_id(key_id or generate_key_id())
        key = _check_key(key_id, key if key is not None else AESGCM.generate_key(256))
        with self._lock:
            if key_id in self._keys:
                raise ConfigurationError(f"key id {key_id!r} already exists")
            if self._directory is not None:
                _write_private_file(
                    self._directory / f"{key_id}{_KEY_SUFFIX}", self._encode(key), exclusive=True
                )
                if make_current:
                    _write_private_file(
                        self._directory / _CURRENT_FILE, key_id.encode() + b"\n", exclusive=False
                    )
            self._keys[key_id] = key
            if make_current:
                self._current = key_id
        return key_id

    def retire(self, key_id: str, *, in_use: Iterable[str]) -> None:
        """Delete a KEK for good; refused while ``in_use`` still names it.

        ``in_use`` is the set of key ids that stored headers refer to (see
        :meth:`vault.Vault.key_ids_in_use`). Deleting a KEK that a header still
        needs would make that file unreadable forever, hence the hard refusal.
        """
        in_use_ids: Collection[str] = frozenset(in_use)
        with self._lock:
            if key_id not in self._keys:
                raise UnknownKeyError(key_id)
            if key_id == self._current:
                raise KeyInUseError(key_id, "it is the current key; add a new key first")
            if key_id in in_use_ids:
                raise KeyInUseError(key_id, "stored files are still sealed with it; re-wrap first")
            if self._directory is not None:
                (self._directory / f"{key_id}{_KEY_SUFFIX}").unlink()
                fsync_dir(self._directory)
            del self._keys[key_id]

    def reload(self) -> None:
        """Re-read a directory-backed ring, to pick up rotations done by another process."""
        if self._directory is None:
            return
        keys, current = self._read_directory(self._directory)
        if not keys:
            raise ConfigurationError(f"key directory {str(self._directory)!r} holds no keys")
        with self._lock:
            self._keys = keys
            if current is not None:
                self._current = current

    # -- wrapping ---------------------------------------------------------------------

    @staticmethod
    def _aad(key_id: str, aad: bytes) -> bytes:
        return _WRAP_DOMAIN + key_id.encode("ascii") + b"\x00" + aad

    def _key(self, key_id: str) -> bytes:
        key = self._keys.get(key_id)
        if key is None and self._directory is not None:
            # Another worker process may have rotated since we loaded the ring.
            self.reload()
            key = self._keys.get(key_id)
        if key is None:
            raise UnknownKeyError(key_id)
        return key

    def wrap(self, data_key: bytes, aad: bytes = b"") -> tuple[str, bytes]:
        """Seal ``data_key`` under the current KEK; returns ``(key_id, nonce + ciphertext)``.

        The key id is bound as associated data so that a wrapped key cannot be
        relabelled as belonging to another KEK.
        """
        with self._lock:
            key_id = self._current
            kek = self._keys[key_id]
        nonce = os.urandom(_WRAP_NONCE_SIZE)
        sealed = AESGCM(kek).encrypt(nonce, data_key, self._aad(key_id, aad))
        return key_id, nonce + sealed

    def unwrap(self, key_id: str, wrapped: bytes, aad: bytes = b"") -> bytes:
        """Recover a data key; :class:`IntegrityError` if anything was altered."""
        kek = self._key(key_id)
        nonce, sealed = wrapped[:_WRAP_NONCE_SIZE], wrapped[_WRAP_NONCE_SIZE:]
        try:
            return AESGCM(kek).decrypt(nonce, sealed, self._aad(key_id, aad))
        except InvalidTag:
            raise IntegrityError("the file header failed authentication") from None
