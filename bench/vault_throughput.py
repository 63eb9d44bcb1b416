"""Throughput and memory benchmark of the vault against plain-file references.

Run from the repository root::

    .venv/bin/python bench/vault_throughput.py --size-mb 1024

It stores and fetches one file of ``--size-mb`` MiB through the local back end
in a temporary directory and, on the same bytes in the same run, measures two
references: writing the plain bytes through the same atomic write + fsync
path, and ``cryptography``'s raw AES-GCM over the same 64 KiB chunks. Each
timing is the best of ``--repeat`` runs, because a single fsync on shared
disks varies by a factor of several. The last lines are ``name=value`` pairs
for scripts to parse.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vault import CHUNK_SIZE, KeyRing, LocalDirectoryStorage, Part, Vault  # noqa: E402
from vault.crypto import encrypt_stream  # noqa: E402
from vault.storage import new_blob_id  # noqa: E402

MIB = 1024 * 1024


class NullSink:
    """Discards writes, so only the encryption path itself is timed."""

    def write(self, data: bytes | bytearray | memoryview, /) -> int:
        return len(data)


def make_source(path: Path, size: int) -> None:
    block = os.urandom(MIB)
    with open(path, "wb") as handle:
        written = 0
        counter = 0
        while written < size:
            piece = counter.to_bytes(8, "big") + block[8:]  # no two MiB blocks are equal
            piece = piece[: size - written]
            handle.write(piece)
            written += len(piece)
            counter += 1
        handle.flush()
        os.fsync(handle.fileno())


def best_of(repeat: int, run: Callable[[], float]) -> float:
    return min(run() for _ in range(repeat))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1024, help="file size in MiB")
    parser.add_argument("--repeat", type=int, default=3, help="runs per timing, best kept")
    parser.add_argument("--dir", default=None, help="parent of the temporary directory")
    parser.add_argument(
        "--write-behind-mb", type=int, default=16, help="LocalDirectoryStorage write_behind_mb"
    )
    args = parser.parse_args(argv)
    size = args.size_mb * MIB

    with tempfile.TemporaryDirectory(prefix="vault-bench-", dir=args.dir) as tmp:
        root = Path(tmp)
        source = root / "source.bin"
        make_source(source, size)
        storage = LocalDirectoryStorage(root / "blobs", write_behind_mb=args.write_behind_mb)
        vault = Vault(storage, KeyRing.generate())

        def plain_write() -> float:
            # The straightforward way to land a file durably, in the vault's folder:
            # temp file, 64 KiB writes, fsync, rename, fsync of the directory.
            target = storage.path(new_blob_id(), Part.BODY)
            target.parent.mkdir(mode=0o700, exist_ok=True)
            view = memoryview(bytearray(CHUNK_SIZE))
            started = time.perf_counter()
            fd, temp = tempfile.mkstemp(dir=target.parent)
            with open(source, "rb") as src, open(fd, "wb") as out:
                while filled := src.readinto(view):
                    out.write(view[:filled])
                out.flush()
                os.fsync(out.fileno())
            os.replace(temp, target)
            dir_fd = os.open(target.parent, os.O_RDONLY)
            os.fsync(dir_fd)
            os.close(dir_fd)
            elapsed = time.perf_counter() - started
            target.unlink()
            return elapsed

        stored_ids: list[str] = []

        def store() -> float:
            started = time.perf_counter()
            with open(source, "rb") as src:
                stored = vault.put(src, max_size=size)
            elapsed = time.perf_counter() - started
            assert stored.size == size  # noqa: S101 - a benchmark of wrong output is worthless
            stored_ids.append(stored.blob_id)
            return elapsed

        def fetch() -> float:
            started = time.perf_counter()
            total = sum(len(piece) for piece in vault.iter_plaintext(stored_ids[-1]))
            elapsed = time.perf_counter() - started
            assert total == size  # noqa: S101
            return elapsed

        def encrypt_only() -> float:
            started = time.perf_counter()
            with open(source, "rb") as src:
                encrypt_stream(src, NullSink(), vault.keyring)
            return time.perf_counter() - started

        def raw_aesgcm() -> float:
            aead = AESGCM(AESGCM.generate_key(bit_length=256))
            view = memoryview(bytearray(CHUNK_SIZE))
            index = 0
            started = time.perf_counter()
            with open(source, "rb") as src:
                while filled := src.readinto(view):
                    aead.encrypt(index.to_bytes(12, "big"), view[:filled], None)
                    index += 1
            return time.perf_counter() - started

        plain_s = best_of(args.repeat, plain_write)
        store_s = best_of(args.repeat, store)
        for blob_id in stored_ids[:-1]:
            vault.shred(blob_id)
        fetch_s = best_of(args.repeat, fetch)
        with open(source, "rb") as src:  # spot-check that fetched bytes are the stored ones
            for offset in (0, size // 2, max(0, size - 100)):
                src.seek(offset)
                expected = src.read(100)
                got = b"".join(vault.read_range(stored_ids[-1], offset, offset + 99))
                assert got == expected  # noqa: S101
        encrypt_s = best_of(args.repeat, encrypt_only)
        raw_s = best_of(args.repeat, raw_aesgcm)

    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    mb = size / MIB
    print(f"size_mb={args.size_mb}")
    print(f"write_behind_mb={args.write_behind_mb}")
    print(f"plain_write_mb_s={mb / plain_s:.1f}")
    print(f"raw_aesgcm_mb_s={mb / raw_s:.1f}")
    print(f"encrypt_mb_s={mb / encrypt_s:.1f}")
    print(f"store_mb_s={mb / store_s:.1f}")
    print(f"fetch_mb_s={mb / fetch_s:.1f}")
    print(f"store_vs_plain_write_ratio={store_s / plain_s:.2f}")
    print(f"encrypt_vs_raw_aesgcm_ratio={encrypt_s / raw_s:.2f}")
    print(f"peak_rss_mb={peak_rss_mb:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
