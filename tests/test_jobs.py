"""The jobs layer: declared jobs, periodic work through RQ's cron, the vault orphan sweep."""

from __future__ import annotations

import io

import pytest
from flask import Flask
from rq import Queue
from sqlalchemy import select

from app.actor import Actor
from app.cli import main
from app.extensions import db, redis_client
from app.files.orphans import SEEN_KEY, sweep_orphans
from app.files.store import get_vault, store_upload
from app.jobs import EnqueueOptions, enqueue_after_commit, job, spec_of
from app.jobs.schedule import PERIODIC, cron_scheduler
from app.models import AuditLog, Role
from tests import factories
from tests.conftest import run_jobs
from tests.jobs_for_tests import create_team


def test_a_job_must_be_declared_with_its_queue(app: Flask) -> None:
    def undeclared() -> None:
        raise AssertionError("never runs")

    with app.app_context(), pytest.raises(TypeError, match="not declared"):
        enqueue_after_commit(undeclared)
    with pytest.raises(ValueError, match="unknown queue"):
        job("no-such-queue")


def test_job_arguments_never_collide_with_rq_options(app: Flask) -> None:
    """A job argument named like an RQ option reaches the job, not RQ."""
    with app.app_context():
        enqueue_after_commit(
            create_team, kwargs={"name": "timeout"}, options=EnqueueOptions(job_id="team-1")
        )
        db.session.commit()
        queued = Queue("default", connection=redis_client.connection).fetch_job("team-1")
        assert queued is not None and queued.kwargs == {"name": "timeout"}


def test_every_periodic_job_is_registered_with_rq_cron(app: Flask) -> None:
    with app.app_context():
        scheduler = cron_scheduler(redis_client.connection)
        registered = {(j.func, j.queue_name) for j in scheduler.get_jobs()}
        assert registered == {(p.func, spec_of(p.func).queue) for p in PERIODIC}


def test_cron_once_enqueues_the_sweeps_and_a_worker_runs_them(app: Flask) -> None:
    result = app.test_cli_runner().invoke(main, ["cron", "--once"])
    assert result.exit_code == 0, result.output
    assert result.output.count("enqueued") == len(PERIODIC)
    run_jobs(app)
    with app.app_context():
        failed = Queue("vault", connection=redis_client.connection).failed_job_registry
        assert failed.count == 0


def _orphan(app: Flask) -> str:
    """A blob as a crashed upload leaves it: stored, but its row never committed."""
    with app.app_context():
        stored = get_vault().put(io.BytesIO(b"half an upload"), max_size=1024)
        return stored.blob_id


def test_orphans_are_shredded_only_after_the_grace_period(app: Flask) -> None:
    with app.app_context():
        agent = factories.staff_user(Role.AGENT)
        kept = store_upload(io.BytesIO(b"a real file"), "kept.txt", Actor.staff(agent))
        db.session.commit()
        kept_blob = kept.blob_id
    orphan = _orphan(app)
    with app.app_context():
        redis = redis_client.connection
        first = sweep_orphans(redis, grace=3600, now=1_000_000)
        assert (first.orphans, first.shredded) == (1, 0)
        assert get_vault().exists(orphan)  # maybe an upload still in flight
        early = sweep_orphans(redis, grace=3600, now=1_000_000 + 3599)
        assert early.shredded == 0 and get_vault().exists(orphan)
        late = sweep_orphans(redis, grace=3600, now=1_000_000 + 3600)
        assert late.shredded == 1
        assert not get_vault().exists(orphan)
        assert get_vault().exists(kept_blob)  # a file with a row is never touched
        assert redis.hlen(SEEN_KEY) == 0
        db.session.commit()
        rows = db.session.scalars(select(AuditLog).where(AuditLog.action == "vault.orphans"))
        assert [r.details["shredded"] for r in rows] == [[], [orphan]]


def test_a_blob_whose_row_arrives_late_is_forgotten_not_shredded(app: Flask) -> None:
    """Seen as an orphan while its upload was still streaming, then committed: kept."""
    from app.models import VaultFile

    orphan = _orphan(app)
    with app.app_context():
        redis = redis_client.connection
        sweep_orphans(redis, grace=60, now=1_000)
        db.session.add(
            VaultFile(
                blob_id=orphan,
                original_name="late.txt",
                display_name="late.txt",
                size=14,
                mime_type="text/plain",
                sha256="0" * 64,
                uploaded_by_label="test",
            )
        )
        db.session.commit()
        report = sweep_orphans(redis, grace=60, now=10_000)
        assert report.shredded == 0 and get_vault().exists(orphan)
        assert redis.hlen(SEEN_KEY) == 0


def test_two_sweeps_at_once_do_not_both_run(app: Flask) -> None:
    from app.files.orphans import LOCK_KEY

    with app.app_context():
        redis = redis_client.connection
        held = redis.lock(LOCK_KEY, timeout=60)
        assert held.acquire(blocking=False)
        try:
            assert sweep_orphans(redis).skipped
        finally:
            held.release()


def test_the_worker_runs_the_sweep_job(app: Flask) -> None:
    from app.jobs import enqueue
    from app.jobs.vault import sweep_orphan_blobs

    app.config["VAULT_ORPHAN_GRACE_HOURS"] = 0  # shred at the second sighting
    orphan = _orphan(app)
    with app.app_context():
        enqueue(sweep_orphan_blobs)
    run_jobs(app)
    with app.app_context():
        assert get_vault().exists(orphan)  # first sighting only
        enqueue(sweep_orphan_blobs)
    run_jobs(app)
    with app.app_context():
        assert not get_vault().exists(orphan)
