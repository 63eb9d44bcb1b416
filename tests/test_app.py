"""Configuration, health, CLI commands and the RQ worker, against a real Redis."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, text

from app import create_app
from app.extensions import db
from app.models import AuditLog, Contact, Role, Status, StreamEntry, Team, Ticket, User
from tests.conftest import base_config
from tests.services import free_port


def test_secret_key_is_created_once_with_0600(tmp_path: Path, redis_server: Any) -> None:
    config = base_config(tmp_path, redis_server.url)
    del config["SECRET_KEY"]
    first = create_app(config).config["SECRET_KEY"]
    key_file = tmp_path / "secret_key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert len(first) == 64
    assert create_app(config).config["SECRET_KEY"] == first
    other = tmp_path / "other"
    config["INSTANCE_PATH"] = str(other)
    config["DATABASE_URL"] = f"sqlite:///{other}/v.db"
    assert create_app(config).config["SECRET_KEY"] != first


def test_settings_layer_env_over_instance_file(
    tmp_path: Path, redis_server: Any, monkeypatch: Any
) -> None:
    (tmp_path / "config.py").write_text('TIMEZONE = "Europe/Lisbon"\nTICKET_PREFIX = "SUP"\n')
    monkeypatch.setenv("VAULTDESK_INSTANCE_PATH", str(tmp_path))
    monkeypatch.setenv("VAULTDESK_REDIS_URL", redis_server.url)
    monkeypatch.setenv("VAULTDESK_TIMEZONE", "Europe/Vienna")
    app = create_app()
    assert app.instance_path == str(tmp_path)
    assert app.config["TIMEZONE"] == "Europe/Vienna"  # env wins over instance/config.py
    assert app.config["TICKET_PREFIX"] == "SUP"  # instance/config.py wins over defaults
    assert app.config["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{tmp_path / 'vaultdesk.db'}"
    assert app.config["VAULT_DIR"] == str(tmp_path / "vault")
    monkeypatch.setenv("VAULTDESK_DATABASE_URL", "postgresql://u@db.example/desk")
    assert (
        create_app().config["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg://u@db.example/desk"
    )


def test_healthz_reports_database_and_redis(client: Any) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json == {"status": "ok", "database": "ok", "redis": "ok"}


def test_healthz_says_when_redis_is_down(tmp_path: Path, migrated_template: Path) -> None:
    import shutil

    shutil.copy(migrated_template, tmp_path / "vaultdesk.db")
    app = create_app(base_config(tmp_path, f"redis://127.0.0.1:{free_port()}/0"))
    response = app.test_client().get("/healthz")
    assert response.status_code == 503
    assert response.json["database"] == "ok"
    assert response.json["redis"].startswith("error")
    assert response.json["status"] == "degraded"


def test_domain_errors_become_clear_4xx_pages(app: Any) -> None:
    from app.errors import Conflict

    @app.get("/boom")
    def boom() -> str:
        raise Conflict("A ticket cannot go from Closed to Pending.")

    response = app.test_client().get("/boom")
    assert response.status_code == 409
    assert "A ticket cannot go from Closed to Pending." in response.get_data(as_text=True)


def test_sqlite_connections_keep_their_statistics_with_pragma_optimize(
    app: Any, monkeypatch: Any
) -> None:
    import app as vaultdesk
    from app.actor import Actor
    from app.models.tickets import Channel
    from app.tickets import create_ticket

    def stats() -> set[str]:
        exists = "SELECT count(*) FROM sqlite_master WHERE name = 'sqlite_stat1'"
        if not db.session.scalar(text(exists)):
            return set()
        return set(db.session.scalars(text("SELECT DISTINCT tbl FROM sqlite_stat1")))

    def use_ticket_indexes() -> None:
        db.session.execute(select(Ticket.id).where(Ticket.status == "new")).all()
        db.session.remove()  # hands the connection back to the pool

    with app.app_context():
        for n in range(30):
            create_ticket(Channel.API, Actor.system(), subject=f"T{n}", submitter_email="a@b.test")
        db.session.commit()
        pragmas = {
            name: db.session.scalar(text(f"PRAGMA {name}"))
            for name in ("foreign_keys", "journal_mode", "analysis_limit")
        }
        assert pragmas == {"foreign_keys": 1, "journal_mode": "wal", "analysis_limit": 10_000}
        use_ticket_indexes()
        assert "ticket" not in stats()  # not due yet: at most once an hour per connection
        monkeypatch.setattr(vaultdesk, "OPTIMIZE_EVERY_SECONDS", 0.0)
        use_ticket_indexes()
        assert "ticket" in stats()

        db.session.execute(text("DELETE FROM sqlite_stat1"))
        db.session.commit()
        monkeypatch.setattr(vaultdesk, "OPTIMIZE_EVERY_SECONDS", 3600.0)
        use_ticket_indexes()
        db.engine.dispose()  # closing a connection is the other moment SQLite advises
        assert "ticket" in stats()


def test_demo_data_builds_a_believable_company(app: Any) -> None:
    runner = app.test_cli_runner()
    result = runner.invoke(args=["demo-data"])
    assert result.exit_code == 0, result.output
    with app.app_context():

        def count(stmt: Any) -> int:
            return db.session.scalar(stmt)

        users = db.session.scalars(select(User)).all()
        by_role = {r: sum(1 for u in users if r in u.roles) for r in Role}
        assert by_role[Role.SUPERVISOR] == 2 and by_role[Role.AGENT] == 6
        assert by_role[Role.COMPLIANCE] == 1 and by_role[Role.ADMIN] == 1
        assert by_role[Role.CUSTOMER] == 10
        assert count(select(func.count()).select_from(Team)) == 2
        assert count(select(func.count()).select_from(Contact)) == 60
        assert count(select(func.count()).select_from(Ticket)) == 300
        statuses = set(db.session.scalars(select(Ticket.status)))
        priorities = set(db.session.scalars(select(Ticket.priority)))
        assert statuses == {s.value for s in Status} and len(priorities) == 4
        visibilities = set(db.session.scalars(select(StreamEntry.visibility)))
        assert visibilities == {"internal", "external"}
        assert count(select(func.count()).select_from(AuditLog)) > 300
    # Every printed sign-in works, and each lands on its home.
    lines = [ln.split() for ln in result.output.splitlines() if "@" in ln and "http" in ln]
    assert len(lines) == 18
    from tests.conftest import Person, sign_in

    for role, email, password, url in lines:
        response = sign_in(app.test_client(), Person(0, email, password), portal="/portal/" in url)
        assert response.status_code == 302, (role, email)
    assert "not empty" in runner.invoke(args=["demo-data"]).output
    assert runner.invoke(args=["demo-data", "--if-empty"]).exit_code == 0


def test_user_create_command(app: Any) -> None:
    runner = app.test_cli_runner()
    result = runner.invoke(
        args=[
            "user",
            "create",
            "--email",
            "Ops@Example.org",
            "--role",
            "admin",
            "--role",
            "agent",
            "--password",
            "long enough pw",
        ]
    )
    assert result.exit_code == 0, result.output
    with app.app_context():
        user = db.session.scalar(select(User).where(User.email == "ops@example.org"))
        assert user.roles == {Role.ADMIN, Role.AGENT} and user.check_password("long enough pw")
    again = runner.invoke(
        args=[
            "user",
            "create",
            "--email",
            "ops@example.org",
            "--role",
            "admin",
            "--password",
            "long enough pw",
        ]
    )
    assert again.exit_code != 0 and "exists already" in again.output
    short = runner.invoke(
        args=[
            "user",
            "create",
            "--email",
            "b@example.org",
            "--role",
            "admin",
            "--password",
            "short",
        ]
    )
    assert short.exit_code != 0 and "at least 10" in short.output


def test_jobs_are_enqueued_only_after_commit_and_run_in_the_worker(app: Any) -> None:
    from rq import Queue

    from app.extensions import redis_client
    from app.jobs import enqueue_after_commit
    from app.jobs.worker import run_worker
    from tests.jobs_for_tests import create_team

    with app.app_context():
        queue = Queue("default", connection=redis_client.connection)
        enqueue_after_commit(create_team, args=("Rolled back",))
        db.session.rollback()
        assert queue.count == 0
        enqueue_after_commit(create_team, args=("Night shift",))
        assert queue.count == 0  # not before the commit
        db.session.commit()
        assert queue.count == 1
    run_worker(app, ("default",), burst=True)
    with app.app_context():
        assert db.session.scalar(select(Team.name)) == "Night shift"


def test_vaultdesk_command_works_from_any_folder(tmp_path: Path, redis_server: Any) -> None:
    """The console script finds templates, migrations and commands wherever it runs."""
    env = {
        **os.environ,
        "VAULTDESK_INSTANCE_PATH": str(tmp_path / "inst"),
        "VAULTDESK_REDIS_URL": redis_server.url,
    }
    script = Path(sys.executable).with_name("vaultdesk")
    upgrade = subprocess.run(
        [str(script), "db", "upgrade"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert upgrade.returncode == 0, upgrade.stderr
    created = subprocess.run(
        [
            str(script),
            "user",
            "create",
            "--email",
            "a@b.example",
            "--role",
            "admin",
            "--password",
            "0123456789ab",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert created.returncode == 0, created.stderr
    assert "Created a@b.example (admin)." in created.stdout


def test_readme_lists_every_setting_with_its_default() -> None:
    from app.config import SETTINGS

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    for setting in SETTINGS:
        default = f"`{setting.default}`" if setting.default is not None else "—"
        assert f"| `VAULTDESK_{setting.key}` | {default} | {setting.help} |" in readme
