"""Ticket numbers: unique by construction, also when processes create tickets at once."""

from __future__ import annotations

import multiprocessing
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from app.models.tickets import Ticket
from app.tickets.numbering import BLOCK, spread

PROCESSES = 4
PER_PROCESS = 25


def test_spread_is_one_to_one_within_and_across_blocks() -> None:
    first_block = {spread(n) for n in range(BLOCK)}
    assert len(first_block) == BLOCK
    assert min(first_block) == 100_000 and max(first_block) == 999_999
    later = {spread(n) for n in range(BLOCK, BLOCK + 50_000)}
    assert not later & first_block
    assert all(len(str(v)) == 7 for v in later)


def test_neighbours_do_not_get_neighbouring_numbers() -> None:
    numbers = [spread(n) for n in range(100)]
    gaps = [abs(b - a) for a, b in zip(numbers, numbers[1:], strict=False)]
    assert min(gaps) > 1000


def _create_many(config: dict[str, Any], start: Any) -> list[str]:
    """Runs in a child process: wait for the common start signal, then create tickets."""
    from app import create_app
    from app.actor import Actor
    from app.extensions import db
    from app.models.tickets import Channel
    from app.tickets import create_ticket

    app = create_app(config)
    numbers = []
    with app.app_context():
        start.wait(30)
        for i in range(PER_PROCESS):
            ticket = create_ticket(
                Channel.API, Actor.system(), subject=f"Load {i}", submitter_email="load@x.test"
            )
            db.session.commit()
            numbers.append(ticket.number)
        db.session.remove()
        db.engine.dispose()
    return numbers


def run_concurrently(config: dict[str, Any]) -> list[str]:
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager:
        start = manager.Event()
        with context.Pool(PROCESSES) as pool:
            pending = [pool.apply_async(_create_many, (config, start)) for _ in range(PROCESSES)]
            start.set()
            return [n for result in pending for n in result.get(timeout=120)]


def check_unique(app: Any, numbers: list[str]) -> None:
    from app.extensions import db

    assert len(numbers) == PROCESSES * PER_PROCESS
    assert len(set(numbers)) == len(numbers), "two tickets got the same number"
    with app.app_context():
        stored = db.session.scalars(select(Ticket.number)).all()
    assert sorted(stored) == sorted(numbers)


def test_concurrent_processes_on_sqlite(app: Any, tmp_path: Path) -> None:
    config = {
        k: app.config[k] for k in ("INSTANCE_PATH", "DATABASE_URL", "REDIS_URL", "SECRET_KEY")
    }
    check_unique(app, run_concurrently(config))


@pytest.mark.postgres
def test_concurrent_processes_on_postgres(
    postgres_database: str, redis_server: Any, tmp_path: Path
) -> None:
    from flask_migrate import upgrade

    from app import create_app
    from tests.conftest import base_config

    config = base_config(tmp_path, redis_server.url, postgres_database)
    app = create_app(config)
    with app.app_context():
        upgrade()
    check_unique(app, run_concurrently(config))
    from app.extensions import db

    with app.app_context():
        db.session.remove()
        db.engine.dispose()
