"""Jobs on the ``vault`` queue: housekeeping of the encrypted file store."""

from __future__ import annotations

from flask import current_app

from app.extensions import db, redis_client
from app.files.orphans import SweepReport, sweep_orphans
from app.jobs import job


@job("vault", timeout=3600)
def sweep_orphan_blobs() -> dict[str, int | bool]:
    """Shred blobs left without a file row by a crash (see ``app.files.orphans``)."""
    report: SweepReport = sweep_orphans(
        redis_client.connection, grace=int(current_app.config["VAULT_ORPHAN_GRACE_HOURS"]) * 3600
    )
    db.session.commit()
    return {
        "blobs": report.blobs,
        "orphans": report.orphans,
        "shredded": report.shredded,
        "skipped": report.skipped,
    }
