"""Shared fixtures: a migrated database per test, a real Redis, users of every role."""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app import create_app
from app.accounts.people import create_user
from app.actor import Actor
from app.extensions import db
from app.models.people import Account, Contact, Role

pytest_plugins = ["tests.services", "tests.browser"]

PASSWORD = "correct horse battery"


def base_config(instance: Path, redis_url: str, database_url: str | None = None) -> dict[str, Any]:
    return {
        "TESTING": True,
        "INSTANCE_PATH": str(instance),
        "DATABASE_URL": database_url or f"sqlite:///{instance / 'vaultdesk.db'}",
        "REDIS_URL": redis_url,
        "SECRET_KEY": "test-secret-key-not-for-production",
        # Production requires a second factor of admins and compliance officers; tests that
        # are not about it sign them in with the password alone (tests/test_two_factor.py
        # turns the default back on).
        "TWO_FACTOR_REQUIRED_ROLES": "",
    }


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory: pytest.TempPathFactory, redis_server: Any) -> Path:
    """One SQLite file upgraded through every revision; each test gets a copy."""
    from flask_migrate import upgrade

    folder = tmp_path_factory.mktemp("template")
    app = create_app(base_config(folder, redis_server.url))
    with app.app_context():
        upgrade()
        db.engine.dispose()
    return folder / "vaultdesk.db"


@pytest.fixture
def app(tmp_path: Path, migrated_template: Path, redis_server: Any) -> Iterator[Flask]:
    instance = tmp_path / "instance"
    instance.mkdir()
    shutil.copy(migrated_template, instance / "vaultdesk.db")
    redis_server.client().flushall()
    application = create_app(base_config(instance, redis_server.url))
    yield application
    with application.app_context():
        db.engine.dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def ctx(app: Flask) -> Iterator[None]:
    """An app context for domain tests (HTTP tests must not hold one across requests)."""
    with app.app_context():
        yield
        db.session.rollback()


@dataclass(frozen=True)
class Person:
    id: int
    email: str
    password: str
    contact_id: int | None = None
    account_id: int | None = None


@pytest.fixture
def make_user(app: Flask) -> Callable[..., Person]:
    """Create a committed user with roles; customers get a contact (and account)."""
    counter = iter(range(1, 10_000))

    def factory(*roles: Role, email: str | None = None, account: str | None = None) -> Person:
        n = next(counter)
        email = email or f"{'-'.join(r.value for r in roles)}{n}@example.org"
        with app.app_context():
            user = create_user(
                email=email, roles=list(roles), password=PASSWORD, actor=Actor.system()
            )
            contact_id = account_id = None
            if Role.CUSTOMER in roles:
                acct = Account(name=account or f"Customer {n} GmbH")
                contact = Contact(name=user.name, email=email, account=acct, user=user)
                db.session.add_all([acct, contact])
                db.session.flush()
                contact_id, account_id = contact.id, acct.id
            db.session.commit()
            return Person(user.id, email, PASSWORD, contact_id, account_id)

    return factory


def run_jobs(app: Flask) -> None:
    """Work every queued job now, as ``vaultdesk worker --burst`` would (forked, real RQ)."""
    from app.jobs.worker import run_worker

    run_worker(app, burst=True)


CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)"')
CSRF_INPUT = re.compile(
    r'name="csrf_token" type="hidden" value="([^"]+)"|'
    r'type="hidden" name="csrf_token" value="([^"]+)"|'
    r'name="csrf_token" value="([^"]+)"'
)


def csrf_from(html: str) -> str:
    match = CSRF_META.search(html) or CSRF_INPUT.search(html)
    assert match, "no CSRF token on the page"
    return next(g for g in match.groups() if g)


def sign_in(
    client: FlaskClient, person: Person, *, portal: bool = False, password: str | None = None
):
    url = "/portal/login" if portal else "/login"
    token = csrf_from(client.get(url).get_data(as_text=True))
    return client.post(
        url,
        data={"email": person.email, "password": password or person.password, "csrf_token": token},
    )


@pytest.fixture
def login(client: FlaskClient) -> Callable[..., Any]:
    """Sign ``person`` in through the real form; returns the response."""

    def do(person: Person, *, portal: bool = False) -> Any:
        response = sign_in(client, person, portal=portal)
        assert response.status_code == 302, response.get_data(as_text=True)[:500]
        return response

    return do
