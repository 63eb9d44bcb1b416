"""Rules that several parts of the desk share, each written once: public URLs, paging,
email addresses, time zones and the state of a vault link."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask import Flask
from sqlalchemy import select

from app import create_app
from app.accounts import emailed_links
from app.actor import Actor
from app.errors import InvalidInput
from app.extensions import db
from app.files import vault_links
from app.files.store import erase_file, store_upload
from app.i18n import parse_local_datetime, zone
from app.mail.addresses import is_address, normalise_address
from app.models import AuditLog, Role, VaultLink
from app.models.files import VaultLinkState
from app.models.types import utcnow
from app.pagination import clamp_page, paginate
from app.urls import public_url
from tests import factories
from tests.conftest import base_config


@pytest.mark.parametrize("base", ["https://desk.example/help", "https://desk.example/help/"])
def test_every_public_url_keeps_the_proxy_prefix(
    tmp_path: Any, migrated_template: Any, redis_server: Any, base: str
) -> None:
    """Behind a proxy that mounts the desk under /help, mails must point under /help."""
    import shutil

    instance = tmp_path / "instance"
    instance.mkdir()
    shutil.copy(migrated_template, instance / "vaultdesk.db")
    app = create_app({**base_config(instance, redis_server.url), "BASE_URL": base})
    with app.app_context():
        customer = factories.contact()
        from app.accounts.people import create_user

        user = create_user(email=customer.email, roles=[Role.CUSTOMER], password=None)
        agent = factories.staff_user(Role.AGENT)
        file = store_upload(io.BytesIO(b"x"), "a.txt", Actor.staff(agent))
        link = vault_links.issue_link(file, Actor.staff(agent))
        file_url = urlsplit(vault_links.link_url(link))
        sign_in = urlsplit(
            public_url("portal.sign_in_with_link", token=emailed_links.sign_in_token(user))
        )
        db.session.rollback()
        db.engine.dispose()
    for url in (file_url, sign_in):
        assert url.scheme == "https" and url.netloc == "desk.example"
        assert url.path.startswith("/help/") and "//" not in url.path


def test_a_page_number_from_a_url_never_overflows(app: Flask) -> None:
    with app.app_context():
        for n in range(7):
            factories.ticket(subject=f"Ticket {n}")
        db.session.commit()
        stmt = select(AuditLog).order_by(AuditLog.id)
        last = paginate(stmt, 2**70, 3)
        assert (last.page, last.pages, last.total) == (3, 3, 7)
        assert len(last.rows) == 1
        assert paginate(stmt, -5, 3).page == 1
        assert clamp_page(10, 0, 50) == 1  # an empty list still has its one page


@pytest.mark.parametrize(
    "text", ["Nora@Example.TEST", " nora.k+desk@mail.example.org ", "x@a-b.example.de"]
)
def test_addresses_are_accepted_and_lowered(text: str) -> None:
    assert normalise_address(text) == text.strip().lower()
    assert is_address(text)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "nora",
        "nora@",
        "@example.test",
        "a@b",
        "a b@example.test",
        "a@@example.test",
        "a..b@example.test",
        "x@y.test\r\nBcc: evil@z.test",
        "<a@example.test>",
        "a" * 250 + "@example.test",
    ],
)
def test_what_is_not_an_address_is_refused_with_a_sentence(text: str) -> None:
    assert not is_address(text)
    with pytest.raises(InvalidInput):
        normalise_address(text)


def test_one_address_rule_for_users_links_and_identities(app: Flask) -> None:
    """The same bad address is refused by every domain function that takes one."""
    from app.accounts.people import create_user
    from app.mail.identities import save_identity

    with app.app_context():
        agent = factories.staff_user(Role.AGENT)
        file = store_upload(io.BytesIO(b"x"), "a.txt", Actor.staff(agent))
        bad = "nora@example"
        with pytest.raises(InvalidInput, match="not an email address"):
            create_user(email=bad, roles=[Role.CUSTOMER], password=None)
        with pytest.raises(InvalidInput, match="not an email address"):
            vault_links.issue_link(file, Actor.staff(agent), recipient_email=bad)
        with pytest.raises(InvalidInput, match="not an email address"):
            save_identity(Actor.staff(agent), address=bad, name="Support")
        db.session.rollback()


def test_time_zones_fall_back_instead_of_failing(app: Flask) -> None:
    with app.app_context():
        assert zone("Mars/Olympus_Mons").key == app.config["TIMEZONE"]
        assert zone("Asia/Tokyo").key == "Asia/Tokyo"
        summer = parse_local_datetime("2026-07-01T09:00", "Europe/Berlin")
        winter = parse_local_datetime("2026-01-01T09:00", "Europe/Berlin")
        assert summer == datetime(2026, 7, 1, 7, 0, tzinfo=UTC)
        assert winter == datetime(2026, 1, 1, 8, 0, tzinfo=UTC)
        assert parse_local_datetime("  ", "UTC") is None
        # Not a date, an impossible one, and one that leaves the calendar in UTC.
        for garbage, name in (
            ("next tuesday", "UTC"),
            ("9999-99-99T99:99", "UTC"),
            ("9999-12-31T23:00", "Pacific/Honolulu"),
        ):
            with pytest.raises(InvalidInput):
                parse_local_datetime(garbage, name)


def test_link_state_is_one_rule_in_python_and_sql(app: Flask) -> None:
    """Every state a link can be in reads the same on the row and in a WHERE clause."""
    with app.app_context():
        agent = factories.staff_user(Role.AGENT)
        actor = Actor.staff(agent)
        now = utcnow()

        def link(**changes: Any) -> VaultLink:
            file = store_upload(io.BytesIO(b"x"), "a.txt", actor)
            made = vault_links.issue_link(file, actor, max_downloads=changes.pop("limit", None))
            for name, value in changes.items():
                setattr(made, name, value)
            return made

        links = {
            VaultLinkState.ACTIVE: link(),
            VaultLinkState.EXPIRED: link(expires_at=now - timedelta(seconds=1)),
            VaultLinkState.REVOKED: link(revoked_at=now, expires_at=now - timedelta(days=1)),
            VaultLinkState.EXHAUSTED: link(limit=1, download_count=1),
        }
        erased = link(revoked_at=now)
        erase_file(erased.file, actor, "test")
        links[VaultLinkState.ERASED] = erased
        db.session.flush()
        for state, row in links.items():
            assert row.state(now) is state
            in_sql = db.session.scalar(select(VaultLink.state(now)).where(VaultLink.id == row.id))
            assert in_sql == state.value
        db.session.rollback()
