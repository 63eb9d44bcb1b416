"""Admin screens and rules for IMAP mailboxes: sealing the password, test connection, access.

Against the real Dovecot of ``tests.services``: "Test connection" must show what that
server answered, including its NO for a wrong password.
"""

from __future__ import annotations

import base64
import itertools
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from rq import Queue
from sqlalchemy import select

from app.extensions import db, redis_client
from app.mail.mailboxes import (
    PasswordUnavailable,
    key_ids_in_use,
    sealed_key_id,
    unseal_password,
)
from app.models import AuditLog, Role
from app.models.inbound import Mailbox
from tests.conftest import Person, csrf_from, sign_in

PASSWORD = "s3cret-imap-pass"
_users = itertools.count(1)


def imap_user(imap_server: Any, password: str = PASSWORD) -> str:
    name = f"mbx{next(_users)}"
    imap_server.add_user(name, password)
    return name


def form_data(imap_server: Any, username: str, **overrides: Any) -> dict[str, str]:
    data = {
        "name": "Support",
        "address": "support@example.test",
        "host": imap_server.host,
        "port": str(imap_server.port),
        "security": "none",
        "username": username,
        "password": PASSWORD,
        "folder": "INBOX",
        "after_import": "flag",
        "move_to": "",
        "identity_id": "",
        "poll_interval_s": "60",
        "active": "on",
    }
    data.update({k: str(v) for k, v in overrides.items()})
    return data


def post_form(client: FlaskClient, path: str, data: dict[str, str], **kwargs: Any) -> Any:
    token = csrf_from(client.get("/admin/mailboxes/new").get_data(as_text=True))
    return client.post(path, data={**data, "csrf_token": token}, **kwargs)


@pytest.fixture
def admin(make_user: Any, client: FlaskClient) -> Person:
    person = make_user(Role.ADMIN)
    assert sign_in(client, person).status_code == 302
    return person


def the_mailbox(app: Flask) -> Mailbox:
    with app.app_context():
        mailbox = db.session.scalars(select(Mailbox)).one()
        db.session.expunge(mailbox)
        return mailbox


def test_admin_adds_a_mailbox_and_the_password_is_sealed_never_shown(
    app: Flask, client: FlaskClient, admin: Person, imap_server: Any
) -> None:
    user = imap_user(imap_server)
    response = post_form(client, "/admin/mailboxes/new", form_data(imap_server, user))
    assert response.status_code == 303, response.get_data(as_text=True)[:800]
    listing = client.get("/admin/mailboxes").get_data(as_text=True)
    assert "support@example.test" in listing and imap_server.host in listing
    mailbox = the_mailbox(app)
    stored = mailbox.password_sealed
    # Neither the password nor any plain encoding of it is in the column.
    for form in (PASSWORD, base64.b64encode(PASSWORD.encode()).decode(), PASSWORD.encode().hex()):
        assert form not in stored
    with app.app_context():
        assert sealed_key_id(stored) in get_keyring_ids(app)
        assert unseal_password(db.session.get(Mailbox, mailbox.id)) == PASSWORD
    edit = client.get(f"/admin/mailboxes/{mailbox.id}").get_data(as_text=True)
    assert PASSWORD not in edit and stored not in edit
    assert 'name="password" type="password" value=""' in edit
    with app.app_context():
        saved = db.session.scalars(select(AuditLog).where(AuditLog.action == "mailbox.save")).one()
        assert PASSWORD not in str(saved.details)


def get_keyring_ids(app: Flask) -> frozenset[str]:
    from app.files.store import get_vault

    return get_vault().keyring.key_ids


def test_an_empty_password_keeps_the_stored_one_but_not_for_another_server(
    app: Flask, client: FlaskClient, admin: Person, imap_server: Any
) -> None:
    user = imap_user(imap_server)
    post_form(client, "/admin/mailboxes/new", form_data(imap_server, user))
    mailbox = the_mailbox(app)
    kept = post_form(
        client,
        f"/admin/mailboxes/{mailbox.id}",
        form_data(imap_server, user, password="", name="Support desk", poll_interval_s=300),
    )
    assert kept.status_code == 303
    with app.app_context():
        again = db.session.get(Mailbox, mailbox.id)
        assert again.name == "Support desk" and again.poll_interval_s == 300
        assert unseal_password(again) == PASSWORD
    # Pointing the mailbox at another server must not carry the password along.
    moved = post_form(
        client,
        f"/admin/mailboxes/{mailbox.id}",
        form_data(imap_server, user, password="", host="imap.attacker.test"),
    )
    assert moved.status_code == 422
    page = moved.get_data(as_text=True)
    assert "enter the password again" in page and PASSWORD not in page
    assert 'value="imap.attacker.test"' in page  # what was typed is kept, the password is not
    assert the_mailbox(app).host == imap_server.host
    # Even a row edited behind the app's back cannot use the seal elsewhere.
    with app.app_context():
        row = db.session.get(Mailbox, mailbox.id)
        row.host = "imap.attacker.test"
        with pytest.raises(PasswordUnavailable):
            unseal_password(row)
        row.host, row.security = imap_server.host, "tls"
        with pytest.raises(PasswordUnavailable):
            unseal_password(row)
        db.session.rollback()


def test_key_rotation_reseals_passwords_and_retire_waits_for_them(
    app: Flask, client: FlaskClient, admin: Person, imap_server: Any
) -> None:
    from app.files.store import get_vault

    user = imap_user(imap_server)
    post_form(client, "/admin/mailboxes/new", form_data(imap_server, user))
    with app.app_context():
        old_key = get_vault().keyring.current_id
        # A key added by hand (no rewrap yet): the password is still under the old key.
        get_vault().keyring.add()
        assert key_ids_in_use() == {old_key}
        assert unseal_password(db.session.get(Mailbox, the_mailbox(app).id)) == PASSWORD
    runner = app.test_cli_runner()
    refused = runner.invoke(args=["vault", "retire-key", old_key])
    assert refused.exit_code != 0 and "Mailbox passwords" in refused.output
    rewrapped = runner.invoke(args=["vault", "rewrap"])
    assert rewrapped.exit_code == 0 and "1 mailbox passwords re-sealed" in rewrapped.output
    with app.app_context():
        current = get_vault().keyring.current_id
        assert key_ids_in_use() == {current}
    assert runner.invoke(args=["vault", "retire-key", old_key]).exit_code == 0
    rotated = runner.invoke(args=["vault", "rotate-key"])
    assert rotated.exit_code == 0 and "1 mailbox passwords re-sealed" in rotated.output
    with app.app_context():
        mailbox = db.session.get(Mailbox, the_mailbox(app).id)
        assert sealed_key_id(mailbox.password_sealed) == get_vault().keyring.current_id != current
        assert unseal_password(mailbox) == PASSWORD


def test_test_connection_shows_the_servers_answer(
    client: FlaskClient, admin: Person, imap_server: Any
) -> None:
    user = imap_user(imap_server)
    good = post_form(
        client,
        "/admin/mailboxes/test",
        form_data(imap_server, user),
        headers={"HX-Request": "true"},
    )
    body = good.get_data(as_text=True)
    assert good.status_code == 200 and "Connection works" in body
    assert "Dovecot" in body and "Logged in" in body and "<html" not in body
    wrong = post_form(
        client,
        "/admin/mailboxes/test",
        form_data(imap_server, user, password="not-the-password"),
        headers={"HX-Request": "true"},
    )
    text = wrong.get_data(as_text=True)
    assert "Connection failed" in text
    assert "LOGIN: NO [AUTHENTICATIONFAILED] Authentication failed." in text
    assert "not-the-password" not in text
    # Without JavaScript the same button posts the form and gets the whole page back.
    plain = post_form(client, "/admin/mailboxes/test", form_data(imap_server, user, folder="Nope"))
    page = plain.get_data(as_text=True)
    assert "<html" in page and "Connection failed" in page and "SELECT" in page
    assert 'value="Nope"' in page and PASSWORD not in page


def test_test_connection_of_a_saved_mailbox_uses_the_stored_password(
    app: Flask, client: FlaskClient, admin: Person, imap_server: Any
) -> None:
    user = imap_user(imap_server)
    post_form(client, "/admin/mailboxes/new", form_data(imap_server, user))
    mailbox = the_mailbox(app)
    checked = post_form(
        client,
        f"/admin/mailboxes/{mailbox.id}/test",
        form_data(imap_server, user, password=""),
        headers={"HX-Request": "true"},
    )
    assert "Connection works" in checked.get_data(as_text=True)
    elsewhere = post_form(
        client,
        f"/admin/mailboxes/{mailbox.id}/test",
        form_data(imap_server, user, password="", port=1),
        headers={"HX-Request": "true"},
    )
    assert elsewhere.status_code == 422
    assert "enter the password again" in elsewhere.get_data(as_text=True)


def test_an_unreachable_server_is_reported_not_raised(
    client: FlaskClient, admin: Person, imap_server: Any
) -> None:
    from tests.services import free_port

    user = imap_user(imap_server)
    answer = post_form(
        client,
        "/admin/mailboxes/test",
        form_data(imap_server, user, port=free_port()),
        headers={"HX-Request": "true"},
    )
    assert answer.status_code == 200
    assert "connection refused" in answer.get_data(as_text=True)


def test_invalid_settings_are_refused_with_a_reason(
    app: Flask, client: FlaskClient, admin: Person, imap_server: Any
) -> None:
    user = imap_user(imap_server)
    cases = [
        ({"address": "not-an-address"}, "is not an email address"),
        ({"security": "ssl3"}, "Choose a valid"),
        ({"port": "70000"}, "between 1 and 65535"),
        ({"after_import": "move", "move_to": ""}, "Enter a folder name"),
        ({"after_import": "move", "move_to": "INBOX"}, "another folder"),
        ({"poll_interval_s": "5"}, "Poll every"),
        ({"host": "imap.example.test/evil"}, "host name"),
    ]
    for overrides, reason in cases:
        refused = post_form(
            client, "/admin/mailboxes/new", form_data(imap_server, user, **overrides)
        )
        assert refused.status_code == 422, overrides
        assert reason in refused.get_data(as_text=True), overrides
    with app.app_context():
        assert db.session.scalars(select(Mailbox)).first() is None
    post_form(client, "/admin/mailboxes/new", form_data(imap_server, user))
    clash = post_form(client, "/admin/mailboxes/new", form_data(imap_server, user, name="Again"))
    assert clash.status_code == 409 and "already a mailbox" in clash.get_data(as_text=True)


def test_deactivate_stops_polling_and_is_audited(
    app: Flask, client: FlaskClient, admin: Person, imap_server: Any
) -> None:
    from app.mail.mailboxes import due_mailboxes

    user = imap_user(imap_server)
    post_form(client, "/admin/mailboxes/new", form_data(imap_server, user))
    mailbox = the_mailbox(app)
    with app.app_context():
        assert [m.id for m in due_mailboxes()] == [mailbox.id]
    token = csrf_from(client.get("/admin/mailboxes").get_data(as_text=True))
    polled = client.post(f"/admin/mailboxes/{mailbox.id}/poll", data={"csrf_token": token})
    assert polled.status_code == 303
    assert "will be polled now" in client.get("/admin/mailboxes").get_data(as_text=True)
    with app.app_context():
        queued = Queue("mail", connection=redis_client.connection).get_jobs()
        assert [(j.func_name, j.args) for j in queued] == [
            ("app.jobs.mail.poll_mailbox", (mailbox.id,))
        ]
    done = client.post(f"/admin/mailboxes/{mailbox.id}/deactivate", data={"csrf_token": token})
    assert done.status_code == 303
    assert "is no longer polled" in client.get("/admin/mailboxes").get_data(as_text=True)
    with app.app_context():
        assert not db.session.get(Mailbox, mailbox.id).active
        assert due_mailboxes() == []
        assert db.session.scalars(
            select(AuditLog).where(AuditLog.action == "mailbox.deactivate")
        ).one()


@pytest.mark.parametrize("role", [Role.AGENT, Role.CUSTOMER, Role.COMPLIANCE])
def test_only_admins_reach_the_mailboxes(
    app: Flask, client: FlaskClient, make_user: Any, role: Role, imap_server: Any
) -> None:
    person = make_user(role)
    sign_in(client, person, portal=role is Role.CUSTOMER)
    for path in ("/admin/mailboxes", "/admin/mailboxes/new"):
        assert client.get(path).status_code == 403, path
    token = csrf_from(client.get("/", follow_redirects=True).get_data(True))
    user = imap_user(imap_server)
    data = {**form_data(imap_server, user), "csrf_token": token}
    for path in ("/admin/mailboxes/new", "/admin/mailboxes/test"):
        assert client.post(path, data=data).status_code == 403, path
    with app.app_context():
        assert db.session.scalars(select(Mailbox)).first() is None


def test_posts_without_a_csrf_token_are_refused(
    app: Flask, client: FlaskClient, admin: Person, imap_server: Any
) -> None:
    user = imap_user(imap_server)
    refused = client.post("/admin/mailboxes/new", data=form_data(imap_server, user))
    assert refused.status_code == 400
    test = client.post("/admin/mailboxes/test", data=form_data(imap_server, user))
    assert test.status_code == 400 and "Logged in" not in test.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalars(select(Mailbox)).first() is None
    post_form(client, "/admin/mailboxes/new", form_data(imap_server, user))
    mailbox = the_mailbox(app)
    assert client.post(f"/admin/mailboxes/{mailbox.id}/deactivate").status_code == 400
    assert the_mailbox(app).active


def test_signed_out_visitors_are_sent_to_sign_in(client: FlaskClient) -> None:
    for path in ("/admin/mailboxes", "/admin/mailboxes/new"):
        response = client.get(path)
        assert response.status_code == 302 and "/login" in response.headers["Location"]
