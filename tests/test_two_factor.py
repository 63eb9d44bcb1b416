"""Two-factor sign-in for staff: enrolment, codes, replay, recovery codes, limits, reset.

``tests/conftest.py`` sets ``TWO_FACTOR_REQUIRED_ROLES`` to none so other tests sign
admins in with a password; the ``required`` fixture here turns the production default
back on, and the first test checks that it is the default.
"""

from __future__ import annotations

import html
import re
import time
from typing import Any

import pyotp
import pytest
from flask import Flask
from flask.testing import FlaskClient
from flask_login import login_user
from sqlalchemy import select

from app import create_app
from app.accounts import two_factor
from app.extensions import db
from app.models import AuditLog, Role, User
from tests.conftest import Person, base_config, csrf_from, sign_in

SECRET = re.compile(r'<code class="two-factor-secret">([A-Z2-7 ]+)</code>')
RECOVERY = re.compile(r"<li><code>([a-z2-9]{4}-[a-z2-9]{4}-[a-z2-9]{4})</code></li>")


@pytest.fixture
def required(app: Flask) -> Flask:
    app.config["TWO_FACTOR_REQUIRED_ROLES"] = "admin,compliance"
    return app


def actions(app: Flask, user_id: int) -> list[str]:
    with app.app_context():
        return list(
            db.session.scalars(
                select(AuditLog.action)
                .where(AuditLog.object_id == str(user_id))
                .order_by(AuditLog.id)
            )
        )


def post_code(client: FlaskClient, path: str, code: str) -> Any:
    token = csrf_from(client.get(path).get_data(as_text=True))
    return client.post(path, data={"code": code, "csrf_token": token})


def enrol(client: FlaskClient, path: str = "/login/enrol") -> tuple[pyotp.TOTP, list[str]]:
    """Read the key off the enrolment page, answer with the app's code, keep the codes."""
    page = client.get(path)
    assert page.status_code == 200, page.get_data(as_text=True)[:300]
    body = page.get_data(as_text=True)
    assert "<svg" in body  # the QR code
    totp = pyotp.TOTP(SECRET.search(body).group(1).replace(" ", ""))
    done = client.post(path, data={"code": totp.now(), "csrf_token": csrf_from(body)})
    assert done.status_code == 200, done.get_data(as_text=True)[:500]
    codes = RECOVERY.findall(done.get_data(as_text=True))
    assert len(codes) == 10 and len(set(codes)) == 10
    return totp, codes


def later_code(totp: pyotp.TOTP, steps: int = 1) -> str:
    """The code of a later time step, still inside the accepted window for steps=1."""
    return totp.at(time.time() + 30 * steps)


def sign_out(client: FlaskClient) -> None:
    token = csrf_from(client.get("/security").get_data(as_text=True))
    client.post("/logout", data={"csrf_token": token})


def enrolled_admin(
    client: FlaskClient, make_user: Any, role: Role = Role.ADMIN
) -> tuple[Person, pyotp.TOTP, list[str]]:
    person = make_user(role)
    assert sign_in(client, person).headers["Location"] == "/login/code"
    totp, codes = enrol(client)
    sign_out(client)
    return person, totp, codes


def test_production_default_requires_admins_and_compliance_officers(
    tmp_path: Any, redis_server: Any
) -> None:
    config = base_config(tmp_path, redis_server.url)
    del config["TWO_FACTOR_REQUIRED_ROLES"]
    app = create_app(config)
    assert app.config["TWO_FACTOR_REQUIRED_ROLES"] == "admin,compliance"
    with app.app_context():
        assert two_factor.required_roles() == {Role.ADMIN, Role.COMPLIANCE}


@pytest.mark.parametrize(
    ("role", "home"), [(Role.ADMIN, "/admin/"), (Role.COMPLIANCE, "/compliance/")]
)
def test_a_required_role_must_enrol_before_reaching_anything(
    required: Flask, client: FlaskClient, make_user: Any, role: Role, home: str
) -> None:
    person = make_user(role)
    answer = sign_in(client, person)
    assert answer.status_code == 302 and answer.headers["Location"] == "/login/code"
    assert client.get("/login/code").headers["Location"] == "/login/enrol"
    for path in (home, "/admin/", "/compliance/", "/agent/", "/security"):
        refused = client.get(path)
        assert refused.status_code == 302 and refused.headers["Location"].startswith(
            "/login?next="
        ), path
    # A wrong first code does not enrol.
    page = client.get("/login/enrol").get_data(as_text=True)
    wrong = client.post("/login/enrol", data={"code": "000000", "csrf_token": csrf_from(page)})
    assert wrong.status_code == 401 and "That code is not right" in wrong.get_data(as_text=True)
    assert client.get(home).status_code == 302
    enrol(client)
    assert client.get(home).status_code == 200
    logged = actions(required, person.id)
    assert "auth.password_accepted" in logged and "auth.login" in logged
    assert "auth.second_factor_failed" in logged and "auth.two_factor_enrolled" in logged


def test_the_same_qr_code_is_shown_until_enrolled(
    required: Flask, client: FlaskClient, make_user: Any
) -> None:
    sign_in(client, make_user(Role.ADMIN))
    first = SECRET.search(client.get("/login/enrol").get_data(as_text=True)).group(1)
    assert SECRET.search(client.get("/login/enrol").get_data(as_text=True)).group(1) == first


def test_an_enrolled_admin_needs_the_code_and_a_wrong_one_is_refused(
    required: Flask, client: FlaskClient, make_user: Any
) -> None:
    person, totp, _codes = enrolled_admin(client, make_user)
    assert sign_in(client, person).headers["Location"] == "/login/code"
    assert client.get("/admin/").status_code == 302  # not signed in before the code
    wrong = post_code(client, "/login/code", "123456" if totp.now() != "123456" else "654321")
    assert wrong.status_code == 401
    assert "That code is not right, or it was used already." in wrong.get_data(as_text=True)
    assert client.get("/admin/").status_code == 302
    right = post_code(client, "/login/code", later_code(totp))
    assert right.status_code == 302 and right.headers["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200
    with required.app_context():
        row = db.session.scalars(
            select(AuditLog).where(
                AuditLog.action == "auth.login", AuditLog.object_id == str(person.id)
            )
        ).all()[-1]
        assert row.details["second_factor"] == "totp"


def test_a_replayed_code_is_refused(required: Flask, app: Flask, make_user: Any) -> None:
    first = app.test_client()
    person, totp, _codes = enrolled_admin(first, make_user)
    # The code that enrolled cannot sign in again.
    sign_in(first, person)
    assert post_code(first, "/login/code", totp.now()).status_code == 401
    code = later_code(totp)
    assert post_code(first, "/login/code", code).status_code == 302
    # Someone who watched it being typed tries it from elsewhere.
    thief = app.test_client()
    sign_in(thief, person)
    assert post_code(thief, "/login/code", code).status_code == 401
    assert thief.get("/admin/").status_code == 302


def test_a_recovery_code_works_once(required: Flask, app: Flask, make_user: Any) -> None:
    client = app.test_client()
    person, _totp, codes = enrolled_admin(client, make_user)
    sign_in(client, person)
    used = post_code(client, "/login/code", codes[3].upper())  # typed in capitals: still fine
    assert used.status_code == 302 and used.headers["Location"] == "/admin/"
    assert "9 are left" in html.unescape(client.get("/admin/").get_data(as_text=True))
    sign_out(client)
    sign_in(client, person)
    again = post_code(client, "/login/code", codes[3])
    assert again.status_code == 401
    assert client.get("/admin/").status_code == 302
    assert post_code(client, "/login/code", codes[4]).status_code == 302


def test_agents_may_enrol_and_turn_it_off_again(
    required: Flask, client: FlaskClient, make_user: Any
) -> None:
    agent = make_user(Role.AGENT)
    answer = sign_in(client, agent)
    assert answer.headers["Location"] == "/agent/"  # optional: no second step
    assert "Off." in client.get("/security").get_data(as_text=True)
    totp, codes = enrol(client, "/security/enrol")
    assert "On since" in client.get("/security").get_data(as_text=True)
    sign_out(client)
    assert sign_in(client, agent).headers["Location"] == "/login/code"
    assert post_code(client, "/login/code", later_code(totp)).status_code == 302
    # Turning it off needs a code not used yet: the one just typed is refused.
    page = client.get("/security").get_data(as_text=True)
    data = {"code": later_code(totp), "csrf_token": csrf_from(page)}
    refused = client.post("/security/disable", data=data)
    assert refused.status_code == 401
    assert "That code is not right, or it was used already." in refused.get_data(as_text=True)
    done = client.post("/security/disable", data={**data, "code": codes[0]})
    assert done.status_code == 303
    sign_out(client)
    assert sign_in(client, agent).headers["Location"] == "/agent/"
    assert "auth.two_factor_disabled" in actions(required, agent.id)


def test_a_required_role_cannot_turn_it_off(
    required: Flask, client: FlaskClient, make_user: Any
) -> None:
    person, totp, codes = enrolled_admin(client, make_user)
    sign_in(client, person)
    post_code(client, "/login/code", codes[0])
    page = client.get("/security").get_data(as_text=True)
    assert "Turn off" not in page
    refused = client.post(
        "/security/disable", data={"code": codes[1], "csrf_token": csrf_from(page)}
    )
    assert refused.status_code == 403
    with required.app_context():
        assert db.session.get(User, person.id).has_second_factor


def test_admin_reset_is_audited_ends_sessions_and_forces_enrolment_again(
    required: Flask, app: Flask, make_user: Any
) -> None:
    admin_client, target_client = app.test_client(), app.test_client()
    admin, admin_totp, admin_codes = enrolled_admin(admin_client, make_user)
    officer, totp, _codes = enrolled_admin(target_client, make_user, Role.COMPLIANCE)
    sign_in(target_client, officer)
    assert post_code(target_client, "/login/code", later_code(totp)).status_code == 302
    assert target_client.get("/compliance/").status_code == 200

    sign_in(admin_client, admin)
    post_code(admin_client, "/login/code", admin_codes[0])
    page = admin_client.get(f"/admin/users/{officer.id}/two-factor").get_data(as_text=True)
    assert "On since" in page and "Reset second factor" in page
    # Own reset is refused (another admin must).
    own = admin_client.post(
        f"/admin/users/{admin.id}/two-factor/reset", data={"csrf_token": csrf_from(page)}
    )
    assert own.status_code == 403
    # The htmx button swaps the fragment.
    reset = admin_client.post(
        f"/admin/users/{officer.id}/two-factor/reset",
        data={"csrf_token": csrf_from(page)},
        headers={"HX-Request": "true"},
    )
    body = reset.get_data(as_text=True)
    assert reset.status_code == 200 and not body.lstrip().lower().startswith("<!doctype")
    assert "Not set up. Their role requires it" in body
    with app.app_context():
        row = db.session.scalar(select(AuditLog).where(AuditLog.action == "auth.two_factor_reset"))
        assert row.actor_id == admin.id and row.object_id == str(officer.id)
    # The officer's session has ended; their next sign-in enrols again.
    assert target_client.get("/compliance/").status_code == 302
    assert sign_in(target_client, officer).headers["Location"] == "/login/code"
    assert target_client.get("/login/code").headers["Location"] == "/login/enrol"
    enrol(target_client)
    assert target_client.get("/compliance/").status_code == 200


def test_only_admins_reset(required: Flask, app: Flask, make_user: Any) -> None:
    target = app.test_client()
    agent = make_user(Role.AGENT)
    sign_in(target, agent)
    enrol(target, "/security/enrol")
    for role in (Role.AGENT, Role.SUPERVISOR, Role.CUSTOMER):
        other = app.test_client()
        sign_in(other, make_user(role), portal=role is Role.CUSTOMER)
        token = csrf_from(
            other.get("/portal/" if role is Role.CUSTOMER else "/agent/").get_data(as_text=True)
        )
        answer = other.post(f"/admin/users/{agent.id}/two-factor/reset", data={"csrf_token": token})
        assert answer.status_code == 403, role
    with app.app_context():
        assert db.session.get(User, agent.id).has_second_factor


def test_wrong_codes_are_rate_limited_per_account(
    required: Flask, app: Flask, make_user: Any
) -> None:
    app.config["LOGIN_LIMIT_PER_ACCOUNT"] = "3 per minute"
    setup = app.test_client()
    person, totp, _codes = enrolled_admin(setup, make_user)
    for n in range(3):
        attacker = app.test_client()
        attacker.environ_base["REMOTE_ADDR"] = f"198.51.100.{n + 1}"
        sign_in(attacker, person)
        assert post_code(attacker, "/login/code", "000000").status_code == 401
    late = app.test_client()
    late.environ_base["REMOTE_ADDR"] = "198.51.100.99"
    sign_in(late, person)
    blocked = post_code(late, "/login/code", later_code(totp))  # even the right code waits
    assert blocked.status_code == 429


def test_a_door_that_signs_staff_in_directly_still_meets_the_second_step(
    required: Flask, app: Flask, make_user: Any
) -> None:
    """An invitation or emailed sign-in link for staff that calls login_user itself."""

    @app.get("/test-door/<int:user_id>")
    def door(user_id: int) -> str:
        login_user(db.session.get(User, user_id))
        return "in"

    client = app.test_client()
    agent = make_user(Role.AGENT)
    sign_in(client, agent)
    totp, _codes = enrol(client, "/security/enrol")
    sign_out(client)
    other = app.test_client()
    other.get(f"/test-door/{agent.id}")
    answer = other.get("/agent/")
    assert answer.status_code == 302 and answer.headers["Location"] == "/login/code"
    htmx = app.test_client()
    htmx.get(f"/test-door/{agent.id}")
    swapped = htmx.get("/agent/", headers={"HX-Request": "true"})
    assert swapped.status_code == 401 and swapped.headers["HX-Redirect"] == "/login/code"
    assert post_code(other, "/login/code", later_code(totp)).status_code == 302
    assert other.get("/agent/").status_code == 200
    # An admin without a second factor (the role became required) is sent to enrol.
    admin = make_user(Role.ADMIN)
    third = app.test_client()
    third.get(f"/test-door/{admin.id}")
    assert third.get("/admin/").headers["Location"] == "/login/code"
    assert third.get("/login/code").headers["Location"] == "/login/enrol"


def test_customers_are_not_affected(required: Flask, client: FlaskClient, make_user: Any) -> None:
    required.config["TWO_FACTOR_REQUIRED_ROLES"] = "admin,compliance,customer"
    customer = make_user(Role.CUSTOMER)
    answer = sign_in(client, customer, portal=True)
    assert answer.status_code == 302 and answer.headers["Location"] == "/portal/"
    assert client.get("/portal/").status_code == 200
    assert client.get("/security").status_code == 403


def test_the_secret_is_sealed_and_bound_to_its_user(
    required: Flask, client: FlaskClient, make_user: Any
) -> None:
    person, totp, _codes = enrolled_admin(client, make_user)
    other = make_user(Role.ADMIN)
    with required.app_context():
        user = db.session.get(User, person.id)
        assert totp.secret not in (user.totp_secret_sealed or "")
        assert two_factor.unseal(user.totp_secret_sealed, user.id) == totp.secret
        with pytest.raises(two_factor.SecondFactorUnavailable):
            two_factor.unseal(user.totp_secret_sealed, other.id)
        assert two_factor.key_ids_in_use() == {two_factor.sealed_key_id(user.totp_secret_sealed)}


def test_a_pending_sign_in_dies_with_a_password_change(
    required: Flask, client: FlaskClient, make_user: Any
) -> None:
    person, totp, _codes = enrolled_admin(client, make_user)
    sign_in(client, person)
    with required.app_context():
        db.session.get(User, person.id).set_password("another long password")
        db.session.commit()
    answer = client.get("/login/code")
    assert answer.status_code == 302 and answer.headers["Location"] == "/login"
    assert "Please sign in again" in client.get("/login").get_data(as_text=True)
    assert client.get("/admin/").status_code == 302


def test_new_recovery_codes_replace_the_old_ones(
    required: Flask, client: FlaskClient, make_user: Any
) -> None:
    person, totp, codes = enrolled_admin(client, make_user)
    sign_in(client, person)
    post_code(client, "/login/code", codes[0])
    page = client.get("/security").get_data(as_text=True)
    fresh = client.post(
        "/security/recovery-codes", data={"code": later_code(totp), "csrf_token": csrf_from(page)}
    )
    new_codes = RECOVERY.findall(fresh.get_data(as_text=True))
    assert fresh.status_code == 200 and len(new_codes) == 10
    sign_out(client)
    sign_in(client, person)
    assert post_code(client, "/login/code", codes[1]).status_code == 401
    assert post_code(client, "/login/code", new_codes[0]).status_code == 302
    assert "auth.recovery_codes_regenerated" in actions(required, person.id)


def test_key_rotation_reseals_the_secrets(ctx: None) -> None:
    from app.files.store import get_vault
    from tests import factories

    user = factories.staff_user(Role.AGENT)
    db.session.flush()
    secret = two_factor.new_secret()
    user.totp_secret_sealed = two_factor.seal(secret, user.id)
    old_key = two_factor.sealed_key_id(user.totp_secret_sealed)
    report = get_vault().add_kek_and_rewrap()
    assert two_factor.reseal_secrets() == 1
    assert two_factor.sealed_key_id(user.totp_secret_sealed) == report.key_id != old_key
    assert two_factor.unseal(user.totp_secret_sealed, user.id) == secret
    assert two_factor.key_ids_in_use() == {report.key_id}
