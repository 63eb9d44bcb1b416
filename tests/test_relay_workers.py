"""The relay's guarantees with real workers: one row is sent once however many workers
try, nothing is lost while Redis is down or a worker dies holding a claim."""

from __future__ import annotations

import multiprocessing
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask_migrate import upgrade

from app import create_app
from app.extensions import db
from app.jobs import EnqueueOptions, enqueue
from app.jobs.mail import send_outbox, sweep_outbox
from app.mail import relay
from app.models import OutboxMessage
from app.models.types import utcnow
from tests import services
from tests.conftest import base_config, run_jobs
from tests.services import RedisServer, SmtpSink
from tests.test_relay import CUSTOMER, make_world, reply, row, use_smtp


def one_recipient_reply(app: Flask) -> tuple[dict[str, Any], int]:
    world = make_world(app, customer_only=True)
    return world, reply(app, world)


def two_workers_at_once(app: Flask) -> None:
    """Two burst workers in two processes, started together, as two machines would."""
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=run_jobs, args=(app,)) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0


def _two_workers_send_once(app: Flask, sink: SmtpSink) -> None:
    use_smtp(app, sink)
    _world, outbox_id = one_recipient_reply(app)
    with app.app_context():
        # A second job for the same row, as the sweep or a retry could leave behind.
        for n in range(3):
            enqueue(send_outbox, args=(outbox_id,), options=EnqueueOptions(job_id=f"dup-{n}"))
    two_workers_at_once(app)
    (delivered,) = sink.wait_for(1)
    assert delivered.rcpt_tos == (CUSTOMER,)
    assert len(sink.messages) == 1
    stored = row(app, outbox_id)
    assert stored["status"] == "sent" and stored["attempts"] == 1


def test_two_workers_on_one_row_send_it_once_sqlite(app: Flask, smtp_sink: SmtpSink) -> None:
    _two_workers_send_once(app, smtp_sink)


@pytest.fixture
def pg_app(tmp_path: Path, redis_server: Any, postgres_database: str) -> Any:
    redis_server.client().flushall()
    instance = tmp_path / "pg-instance"
    instance.mkdir()
    application = create_app(base_config(instance, redis_server.url, postgres_database))
    with application.app_context():
        upgrade()
    yield application
    with application.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.mark.postgres
def test_two_workers_on_one_row_send_it_once_postgres(pg_app: Flask, smtp_sink: SmtpSink) -> None:
    _two_workers_send_once(pg_app, smtp_sink)


@pytest.mark.postgres
def test_many_claims_at_the_same_instant_leave_one_owner_postgres(pg_app: Flask) -> None:
    _world, outbox_id = one_recipient_reply(pg_app)
    barrier = threading.Barrier(8)
    winners: list[relay.Claim] = []

    def race() -> None:
        with pg_app.app_context():
            barrier.wait()
            taken = relay.claim(outbox_id)
            if taken is not None:
                winners.append(taken)
            db.session.remove()

    threads = [threading.Thread(target=race) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(winners) == 1
    assert row(pg_app, outbox_id)["status"] == "sending"


def test_a_claim_past_its_lease_is_taken_over_by_the_sweep(app: Flask, smtp_sink: SmtpSink) -> None:
    """A worker died holding the row: after the lease the sweep hands it to another."""
    use_smtp(app, smtp_sink)
    _world, outbox_id = one_recipient_reply(app)
    with app.app_context():
        taken = relay.claim(outbox_id)  # ... and the worker dies here
        assert taken is not None
        assert relay.claim(outbox_id) is None  # held: nobody else may take it
    with app.app_context():
        from app.extensions import redis_client

        redis_client.connection.flushall()  # its job is gone with the worker
        enqueue(sweep_outbox)
    run_jobs(app)
    assert smtp_sink.messages == []  # the lease still runs
    with app.app_context():
        db.session.execute(
            OutboxMessage.__table__.update()
            .where(OutboxMessage.id == outbox_id)
            .values(claimed_until=utcnow() - timedelta(seconds=1))
        )
        db.session.commit()
        enqueue(sweep_outbox)
    run_jobs(app)
    assert len(smtp_sink.wait_for(1)) == 1
    stored = row(app, outbox_id)
    assert stored["status"] == "sent" and stored["attempts"] == 2


def test_replies_saved_while_redis_is_down_are_sent_when_it_returns(
    tmp_path: Path, migrated_template: Path, smtp_sink: SmtpSink, monkeypatch: Any
) -> None:
    import shutil

    redis = RedisServer().start()
    port = redis.port
    try:
        instance = tmp_path / "instance"
        instance.mkdir()
        shutil.copy(migrated_template, instance / "vaultdesk.db")
        app = create_app(base_config(instance, redis.url))
        use_smtp(app, smtp_sink)
        redis.stop()  # Redis goes away; agents keep answering
        world = make_world(app, customer_only=True)
        # Through the web: the request must succeed although the job cannot be enqueued.
        from app.models import Role
        from tests.conftest import csrf_from, sign_in
        from tests.factories import staff_user

        with app.app_context():
            agent = staff_user(Role.AGENT)
            db.session.commit()
            email = agent.email
        from tests.conftest import Person

        client = app.test_client()
        assert sign_in(client, Person(0, email, "a long test password")).status_code == 302
        page = client.get(f"/agent/tickets/{world['number']}").get_data(as_text=True)
        answered = client.post(
            f"/agent/tickets/{world['number']}/answer",
            data={
                "csrf_token": csrf_from(page),
                "visibility": "public",
                "identity_id": str(world["identity_id"]),
                "body": "Saved while Redis was down.",
            },
            content_type="multipart/form-data",
        )
        assert answered.status_code == 303
        outbox_id = reply(app, world, "A second one, also while Redis was down.")
        with app.app_context():
            rows = db.session.query(OutboxMessage).all()
            assert [r.status for r in rows] == ["queued", "queued"]
        assert smtp_sink.messages == []
        # Redis comes back on its address, empty: no job knows about the replies.
        monkeypatch.setattr(services, "free_port", lambda: port)
        redis = RedisServer().start()
        assert redis.port == port
        with app.app_context():
            enqueue(sweep_outbox)
        run_jobs(app)
        # The first answer made the agent the manager (an unmanaged ticket goes to whoever
        # answers), so the colleague's second reply is also copied to them.
        arrived = smtp_sink.wait_for(3)
        to_customer = [m for m in arrived if list(m.rcpt_tos) == ["nora@customer.test"]]
        to_manager = [m for m in arrived if list(m.rcpt_tos) == [email]]
        assert len(to_customer) == 2 and len(to_manager) == 1 and len(arrived) == 3
        texts = sorted(m.message.get_body(("plain",)).get_content() for m in to_customer)
        assert texts[0].startswith("A second one") and texts[1].startswith("Saved while Redis")
        assert row(app, outbox_id)["status"] == "sent"
        with app.app_context():
            db.engine.dispose()
    finally:
        redis.stop()


def test_the_sweep_is_a_periodic_job(app: Flask) -> None:
    from app.jobs.schedule import PERIODIC

    (entry,) = [p for p in PERIODIC if p.func is sweep_outbox]
    assert entry.interval == 60


def _two_workers_drain_many(app: Flask, sink: SmtpSink) -> None:
    """Batches of claims from two workers at once: every row sent once, none twice."""
    use_smtp(app, sink)
    app.config["MAIL_BATCH"] = 7  # several batches per worker
    world, first = one_recipient_reply(app)
    ids = [first] + [reply(app, world, f"Reply {n}") for n in range(29)]
    two_workers_at_once(app)
    arrived = sink.wait_for(30)
    message_ids = [m.message["Message-ID"] for m in arrived]
    assert len(message_ids) == 30 and len(set(message_ids)) == 30
    assert {row(app, i)["status"] for i in ids} == {"sent"}
    assert {row(app, i)["attempts"] for i in ids} == {1}


def test_two_workers_drain_many_rows_each_once_sqlite(app: Flask, smtp_sink: SmtpSink) -> None:
    _two_workers_drain_many(app, smtp_sink)


@pytest.mark.postgres
def test_two_workers_drain_many_rows_each_once_postgres(pg_app: Flask, smtp_sink: SmtpSink) -> None:
    _two_workers_drain_many(pg_app, smtp_sink)


@pytest.mark.postgres
def test_batch_claims_at_the_same_instant_never_share_a_row_postgres(pg_app: Flask) -> None:
    world, first = one_recipient_reply(pg_app)
    ids = [first] + [reply(pg_app, world, f"Reply {n}") for n in range(39)]
    barrier = threading.Barrier(6)
    claimed: list[int] = []
    lock = threading.Lock()

    def race() -> None:
        with pg_app.app_context():
            barrier.wait()
            group = relay.claim_due(10)
            with lock:
                claimed.extend(c.message_id for c in group)
            db.session.remove()

    threads = [threading.Thread(target=race) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(claimed) == len(set(claimed))  # no row went to two workers
    assert set(claimed) <= set(ids)
    assert {row(pg_app, i)["attempts"] for i in claimed} == {1}
