"""How fast the sign-in page answers while slow clients are downloading large files.

Run from the repository root::

    .venv/bin/python bench/slow_downloads.py [--downloads 10] [--size-mb 20] [--samples 50]

Starts a private Redis and gunicorn exactly as ``scripts/run`` does (``app.gunicorn_config``)
on a free loopback port, with a temporary instance holding one file of ``--size-mb`` MiB
and a vault link to it. After a few untimed loads (each worker renders its first page
slowly) it times ``--samples`` sign-in page loads, one new connection each, one after the
other, with nothing else going on. Then it opens ``--downloads`` downloads of the file
through the link, each reading ``--chunk`` bytes every ``--pause`` seconds, and times the
sign-in page again while all of them are streaming. A load that gets no answer within
``--timeout`` seconds counts as timed out, not as a figure.

``--gunicorn-args`` go after the config module and win over it; to see the old behaviour::

    .venv/bin/python bench/slow_downloads.py --gunicorn-args="--worker-class sync --threads 1"

(gunicorn turns ``sync`` into ``gthread`` as long as ``threads`` is above 1.) The last lines
are ``name=value`` pairs for scripts to parse.
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.served import (  # noqa: E402
    MIB,
    ServedDesk,
    SlowDownload,
    grant_download,
    prepare_instance,
)
from tests.services import RedisServer  # noqa: E402

WARM_UP = 10


def sample(desk: ServedDesk, count: int, timeout: float) -> tuple[list[float], int]:
    """Milliseconds of each answered sign-in page load, and how many timed out."""
    times: list[float] = []
    timed_out = 0
    for _ in range(count):
        try:
            answer = desk.get("/login", timeout=timeout)
        except TimeoutError:
            timed_out += 1
            continue
        if answer.status != 200:
            raise SystemExit(f"/login answered {answer.status}")
        times.append(answer.seconds * 1000)
    return times, timed_out


def figures(name: str, times: list[float], timed_out: int) -> dict[str, str]:
    if not times:
        return {f"{name}_answered": "0", f"{name}_timed_out": str(timed_out)}
    ordered = sorted(times)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {
        f"{name}_answered": str(len(times)),
        f"{name}_timed_out": str(timed_out),
        f"{name}_p50_ms": f"{statistics.median(ordered):.1f}",
        f"{name}_p95_ms": f"{p95:.1f}",
        f"{name}_max_ms": f"{ordered[-1]:.1f}",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--downloads", type=int, default=10)
    parser.add_argument("--size-mb", type=int, default=20)
    parser.add_argument("--samples", type=int, default=50)
    parser.add_argument("--chunk", type=int, default=4096, help="bytes per read")
    parser.add_argument("--pause", type=float, default=0.05, help="seconds between reads")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds per page load")
    parser.add_argument("--gunicorn-args", default="", help="extra gunicorn options")
    options = parser.parse_args()
    extra = shlex.split(options.gunicorn_args)

    with RedisServer() as redis, tempfile.TemporaryDirectory(prefix="vaultdesk-bench-") as tmp:
        instance = Path(tmp) / "instance"
        link = prepare_instance(instance, redis.url, file_size=options.size_mb * MIB)
        with ServedDesk(instance, redis.url, args=extra) as desk:
            sample(desk, WARM_UP, options.timeout)
            idle = sample(desk, options.samples, options.timeout)
            downloads = [
                SlowDownload(
                    desk.url,
                    grant_download(desk.url, link),
                    chunk=options.chunk,
                    pause=options.pause,
                )
                for _ in range(options.downloads)
            ]
            try:
                for download in downloads:
                    download.start()
                deadline = time.monotonic() + 10
                for download in downloads:
                    download.started.wait(max(0.0, deadline - time.monotonic()))
                streaming_before = sum(d.in_flight for d in downloads)
                loaded = sample(desk, options.samples, options.timeout)
                streaming_after = sum(d.in_flight for d in downloads)
            finally:
                for download in downloads:
                    download.close()

    print(
        f"sign-in page, {options.samples} loads each; {options.downloads} downloads of "
        f"{options.size_mb} MiB reading {options.chunk} bytes every {options.pause} s"
    )
    print(f"gunicorn: app.gunicorn_config {' '.join(extra)}".rstrip())
    results = {
        **figures("idle", *idle),
        **figures("loaded", *loaded),
        "downloads": str(options.downloads),
        "streaming_before": str(streaming_before),
        "streaming_after": str(streaming_after),
    }
    for name, value in results.items():
        print(f"{name}={value}")


if __name__ == "__main__":
    main()
