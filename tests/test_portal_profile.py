"""The customer's profile: name, language, time zone, password, and a data-copy request."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from app.extensions import db
from app.models import AuditLog, Role, Ticket, User
from tests.conftest import Person, csrf_from, sign_in


def test_profile_changes_name_language_and_zone(app: Any, client: Any, make_user: Any) -> None:
    customer = make_user(Role.CUSTOMER)
    sign_in(client, customer, portal=True)
    page = client.get("/portal/profile").get_data(as_text=True)
    response = client.post(
        "/portal/profile",
        data={
            "csrf_token": csrf_from(page),
            "name": "  Ana   Lima ",
            "language": "de",
            "timezone": "Europe/Lisbon",
        },
    )
    assert response.status_code == 303
    with app.app_context():
        user = db.session.get(User, customer.id)
        assert (user.name, user.language, user.timezone) == ("Ana Lima", "de", "Europe/Lisbon")
        assert user.contact.name == "Ana Lima"
    german = client.get("/portal/profile").get_data(as_text=True)
    assert '<html lang="de">' in german
    bad = client.post(
        "/portal/profile",
        data={
            "csrf_token": csrf_from(page),
            "name": "A",
            "language": "de",
            "timezone": "Mars/Olympus",
        },
    )
    assert bad.status_code == 422


def test_password_change_needs_the_current_one_and_ends_other_sessions(
    app: Any, make_user: Any
) -> None:
    customer = make_user(Role.CUSTOMER)
    phone, laptop = app.test_client(), app.test_client()
    sign_in(phone, customer, portal=True)
    sign_in(laptop, customer, portal=True)
    token = csrf_from(laptop.get("/portal/profile").get_data(as_text=True))
    wrong = laptop.post(
        "/portal/profile/password",
        data={
            "csrf_token": token,
            "current": "nope",
            "new": "a new long password",
            "repeat": "a new long password",
        },
    )
    assert wrong.status_code == 403
    mismatch = laptop.post(
        "/portal/profile/password",
        data={
            "csrf_token": token,
            "current": customer.password,
            "new": "a new long password",
            "repeat": "other",
        },
    )
    assert mismatch.status_code == 422
    done = laptop.post(
        "/portal/profile/password",
        data={
            "csrf_token": token,
            "current": customer.password,
            "new": "a new long password",
            "repeat": "a new long password",
        },
    )
    assert done.status_code == 303
    assert laptop.get("/portal/profile").status_code == 200  # this device stays signed in
    assert phone.get("/portal/profile").status_code == 302  # the other one is signed out
    fresh = app.test_client()
    assert sign_in(fresh, customer, portal=True).status_code == 401
    renewed = Person(customer.id, customer.email, "a new long password")
    assert sign_in(fresh, renewed, portal=True).status_code == 302


def test_data_copy_request_becomes_a_ticket_in_the_inbox(
    app: Any, client: Any, make_user: Any
) -> None:
    customer = make_user(Role.CUSTOMER)
    sign_in(client, customer, portal=True)
    token = csrf_from(client.get("/portal/profile").get_data(as_text=True))
    response = client.post("/portal/profile/data-copy", data={"csrf_token": token})
    assert response.status_code == 303
    with app.app_context():
        ticket = db.session.scalar(select(Ticket))
        assert (
            "GDPR Art. 15" in ticket.subject
            and ticket.in_inbox
            and ticket.contact_id == customer.contact_id
        )
        assert [t.name for t in ticket.tags] == ["gdpr"]
    assert ticket.number in client.get("/portal/profile").get_data(as_text=True)


def test_language_switch_before_and_after_sign_in(app: Any, client: Any, make_user: Any) -> None:
    page = client.get("/portal/login").get_data(as_text=True)
    assert '<html lang="en">' in page
    response = client.post(
        "/language", data={"csrf_token": csrf_from(page), "language": "de", "next": "/portal/login"}
    )
    assert response.status_code == 303 and response.headers["Location"] == "/portal/login"
    assert '<html lang="de">' in client.get("/portal/login").get_data(as_text=True)
    assert (
        client.post(
            "/language",
            data={"csrf_token": csrf_from(page), "language": "xx", "next": "https://evil.example/"},
        ).headers["Location"]
        == "/"
    )
    customer = make_user(Role.CUSTOMER)
    sign_in(client, customer, portal=True)
    token = csrf_from(client.get("/portal/profile").get_data(as_text=True))
    client.post("/language", data={"csrf_token": token, "language": "en"})
    with app.app_context():
        assert db.session.get(User, customer.id).language == "en"
    browser_german = app.test_client()
    assert '<html lang="de">' in browser_german.get(
        "/portal/login", headers={"Accept-Language": "de-DE,de;q=0.9"}
    ).get_data(as_text=True)


def test_staff_cannot_use_the_portal_profile(app: Any, client: Any, make_user: Any) -> None:
    sign_in(client, make_user(Role.AGENT))
    assert client.get("/portal/profile").status_code == 403
    with app.app_context():
        assert db.session.scalar(select(AuditLog).where(AuditLog.action == "user.profile")) is None
