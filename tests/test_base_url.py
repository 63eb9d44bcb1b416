"""``BASE_URL`` follows ``VAULTDESK_BIND`` when it is not set: printed sign-ins, mails, links.

Every absolute address the desk hands out (demo sign-ins, portal sign-in mails, vault links)
is built from ``BASE_URL``. Served on another port than 5000 without a ``BASE_URL``, each of
them used to point at a server that is not there.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from email import policy
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from app import create_app
from app.accounts.emailed_links import request_sign_in_link
from app.accounts.people import create_user
from app.actor import Actor
from app.config import base_url_for_bind, bind_address
from app.extensions import db
from app.files import vault_links
from app.files.store import store_upload
from app.models import Role
from app.models.people import Contact
from tests import factories
from tests.conftest import base_config, run_jobs

URL = re.compile(r"https?://[^\s/]+")


@pytest.mark.parametrize(
    ("bind", "expected"),
    [
        ("127.0.0.1:5102", "http://localhost:5102"),
        ("127.0.0.2:5102", "http://localhost:5102"),
        ("[::1]:5102", "http://localhost:5102"),
        ("localhost:5102", "http://localhost:5102"),
        ("tcp://192.0.2.7:8000", "http://192.0.2.7:8000"),
        ("[2001:db8::7]:8443", "http://[2001:db8::7]:8443"),
        ("Desk.Example.org:80", "http://desk.example.org"),
        ("127.0.0.1", "http://localhost:8000"),  # gunicorn's port when none is given
        ("unix:/run/vaultdesk.sock", "http://localhost"),
    ],
)
def test_base_url_is_what_a_person_on_this_machine_would_type(bind: str, expected: str) -> None:
    assert base_url_for_bind(bind) == expected


@pytest.mark.parametrize("bind", ["0.0.0.0:8000", "[::]:8000", ":8000"])
def test_a_wildcard_bind_names_this_machine(bind: str) -> None:
    assert base_url_for_bind(bind) == f"http://{socket.gethostname().lower()}:8000"


def test_bind_defaults_to_loopback_port_5000() -> None:
    assert bind_address({}) == "127.0.0.1:5000"
    assert bind_address({"VAULTDESK_BIND": ""}) == "127.0.0.1:5000"
    assert bind_address({"VAULTDESK_BIND": "0.0.0.0:8000"}) == "0.0.0.0:8000"


def test_base_url_follows_the_bind_unless_set(
    tmp_path: Path, redis_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VAULTDESK_INSTANCE_PATH", str(tmp_path))
    monkeypatch.setenv("VAULTDESK_REDIS_URL", redis_server.url)
    monkeypatch.delenv("VAULTDESK_BASE_URL", raising=False)
    monkeypatch.delenv("VAULTDESK_BIND", raising=False)
    assert create_app().config["BASE_URL"] == "http://localhost:5000"
    monkeypatch.setenv("VAULTDESK_BIND", "127.0.0.1:5102")
    app = create_app()
    assert app.config["BASE_URL"] == "http://localhost:5102"
    assert app.config["SESSION_COOKIE_SECURE"] is False
    # instance/config.py wins over the bind ...
    (tmp_path / "config.py").write_text('BASE_URL = "https://desk.example.org"\n')
    app = create_app()
    assert app.config["BASE_URL"] == "https://desk.example.org"
    assert app.config["SESSION_COOKIE_SECURE"] is True
    # ... and the environment over both.
    monkeypatch.setenv("VAULTDESK_BASE_URL", "https://support.example.com/desk")
    assert create_app().config["BASE_URL"] == "https://support.example.com/desk"


@pytest.fixture
def app_on_5102(
    tmp_path: Path, migrated_template: Path, redis_server: Any, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Flask]:
    """An app whose only hint about its address is ``VAULTDESK_BIND``."""
    monkeypatch.delenv("VAULTDESK_BASE_URL", raising=False)
    monkeypatch.setenv("VAULTDESK_BIND", "127.0.0.1:5102")
    shutil.copy(migrated_template, tmp_path / "vaultdesk.db")
    application = create_app(base_config(tmp_path, redis_server.url))
    yield application
    with application.app_context():
        db.engine.dispose()


def test_sign_in_mails_and_file_links_follow_the_bind(app_on_5102: Flask) -> None:
    app = app_on_5102
    with app.app_context():
        agent = factories.staff_user(Role.AGENT)
        file = store_upload(
            io.BytesIO(b"x" * 10), "a.txt", Actor.staff(agent), ticket=factories.ticket()
        )
        link = vault_links.issue_link(file, Actor.staff(agent))
        user = create_user(
            email="c@acme.test",
            roles=[Role.CUSTOMER],
            password="a long test password",
            actor=Actor.system(),
        )
        db.session.add(Contact(name="C", email="c@acme.test", user=user))
        db.session.commit()
        assert vault_links.link_url(link).startswith("http://localhost:5102/v/")
        request_sign_in_link("c@acme.test", "127.0.0.1")
        db.session.commit()
    run_jobs(app)  # sign-in mails are written by a job on the mail queue
    (mail,) = (Path(app.instance_path) / "outbox").iterdir()
    with mail.open("rb") as handle:
        text = BytesParser(policy=policy.default).parse(handle).get_body(("plain",)).get_content()
    assert set(URL.findall(text)) == {"http://localhost:5102"}, text


def _vaultdesk(instance: Path, redis_url: str, bind: str, *args: str) -> str:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"VAULTDESK_BASE_URL", "VAULTDESK_DATABASE_URL"}
    }
    env.update(
        VAULTDESK_INSTANCE_PATH=str(instance), VAULTDESK_REDIS_URL=redis_url, VAULTDESK_BIND=bind
    )
    done = subprocess.run(
        [str(Path(sys.executable).with_name("vaultdesk")), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_demo_data_prints_sign_ins_on_the_bound_port(
    tmp_path: Path, migrated_template: Path, redis_server: Any
) -> None:
    shutil.copy(migrated_template, tmp_path / "vaultdesk.db")
    printed = _vaultdesk(tmp_path, redis_server.url, "127.0.0.1:5102", "demo-data", "--seed", "7")
    urls = [ln.split()[-1] for ln in printed.splitlines() if "@" in ln and "http" in ln]
    assert len(urls) == 18
    assert {u.rsplit("/", 1)[0] for u in urls} <= {
        "http://localhost:5102",
        "http://localhost:5102/portal",
    }
    saved = (tmp_path / "demo-accounts.txt").read_text()
    assert saved.count("http://localhost:5102/") == 18 and "5000" not in saved

    # Started again on another port, the saved sign-ins move with it (passwords kept).
    again = _vaultdesk(tmp_path, redis_server.url, "127.0.0.1:5103", "demo-data", "--if-empty")
    assert "http://localhost:5103/login" in again and "http://localhost:5103/portal/login" in again
    moved = (tmp_path / "demo-accounts.txt").read_text()
    assert moved.replace("5103", "5102") == saved
