"""``vaultdesk db upgrade`` on an empty database gives exactly the models' schema."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade
from sqlalchemy import inspect

from app import create_app
from app.extensions import db
from app.tickets.search import include_name
from tests.conftest import base_config


def schema_differences(app: Any) -> list[Any]:
    with app.app_context():
        with db.engine.connect() as connection:
            context = MigrationContext.configure(
                connection,
                opts={"compare_type": True, "render_as_batch": True, "include_name": include_name},
            )
            diff = compare_metadata(context, db.metadata)
        db.session.remove()
        db.engine.dispose()
    return diff


def upgrade_and_compare(app: Any) -> None:
    with app.app_context():
        upgrade()
    assert schema_differences(app) == []
    with app.app_context():
        tables = set(inspect(db.engine).get_table_names())
        db.session.remove()
        db.engine.dispose()
    assert set(db.metadata.tables) <= tables


def test_sqlite_upgrade_equals_models(tmp_path: Path, redis_server: Any) -> None:
    upgrade_and_compare(create_app(base_config(tmp_path, redis_server.url)))


def test_a_missing_revision_is_noticed(tmp_path: Path, redis_server: Any) -> None:
    """The comparison is not blind: a schema one revision short shows differences."""
    app = create_app(base_config(tmp_path, redis_server.url))
    with app.app_context():
        upgrade()
        downgrade(revision="base")
        db.session.remove()
        db.engine.dispose()
    assert schema_differences(app) != []


@pytest.mark.postgres
def test_postgres_upgrade_equals_models(
    tmp_path: Path, redis_server: Any, postgres_database: str
) -> None:
    upgrade_and_compare(create_app(base_config(tmp_path, redis_server.url, postgres_database)))


@pytest.mark.postgres
def test_postgres_audit_log_is_append_only(
    tmp_path: Path, redis_server: Any, postgres_database: str
) -> None:
    from sqlalchemy import text
    from sqlalchemy.exc import DatabaseError

    from app.actor import Actor
    from app.audit import record
    from app.models.people import User

    app = create_app(base_config(tmp_path, redis_server.url, postgres_database))
    with app.app_context():
        upgrade()
        user = User(email="gone@x.test", name="Gone")
        db.session.add(user)
        db.session.flush()
        record(Actor.staff(user), "test.event", "user", user.id)
        db.session.commit()
        for statement in ("UPDATE audit_log SET action = 'forged'", "DELETE FROM audit_log"):
            with pytest.raises(DatabaseError, match="append-only"):
                db.session.execute(text(statement))
            db.session.rollback()
        # Deleting the user keeps the row, with the link to the user set to NULL.
        db.session.execute(text("DELETE FROM \"user\" WHERE email = 'gone@x.test'"))
        db.session.commit()
        row = db.session.execute(text("SELECT actor_id, actor_label FROM audit_log")).one()
        assert row == (None, "gone@x.test")
        db.session.remove()
        db.engine.dispose()


def _outcome_check(app: Any) -> None:
    """The widened outcome column takes every outcome the model knows, and nothing else."""
    from sqlalchemy import text
    from sqlalchemy.exc import IntegrityError

    from app.models.files import DownloadOutcome

    insert = text("INSERT INTO download_event (at, outcome) VALUES (CURRENT_TIMESTAMP, :o)")
    with app.app_context():
        for outcome in DownloadOutcome:
            db.session.execute(insert, {"o": outcome.value})
        db.session.commit()
        with pytest.raises(IntegrityError):
            db.session.execute(insert, {"o": "bogus"})
        db.session.rollback()
        downgrade(revision="0006")
        outcomes = db.session.execute(text("SELECT outcome FROM download_event")).scalars().all()
        assert sorted(set(outcomes)) == ["granted", "refused", "served", "viewed"]
        with pytest.raises(IntegrityError):
            db.session.execute(insert, {"o": "verified"})
        db.session.rollback()
        upgrade()
        db.session.remove()
        db.engine.dispose()


def test_sqlite_download_outcomes_are_checked(tmp_path: Path, redis_server: Any) -> None:
    app = create_app(base_config(tmp_path, redis_server.url))
    with app.app_context():
        upgrade()
    _outcome_check(app)


@pytest.mark.postgres
def test_postgres_download_outcomes_are_checked(
    tmp_path: Path, redis_server: Any, postgres_database: str
) -> None:
    app = create_app(base_config(tmp_path, redis_server.url, postgres_database))
    with app.app_context():
        upgrade()
    _outcome_check(app)
