"""Finding and shredding vault blobs that no file row refers to.

An upload writes its blob while the request streams in, before the database transaction
that records it commits (``app.files.uploads``). A request that fails cleans up after
itself, but a process killed at the wrong moment (power loss, OOM kill, deploy) leaves an
encrypted blob with no row: unreadable to anyone without the keys, yet still data the
company holds and cannot account for. This sweep finds such blobs and shreds them.

Rule of the house that makes this safe: every blob the desk writes gets a ``VaultFile``
row (attachments, archived mail originals, exports alike). A blob is shredded only after
it has been seen without a row on two sweeps at least ``grace`` apart, so an upload still
in flight (its row not yet committed) is never touched. The first sighting is kept in
Redis, shared by every worker; a lock keeps two workers from sweeping at once.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import islice

from redis import Redis
from sqlalchemy import select

from app import audit
from app.actor import Actor
from app.extensions import db
from app.files.store import get_vault
from app.models.files import VaultFile
from vault import Part

SEEN_KEY = "vaultdesk:vault:orphans-seen"
LOCK_KEY = "vaultdesk:lock:vault-orphan-sweep"
DEFAULT_GRACE = 24 * 3600
_BATCH = 500


@dataclass(frozen=True)
class SweepReport:
    blobs: int  # blobs in storage
    orphans: int  # without a row now
    shredded: int  # orphans past their grace, destroyed
    skipped: bool = False  # another worker holds the lock


def _batches(ids: Iterable[str]) -> Iterator[list[str]]:
    iterator = iter(ids)
    while batch := list(islice(iterator, _BATCH)):
        yield batch


def _stored_ids() -> set[str]:
    storage = get_vault().storage
    return set(storage.iter_ids(Part.HEADER)) | set(storage.iter_ids(Part.BODY))


def _unreferenced(blob_ids: set[str]) -> set[str]:
    known: set[str] = set()
    for batch in _batches(sorted(blob_ids)):
        known.update(
            db.session.scalars(select(VaultFile.blob_id).where(VaultFile.blob_id.in_(batch)))
        )
    return blob_ids - known


def sweep_orphans(
    redis: Redis, *, grace: int = DEFAULT_GRACE, now: float | None = None
) -> SweepReport:
    """Shred blobs that have had no row for at least ``grace`` seconds; audit each run."""
    lock = redis.lock(LOCK_KEY, timeout=3600, blocking=False)
    if not lock.acquire():
        return SweepReport(0, 0, 0, skipped=True)
    try:
        now = time.time() if now is None else now
        stored = _stored_ids()
        orphans = _unreferenced(stored)
        seen = {key.decode(): float(value) for key, value in redis.hgetall(SEEN_KEY).items()}
        due = sorted(blob for blob in orphans if blob in seen and now - seen[blob] >= grace)
        vault = get_vault()
        for blob_id in due:
            vault.shred(blob_id)
        fresh = {blob: now for blob in orphans if blob not in seen}
        gone = [blob for blob in seen if blob not in orphans or blob in due]
        with redis.pipeline() as pipe:
            if gone:
                pipe.hdel(SEEN_KEY, *gone)
            if fresh:
                pipe.hset(SEEN_KEY, mapping=fresh)
            pipe.execute()
        if due or fresh:
            audit.record(
                Actor.system("vault sweep"),
                "vault.orphans",
                "vault",
                None,
                found=len(orphans),
                shredded=due[:1000],
            )
        return SweepReport(len(stored), len(orphans), len(due))
    finally:
        lock.release()
