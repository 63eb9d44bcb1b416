"""Admin screens for people: invitations, roles, teams, deactivation, resets, lists."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from app.accounts import staff_links
from app.accounts.emailed_links import SetPasswordKind
from app.extensions import db
from app.models import AuditLog, Role, User
from app.models.people import Contact
from tests.conftest import Person, csrf_from, run_jobs, sign_in

WELCOME = re.compile(r"https?://\S+/admin/welcome/\S+")
PORTAL_LINK = re.compile(r"https?://\S+/portal/reset/\S+")
NEW_PASSWORD = "a brand new passphrase"


@pytest.fixture
def smtp(app: Flask, smtp_sink: Any) -> Iterator[Any]:
    app.config["SMTP_URL"] = f"smtp://{smtp_sink.host}:{smtp_sink.port}"
    yield smtp_sink
    app.config.pop("SMTP_URL", None)


@pytest.fixture
def admin(make_user: Any) -> Person:
    return make_user(Role.ADMIN)


def signed_in(app: Flask, person: Person) -> FlaskClient:
    client = app.test_client()
    assert sign_in(client, person).status_code == 302
    return client


def post(
    client: FlaskClient, path: str, data: dict[str, Any] | None = None, page: str = "/admin/"
) -> Any:
    token = csrf_from(client.get(page).get_data(as_text=True))
    return client.post(path, data={**(data or {}), "csrf_token": token})


def audit(app: Flask, action: str) -> list[AuditLog]:
    with app.app_context():
        return list(db.session.scalars(select(AuditLog).where(AuditLog.action == action)))


def user_by_email(app: Flask, email: str) -> User:
    with app.app_context():
        user = db.session.scalar(select(User).where(User.email == email))
        assert user is not None
        db.session.expunge(user)
        return user


def path_of(pattern: re.Pattern[str], text: str) -> str:
    (found,) = pattern.findall(text)
    return urlsplit(found).path


def test_admin_invites_an_agent_who_chooses_a_password_and_lands_in_the_inbox(
    app: Flask, admin: Person, smtp: Any
) -> None:
    client = signed_in(app, admin)
    created = post(
        client,
        "/admin/users/new",
        {"kind": "staff", "name": "Ada Agent", "email": "Ada@Desk.test", "roles": ["agent"]},
        "/admin/users/new",
    )
    assert created.status_code == 303
    page = client.get(created.headers["Location"]).get_data(as_text=True)
    assert "Ada Agent is invited" in page and "Invited: has not chosen a password yet." in page
    assert smtp.messages == []  # the page did not wait for the mail server
    run_jobs(app)
    (mail,) = smtp.wait_for(1)
    assert mail.rcpt_tos == ("ada@desk.test",)
    text = mail.message.get_body(("plain",)).get_content()
    assert "created an account for you" in text and "7 days" in text
    path = path_of(WELCOME, text)

    newcomer = app.test_client()
    form = newcomer.get(path)
    assert form.status_code == 200 and "Welcome, Ada Agent" in form.get_data(as_text=True)
    assert form.headers["Cache-Control"] == "no-store"
    token = csrf_from(form.get_data(as_text=True))
    short = newcomer.post(path, data={"password": "short", "repeat": "short", "csrf_token": token})
    assert short.status_code == 422 and "at least 10 characters" in short.get_data(as_text=True)
    done = newcomer.post(
        path, data={"password": NEW_PASSWORD, "repeat": NEW_PASSWORD, "csrf_token": token}
    )
    assert done.status_code == 303 and done.headers["Location"] == "/agent/"
    assert newcomer.get("/agent/").status_code == 200
    # The link is spent, and the password works at the door.
    again = app.test_client().get(path)
    assert again.status_code == 410 and "used already" in again.get_data(as_text=True)
    assert sign_in(app.test_client(), Person(0, "ada@desk.test", NEW_PASSWORD)).status_code == 302
    (invite,) = audit(app, "user.invite")
    assert invite.actor_label == admin.email
    assert [r.details["via"] for r in audit(app, "auth.password_set")] == ["staff invite"]


def test_an_invited_admin_signs_in_at_the_door_after_choosing_a_password(
    app: Flask, admin: Person
) -> None:
    """Admins and compliance officers go through the sign-in page (its second factor)."""
    with app.app_context():
        from app.accounts.admin_users import invite_staff
        from app.actor import Actor

        inviter = db.session.get(User, admin.id)
        user = invite_staff(
            Actor.staff(inviter), email="boss@desk.test", name="Boss", roles=[Role.ADMIN], team=None
        )
        token = staff_links.token_for(user, SetPasswordKind.INVITE)
        db.session.commit()
    client = app.test_client()
    path = f"/admin/welcome/{token}"
    csrf = csrf_from(client.get(path).get_data(as_text=True))
    done = client.post(
        path, data={"password": NEW_PASSWORD, "repeat": NEW_PASSWORD, "csrf_token": csrf}
    )
    assert done.status_code == 303 and done.headers["Location"] == "/login"
    assert client.get("/admin/").status_code == 302  # not signed in by the link


def test_staff_links_refuse_customers_tampering_and_portal_links_refuse_staff(
    app: Flask, make_user: Any
) -> None:
    customer = make_user(Role.CUSTOMER)
    agent = make_user(Role.AGENT)
    with app.app_context():
        from app.accounts import emailed_links

        as_customer = staff_links.token_for(
            db.session.get(User, customer.id), SetPasswordKind.INVITE
        )
        as_agent = staff_links.token_for(db.session.get(User, agent.id), SetPasswordKind.RESET)
        portal_for_agent = emailed_links.set_password_token(
            db.session.get(User, agent.id), SetPasswordKind.RESET
        )
    client = app.test_client()
    assert client.get(f"/admin/welcome/{as_customer}").status_code == 404
    assert client.get(f"/admin/welcome/{as_agent[:-2]}xx").status_code == 404
    assert client.get(f"/admin/welcome/{portal_for_agent}").status_code == 404  # other salt
    assert client.get(f"/portal/reset/{as_agent}").status_code == 404
    assert client.get(f"/admin/welcome/{as_agent}").status_code == 200


def test_people_who_are_not_admins_cannot_use_the_admin_screens(app: Flask, make_user: Any) -> None:
    agent = make_user(Role.AGENT, Role.SUPERVISOR)
    victim = make_user(Role.AGENT)
    client = signed_in(app, agent)
    token = csrf_from(client.get("/agent/").get_data(as_text=True))
    assert client.get("/admin/users").status_code == 403
    for path, data in (
        (f"/admin/users/{agent.id}/roles", {"roles": ["admin"]}),
        (f"/admin/users/{victim.id}/deactivate", {}),
        (
            "/admin/users/new",
            {"kind": "staff", "name": "X", "email": "x@desk.test", "roles": ["admin"]},
        ),
    ):
        assert client.post(path, data={**data, "csrf_token": token}).status_code == 403
    with app.app_context():
        assert db.session.get(User, agent.id).roles == {Role.AGENT, Role.SUPERVISOR}
        assert db.session.get(User, victim.id).active
    assert app.test_client().get("/admin/users").status_code == 302  # anonymous: sign in


def test_the_last_admin_cannot_demote_or_deactivate_themselves(
    app: Flask, admin: Person, make_user: Any
) -> None:
    client = signed_in(app, admin)
    demoted = post(client, f"/admin/users/{admin.id}/roles", {"roles": ["agent"]})
    assert demoted.status_code == 409
    assert "the only active admin" in demoted.get_data(as_text=True)
    off = post(client, f"/admin/users/{admin.id}/deactivate")
    assert off.status_code == 409
    with app.app_context():
        me = db.session.get(User, admin.id)
        assert me.active and me.roles == {Role.ADMIN}
    # With a second active admin, the first may step down.
    other = make_user(Role.ADMIN)
    assert post(client, f"/admin/users/{admin.id}/roles", {"roles": ["agent"]}).status_code == 303
    with app.app_context():
        assert db.session.get(User, admin.id).roles == {Role.AGENT}
    # ...and the other, now the only one, cannot be deactivated by anyone.
    other_client = signed_in(app, other)
    assert post(other_client, f"/admin/users/{other.id}/deactivate").status_code == 409
    (change,) = audit(app, "user.roles")
    assert change.actor_label == admin.email
    assert change.details == {"before": ["admin"], "after": ["agent"]}


def test_deactivating_ends_the_sessions_at_once_and_reactivating_allows_sign_in(
    app: Flask, admin: Person, make_user: Any
) -> None:
    agent = make_user(Role.AGENT)
    agent_client = signed_in(app, agent)
    assert agent_client.get("/agent/").status_code == 200
    client = signed_in(app, admin)
    done = post(client, f"/admin/users/{agent.id}/deactivate")
    assert done.status_code == 303
    assert "signed out everywhere" in client.get(done.headers["Location"]).get_data(as_text=True)
    assert agent_client.get("/agent/").status_code == 302  # the open session is gone
    assert sign_in(app.test_client(), agent).status_code == 401
    assert post(client, f"/admin/users/{agent.id}/reactivate").status_code == 303
    assert sign_in(app.test_client(), agent).status_code == 302
    assert [r.actor_label for r in audit(app, "user.deactivate")] == [admin.email]
    assert [r.actor_label for r in audit(app, "user.reactivate")] == [admin.email]


def test_password_reset_mails_staff_a_staff_link_and_customers_the_portal_link(
    app: Flask, admin: Person, make_user: Any, smtp: Any
) -> None:
    agent = make_user(Role.AGENT)
    customer = make_user(Role.CUSTOMER)
    client = signed_in(app, admin)
    assert post(client, f"/admin/users/{agent.id}/password-reset").status_code == 303
    assert post(client, f"/admin/users/{customer.id}/password-reset").status_code == 303
    run_jobs(app)
    mails = {m.rcpt_tos[0]: m.message.get_body(("plain",)).get_content() for m in smtp.wait_for(2)}
    staff_path = path_of(WELCOME, mails[agent.email])
    assert "60 minutes" in mails[agent.email]
    assert PORTAL_LINK.search(mails[customer.email])
    # The old password works until the new one is chosen; then only the new one.
    assert sign_in(app.test_client(), agent).status_code == 302
    newcomer = app.test_client()
    token = csrf_from(newcomer.get(staff_path).get_data(as_text=True))
    done = newcomer.post(
        staff_path, data={"password": NEW_PASSWORD, "repeat": NEW_PASSWORD, "csrf_token": token}
    )
    # A reset never signs in by itself: the sign-in page asks for any second factor.
    assert done.status_code == 303 and done.headers["Location"] == "/login"
    assert newcomer.get("/agent/").status_code == 302
    assert sign_in(app.test_client(), agent).status_code == 401
    assert len(audit(app, "user.password_reset_sent")) == 2


def test_staff_and_customers_are_listed_apart_with_search_and_pages(
    app: Flask, admin: Person, make_user: Any
) -> None:
    for _ in range(27):
        make_user(Role.AGENT)
    customer = make_user(Role.CUSTOMER, email="zoe.kunde@example.org")
    client = signed_in(app, admin)
    first = client.get("/admin/users").get_data(as_text=True)
    assert "28 found" in first and "Page 1 of 2" in first
    assert customer.email not in first
    second = client.get("/admin/users?page=2").get_data(as_text=True)
    assert "Page 2 of 2" in second
    customers = client.get("/admin/users?kind=customers").get_data(as_text=True)
    assert customer.email in customers and admin.email not in customers
    found = client.get("/admin/users?kind=customers&q=ZOE").get_data(as_text=True)
    assert "1 found" in found
    fragment = client.get("/admin/users?q=nobody-like-this", headers={"HX-Request": "true"})
    body = fragment.get_data(as_text=True)
    assert not body.lstrip().startswith("<!doctype") and "Nobody matches." in body


def test_an_admin_invites_a_customer_to_the_portal(app: Flask, admin: Person, smtp: Any) -> None:
    client = signed_in(app, admin)
    created = post(
        client,
        "/admin/users/new",
        {
            "kind": "customer",
            "name": "Kim Kunde",
            "email": "kim@kunde.example",
            "account": "Kunde AG",
        },
        "/admin/users/new?kind=customer",
    )
    assert created.status_code == 303
    run_jobs(app)
    (mail,) = smtp.wait_for(1)
    assert "support portal" in mail.message.get_body(("plain",)).get_content()
    with app.app_context():
        contact = db.session.scalar(select(Contact).where(Contact.email == "kim@kunde.example"))
        assert contact.account.name == "Kunde AG"
        assert contact.user.roles == {Role.CUSTOMER}
    # The same address again is refused with the reason, the form kept.
    again = post(
        client,
        "/admin/users/new",
        {"kind": "staff", "name": "Kim", "email": "kim@kunde.example", "roles": ["agent"]},
        "/admin/users/new",
    )
    assert again.status_code == 409 and "exists already" in again.get_data(as_text=True)


def test_roles_and_team_of_a_staff_user(app: Flask, admin: Person, make_user: Any) -> None:
    agent = make_user(Role.AGENT)
    client = signed_in(app, admin)
    created = post(client, "/admin/teams", {"name": "Second Level"}, "/admin/teams")
    team_id = int(created.headers["Location"].rsplit("/", 1)[1])
    assert (
        post(client, f"/admin/users/{agent.id}/team", {"team_id": str(team_id)}).status_code == 303
    )
    assert (
        post(
            client, f"/admin/users/{agent.id}/roles", {"roles": ["agent", "compliance"]}
        ).status_code
        == 303
    )
    refused = post(client, f"/admin/users/{agent.id}/roles", {"roles": ["customer"]})
    assert refused.status_code == 422
    with app.app_context():
        user = db.session.get(User, agent.id)
        assert user.team.name == "Second Level"
        assert user.roles == {Role.AGENT, Role.COMPLIANCE}
    page = client.get(f"/admin/users/{agent.id}").get_data(as_text=True)
    assert "Second Level" in page and "Compliance officer" in page
