"""Sign-in, role boundaries, CSRF, rate limits and session hygiene, over real HTTP."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import AuditLog, Role, User
from tests.conftest import csrf_from, sign_in

AREAS = {
    "/agent/": {Role.AGENT, Role.SUPERVISOR},
    "/compliance/": {Role.COMPLIANCE},
    "/admin/": {Role.ADMIN},
    "/portal/": {Role.CUSTOMER},
}
HOMES = {
    Role.AGENT: "/agent/",
    Role.SUPERVISOR: "/agent/",
    Role.COMPLIANCE: "/compliance/",
    Role.ADMIN: "/admin/",
    Role.CUSTOMER: "/portal/",
}


@pytest.mark.parametrize("role", list(Role))
def test_each_role_lands_on_its_home(role: Role, make_user: Any, client: Any) -> None:
    person = make_user(role)
    response = sign_in(client, person, portal=role is Role.CUSTOMER)
    assert response.status_code == 302
    assert response.headers["Location"] == HOMES[role]
    page = client.get(HOMES[role])
    assert page.status_code == 200
    assert "· Vaultdesk</title>" in page.get_data(as_text=True)


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize("area", list(AREAS))
def test_role_boundaries(role: Role, area: str, make_user: Any, client: Any) -> None:
    sign_in(client, make_user(role), portal=role is Role.CUSTOMER)
    response = client.get(area)
    if role in AREAS[area]:
        assert response.status_code == 200
    else:
        assert response.status_code == 403
        assert "Not for your role" in response.get_data(as_text=True)


@pytest.mark.parametrize("area", list(AREAS))
def test_anonymous_visitors_are_sent_to_the_right_sign_in(area: str, client: Any) -> None:
    response = client.get(area)
    assert response.status_code == 302
    expected = "/portal/login" if area.startswith("/portal") else "/login"
    assert response.headers["Location"].startswith(expected + "?next=")
    htmx = client.get(area, headers={"HX-Request": "true"})
    assert htmx.status_code == 401 and htmx.headers["HX-Redirect"].startswith(expected)


def test_a_user_with_two_roles_reaches_both_areas(make_user: Any, client: Any) -> None:
    sign_in(client, make_user(Role.AGENT, Role.COMPLIANCE))
    assert client.get("/agent/").status_code == 200
    assert client.get("/compliance/").status_code == 200
    assert client.get("/admin/").status_code == 403


def test_customers_cannot_use_the_staff_door_nor_staff_the_portal(
    make_user: Any, client: Any
) -> None:
    customer, agent = make_user(Role.CUSTOMER), make_user(Role.AGENT)
    refused = sign_in(client, customer)
    assert refused.status_code == 401
    assert "Wrong email address or password." in refused.get_data(as_text=True)
    assert sign_in(client, agent, portal=True).status_code == 401
    assert client.get("/agent/").status_code == 302  # still signed out


def test_wrong_password_and_unknown_address_look_the_same(
    make_user: Any, client: Any, app: Any
) -> None:
    agent = make_user(Role.AGENT)
    wrong = sign_in(client, agent, password="not the password")
    from tests.conftest import Person

    unknown = sign_in(client, Person(0, "nobody@example.org", "whatever password"))
    assert wrong.status_code == unknown.status_code == 401
    assert "Wrong email address or password." in unknown.get_data(as_text=True)
    with app.app_context():
        reasons = db.session.scalars(
            select(AuditLog.details).where(AuditLog.action == "auth.login_failed")
        ).all()
    assert sorted(r["reason"] for r in reasons) == ["unknown address", "wrong password"]


def test_successful_sign_in_is_audited_with_a_truncated_address(make_user: Any, app: Any) -> None:
    agent = make_user(Role.AGENT)
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = "203.0.113.77"
    sign_in(client, agent)
    with app.app_context():
        row = db.session.scalar(select(AuditLog).where(AuditLog.action == "auth.login"))
        assert row.actor_id == agent.id and row.client_address == "203.0.113.0/24"
        assert db.session.get(User, agent.id).last_login_at is not None


def test_deactivated_users_cannot_sign_in_and_lose_their_session(
    make_user: Any, client: Any, app: Any
) -> None:
    agent = make_user(Role.AGENT)
    sign_in(client, agent)
    assert client.get("/agent/").status_code == 200
    with app.app_context():
        db.session.get(User, agent.id).active = False
        db.session.commit()
    assert client.get("/agent/").status_code == 302
    assert sign_in(client, agent).status_code == 401


def test_password_change_ends_other_sessions(make_user: Any, app: Any) -> None:
    agent = make_user(Role.AGENT)
    laptop, phone = app.test_client(), app.test_client()
    sign_in(laptop, agent)
    sign_in(phone, agent)
    with app.app_context():
        db.session.get(User, agent.id).set_password("a brand new password")
        db.session.commit()
    assert laptop.get("/agent/").status_code == 302
    assert phone.get("/agent/").status_code == 302


def test_next_parameter_cannot_redirect_off_site(make_user: Any, client: Any) -> None:
    agent = make_user(Role.AGENT)
    for target in ("https://evil.example/", "//evil.example", "/\\evil.example"):
        token = csrf_from(client.get("/login").get_data(as_text=True))
        response = client.post(
            "/login?next=" + target,
            data={"email": agent.email, "password": agent.password, "csrf_token": token},
        )
        assert response.headers["Location"] == "/agent/"
        client.post(
            "/logout",
            headers={"X-CSRFToken": csrf_from(client.get("/agent/").get_data(as_text=True))},
        )
    token = csrf_from(client.get("/login").get_data(as_text=True))
    response = client.post(
        "/login?next=/admin/",
        data={"email": agent.email, "password": agent.password, "csrf_token": token},
    )
    assert response.headers["Location"] == "/admin/"


def test_sign_in_without_csrf_token_is_refused(make_user: Any, client: Any) -> None:
    agent = make_user(Role.AGENT)
    response = client.post("/login", data={"email": agent.email, "password": agent.password})
    assert response.status_code == 400
    assert "The form has expired" in response.get_data(as_text=True)
    assert client.get("/agent/").status_code == 302


def test_htmx_posts_need_the_csrf_header(make_user: Any, client: Any) -> None:
    agent = make_user(Role.AGENT)
    sign_in(client, agent)
    page = client.get("/agent/").get_data(as_text=True)
    refused = client.post("/logout", headers={"HX-Request": "true"})
    assert refused.status_code == 400 and refused.headers["HX-Retarget"] == "#flash"
    assert client.get("/agent/").status_code == 200  # still signed in
    forged = client.post("/logout", headers={"HX-Request": "true", "X-CSRFToken": "forged"})
    assert forged.status_code == 400
    accepted = client.post(
        "/logout", headers={"HX-Request": "true", "X-CSRFToken": csrf_from(page)}
    )
    # htmx is never handed a redirect to follow inside its request (see app.htmx).
    assert accepted.status_code == 204 and accepted.headers["HX-Redirect"] == "/login"
    assert client.get("/agent/").status_code == 302


def test_session_cookie_flags(make_user: Any, client: Any) -> None:
    response = sign_in(client, make_user(Role.AGENT))
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie


def test_cookies_are_secure_behind_https(
    redis_server: Any, tmp_path: Any, migrated_template: Any
) -> None:
    import shutil

    from app import create_app
    from tests.conftest import PASSWORD, Person, base_config

    shutil.copy(migrated_template, tmp_path / "vaultdesk.db")
    app = create_app(
        {**base_config(tmp_path, redis_server.url), "BASE_URL": "https://desk.example"}
    )
    assert app.config["SESSION_COOKIE_SECURE"] and app.config["REMEMBER_COOKIE_SECURE"]
    from app.accounts.people import create_user
    from app.actor import Actor

    with app.app_context():
        user = create_user(
            email="s@x.test", roles=[Role.AGENT], password=PASSWORD, actor=Actor.system()
        )
        db.session.commit()
        person = Person(user.id, user.email, PASSWORD)
    response = sign_in(app.test_client(), person)
    assert "Secure" in response.headers["Set-Cookie"]
    with app.app_context():
        db.engine.dispose()


def test_failed_sign_ins_are_limited_per_account(make_user: Any, app: Any) -> None:
    app.config["LOGIN_LIMIT_PER_ACCOUNT"] = "3 per minute"
    agent = make_user(Role.AGENT)
    for n in range(3):
        attacker = app.test_client()
        attacker.environ_base["REMOTE_ADDR"] = f"198.51.100.{n + 1}"  # a new address each time
        assert sign_in(attacker, agent, password="guess").status_code == 401
    late = app.test_client()
    late.environ_base["REMOTE_ADDR"] = "198.51.100.99"
    blocked = sign_in(late, agent)  # even the right password waits now
    assert blocked.status_code == 429
    assert "Too many failed sign-ins" in blocked.get_data(as_text=True)
    other = make_user(Role.AGENT)
    assert sign_in(late, other).status_code == 302  # other accounts are unaffected


def test_failed_sign_ins_are_limited_per_address(make_user: Any, app: Any) -> None:
    app.config["LOGIN_LIMIT_PER_ADDRESS"] = "4 per minute"
    from tests.conftest import Person

    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = "192.0.2.10"
    for n in range(4):
        assert sign_in(client, Person(0, f"guess{n}@example.org", "x" * 12)).status_code == 401
    agent = make_user(Role.AGENT)
    assert sign_in(client, agent).status_code == 429
    elsewhere = app.test_client()
    elsewhere.environ_base["REMOTE_ADDR"] = "192.0.2.11"
    assert sign_in(elsewhere, agent).status_code == 302


def test_successful_sign_ins_do_not_count(make_user: Any, app: Any) -> None:
    app.config["LOGIN_LIMIT_PER_ACCOUNT"] = "2 per minute"
    app.config["LOGIN_LIMIT_PER_ADDRESS"] = "2 per minute"
    agent = make_user(Role.AGENT)
    for _ in range(5):
        assert sign_in(app.test_client(), agent).status_code == 302


def test_logout_is_audited_and_ends_the_session(make_user: Any, client: Any, app: Any) -> None:
    agent = make_user(Role.AGENT)
    sign_in(client, agent)
    token = csrf_from(client.get("/agent/").get_data(as_text=True))
    assert client.post("/logout", data={"csrf_token": token}).headers["Location"] == "/login"
    assert client.get("/agent/").status_code == 302
    with app.app_context():
        assert db.session.scalar(select(AuditLog).where(AuditLog.action == "auth.logout"))


def test_inbox_pages_through_htmx_fragments(make_user: Any, client: Any, app: Any) -> None:
    from tests import factories

    with app.app_context():
        for n in range(53):
            factories.ticket(f"Inbox ticket {n}")
        db.session.commit()
    sign_in(client, make_user(Role.AGENT))
    fragment = client.get("/agent/?page=2", headers={"HX-Request": "true"})
    html = fragment.get_data(as_text=True)
    assert fragment.status_code == 200 and "<html" not in html
    assert 'id="ticket-list"' in html and "Page 2 of 2" in html and html.count("<tr") == 4
    assert "HX-Request" in fragment.headers["Vary"]
    assert "<html" in client.get("/agent/?page=2").get_data(as_text=True)
