"""Throughput and memory benchmark of the vault against plain-file references.

Run from the repository root::

    .venv/bin/python bench/vault_throughput.py --size-mb 1024 --rounds 7

It stores and fetches one file of ``--size-mb`` MiB through the local back end
in a temporary directory (the fetch reads from the device where bodies were
written with O_DIRECT) and compares it with two references measured on the
same bytes in the same run:

* the plain write: the same bytes through the very same storage writer
  (``BlobStorage.put`` of the plaintext stream: temporary file, write-behind
  thread, early writeback, fsync, rename, directory fsync), so the ratio
  measures what hashing and encryption add and nothing else;
* ``cryptography``'s raw AES-GCM over the same 64 KiB chunks, for the
  encryption path alone.

Disks and CPUs busy with other work drift over seconds, so a best-of-N per
side compares the two sides at different moments. Instead each round times
both sides back to back, alternating which goes first, and the headline is
the median of the per-round ratios. Per-round figures are printed as a table;
the last lines are ``name=value`` pairs for scripts to parse.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import resource
import statistics
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


def make_source(path: Path, size: int) -> str:
    """Write ``size`` incompressible bytes to ``path`` and return their SHA-256."""
    block = os.urandom(MIB)
    digest = hashlib.sha256()
    with open(path, "wb") as handle:
        written = 0
        counter = 0
        while written < size:
            piece = counter.to_bytes(8, "big") + block[8:]  # no two MiB blocks are equal
            piece = piece[: size - written]
            handle.write(piece)
            digest.update(piece)
            written += len(piece)
            counter += 1
        handle.flush()
        os.fsync(handle.fileno())
    return digest.hexdigest()


def process_cpu() -> float:
    """CPU seconds used by this process so far, every thread included.

    Printed beside the wall times because on a busy machine the store, which
    needs several times the CPU of the plain write, is slowed down by other
    work far more than the plain write is: a high ratio with CPU figures that
    did not move means a noisy machine rather than slower code.
    """
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def alternate(
    round_index: int, first: Callable[[], float], second: Callable[[], float]
) -> tuple[float, float]:
    """Time both sides back to back, the first one first on even rounds only.

    Whatever runs second inherits the writeback and cache state the first
    left behind; alternating spreads that evenly over both sides.
    """
    if round_index % 2 == 0:
        a = first()
        b = second()
    else:
        b = second()
        a = first()
    return a, b


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1024, help="file size in MiB")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds, median kept")
    parser.add_argument("--dir", default=None, help="parent of the temporary directory")
    parser.add_argument(
        "--write-behind-mb", type=int, default=16, help="LocalDirectoryStorage write_behind_mb"
    )
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    size = args.size_mb * MIB
    load_before = os.getloadavg()[0]

    with tempfile.TemporaryDirectory(prefix="vault-bench-", dir=args.dir) as tmp:
        root = Path(tmp)
        source = root / "source.bin"
        expected_sha256 = make_source(source, size)
        storage = LocalDirectoryStorage(root / "blobs", write_behind_mb=args.write_behind_mb)
        vault = Vault(storage, KeyRing.generate())

        def quiesce() -> None:
            # Deleting the previous round's files leaves journal work behind; flush it
            # outside the timed region so it does not land on whichever side runs next.
            os.sync()

        cpu_used: dict[str, float] = {}

        def plain_write() -> float:
            blob_id = new_blob_id()
            quiesce()
            cpu_before = process_cpu()
            started = time.perf_counter()
            with open(source, "rb", buffering=0) as src:
                written = storage.put(blob_id, Part.BODY, src)
            elapsed = time.perf_counter() - started
            cpu_used["plain"] = process_cpu() - cpu_before
            assert written == size  # noqa: S101 - a benchmark of wrong output is worthless
            storage.delete(blob_id, Part.BODY)
            return elapsed

        stored_ids: list[str] = []

        def store() -> float:
            quiesce()
            cpu_before = process_cpu()
            started = time.perf_counter()
            with open(source, "rb", buffering=0) as src:
                stored = vault.put(src, max_size=size)
            elapsed = time.perf_counter() - started
            cpu_used["store"] = process_cpu() - cpu_before
            assert stored.size == size  # noqa: S101
            assert stored.sha256 == expected_sha256  # noqa: S101
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
            with open(source, "rb", buffering=0) as src:
                encrypt_stream(src, NullSink(), vault.keyring)
            return time.perf_counter() - started

        def raw_aesgcm() -> float:
            aead = AESGCM(AESGCM.generate_key(bit_length=256))
            view = memoryview(bytearray(CHUNK_SIZE))
            index = 0
            started = time.perf_counter()
            with open(source, "rb", buffering=0) as src:
                while filled := src.readinto(view):
                    aead.encrypt(index.to_bytes(12, "big"), view[:filled], None)
                    index += 1
            return time.perf_counter() - started

        plain_times: list[float] = []
        store_times: list[float] = []
        ratios: list[float] = []
        fetch_times: list[float] = []
        encrypt_times: list[float] = []
        raw_times: list[float] = []
        encrypt_ratios: list[float] = []
        plain_cpu: list[float] = []
        store_cpu: list[float] = []
        print(
            "round  first   plain_s  store_s  ratio  plain_cpu_s  store_cpu_s"
            "  fetch_s  encrypt_s  raw_aesgcm_s"
        )
        for index in range(args.rounds):
            plain_s, store_s = alternate(index, plain_write, store)
            fetch_s = fetch()
            while len(stored_ids) > 1:
                vault.shred(stored_ids.pop(0))
            encrypt_s, raw_s = alternate(index, encrypt_only, raw_aesgcm)
            plain_times.append(plain_s)
            store_times.append(store_s)
            ratios.append(store_s / plain_s)
            fetch_times.append(fetch_s)
            encrypt_times.append(encrypt_s)
            raw_times.append(raw_s)
            encrypt_ratios.append(encrypt_s / raw_s)
            plain_cpu.append(cpu_used["plain"])
            store_cpu.append(cpu_used["store"])
            first = "plain" if index % 2 == 0 else "store"
            print(
                f"{index + 1:5d}  {first:5s}  {plain_s:8.3f} {store_s:8.3f}"
                f"  {store_s / plain_s:5.2f}  {plain_cpu[-1]:11.3f}  {store_cpu[-1]:11.3f}"
                f"  {fetch_s:7.3f}  {encrypt_s:9.3f}  {raw_s:12.3f}",
                flush=True,
            )

        with open(source, "rb") as src:  # spot-check that fetched bytes are the stored ones
            for offset in (0, size // 2, max(0, size - 100)):
                src.seek(offset)
                expected = src.read(100)
                got = b"".join(vault.read_range(stored_ids[-1], offset, offset + 99))
                assert got == expected  # noqa: S101

    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    load_after = os.getloadavg()[0]
    mb = size / MIB
    median = statistics.median
    print(f"size_mb={args.size_mb}")
    print(f"rounds={args.rounds}")
    print(f"write_behind_mb={args.write_behind_mb}")
    print(f"loadavg_1m_before={load_before:.2f}")
    print(f"loadavg_1m_after={load_after:.2f}")
    print(f"plain_write_mb_s={mb / median(plain_times):.1f}")
    print(f"raw_aesgcm_mb_s={mb / median(raw_times):.1f}")
    print(f"encrypt_mb_s={mb / median(encrypt_times):.1f}")
    print(f"store_mb_s={mb / median(store_times):.1f}")
    print(f"plain_write_cpu_s={median(plain_cpu):.3f}")
    print(f"store_cpu_s={median(store_cpu):.3f}")
    print(f"fetch_mb_s={mb / median(fetch_times):.1f}")
    print(f"store_vs_plain_write_ratio_min={min(ratios):.2f}")
    print(f"store_vs_plain_write_ratio_max={max(ratios):.2f}")
    print(f"store_vs_plain_write_ratio={median(ratios):.2f}")
    print(f"encrypt_vs_raw_aesgcm_ratio={median(encrypt_ratios):.2f}")
    print(f"peak_rss_mb={peak_rss_mb:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
