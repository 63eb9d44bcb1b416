"""The admin editor for system mail: who may use it, CSRF, the live preview, refusals."""

from __future__ import annotations

import html
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from app.actor import Actor
from app.extensions import db
from app.mail.identities import save_identity
from app.models import Role
from app.models.mail import SystemTemplate
from tests.conftest import Person, csrf_from, sign_in


@pytest.fixture
def identity_id(app: Flask) -> int:
    with app.app_context():
        identity = save_identity(Actor.system(), address="kontakt@desk.test", name="Kontakt",
                                 language="de", is_default=True)  # fmt: skip
        db.session.commit()
        return identity.id


@pytest.fixture
def admin(client: FlaskClient, make_user: Any) -> Person:
    person = make_user(Role.ADMIN)
    assert sign_in(client, person).status_code == 302
    return person


def editor(identity_id: int, kind: str = "autoresponse", language: str = "de") -> str:
    return f"/admin/system-mail/{identity_id}/{kind}/{language}"


def stored(app: Flask) -> list[tuple[str, str, str]]:
    with app.app_context():
        return [(t.kind, t.language, t.subject) for t in db.session.scalars(select(SystemTemplate))]


FORM = {
    "subject": "Eingang {{ ticket_number }}",
    "body_text": "Hallo {{ customer_name }}, Ticket {{ ticket_number }}: {{ portal_url }}",
    "body_html": "<p>Hallo <b>{{ customer_name }}</b></p>",
}


def test_the_editor_shows_the_german_default_and_its_variables(
    client: FlaskClient, admin: Person, identity_id: int
) -> None:
    listing = client.get("/admin/system-mail").get_data(as_text=True)
    assert editor(identity_id) in listing and "Autoresponse to a new ticket" in listing
    page = client.get(editor(identity_id))
    body = html.unescape(page.get_data(as_text=True))
    assert page.status_code == 200
    assert "[#{{ ticket_number }}] Wir haben Ihre Anfrage erhalten" in body  # the source
    # The preview with sample values, and the documented variables.
    assert "[#T-104233] Wir haben Ihre Anfrage erhalten: Printer on fire" in body
    assert "{{ agent_name }}" in body and "Assigned agent's name" in body


def test_preview_shows_what_was_typed_rendered_and_saves_nothing(
    app: Flask, client: FlaskClient, admin: Person, identity_id: int
) -> None:
    token = csrf_from(client.get(editor(identity_id)).get_data(as_text=True))
    answer = client.post(
        editor(identity_id) + "/preview",
        data={**FORM, "csrf_token": token},
        headers={"HX-Request": "true"},
    )
    assert answer.status_code == 200
    fragment = answer.get_data(as_text=True)
    assert fragment.lstrip().startswith('<section id="system-mail-preview"')  # the fragment
    text = html.unescape(fragment)
    assert "Eingang T-104233" in text
    assert "Hallo Nora Customer, Ticket T-104233: https://desk.example/portal/t/T-104233" in text
    assert "<p>Hallo <b>Nora Customer</b></p>" in text  # in the sandboxed iframe's srcdoc
    assert stored(app) == []
    # Without JavaScript the Preview button posts the form and gets the whole page.
    page = client.post(editor(identity_id) + "/preview", data={**FORM, "csrf_token": token})
    assert page.status_code == 200 and "<!doctype html>" in page.get_data(as_text=True)[:50].lower()
    assert "Eingang T-104233" in page.get_data(as_text=True)


def test_save_then_reset_to_the_default(
    app: Flask, client: FlaskClient, admin: Person, identity_id: int
) -> None:
    token = csrf_from(client.get(editor(identity_id)).get_data(as_text=True))
    saved = client.post(editor(identity_id), data={**FORM, "csrf_token": token})
    assert saved.status_code == 303
    assert stored(app) == [("autoresponse", "de", "Eingang {{ ticket_number }}")]
    page = client.get(saved.headers["Location"]).get_data(as_text=True)
    assert "Template saved" in page and "customised" in page
    reset = client.post(editor(identity_id) + "/reset", data={"csrf_token": token})
    assert reset.status_code == 303 and stored(app) == []
    page = client.get(reset.headers["Location"]).get_data(as_text=True)
    assert "Wir haben Ihre Anfrage erhalten" in html.unescape(page)


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("{{ ''.__class__.__mro__ }}", "SecurityError: access to attribute '__class__'"),
        ("Hallo {{ customer_name }", "TemplateSyntaxError"),
        ("Hallo {{ vorname }}", "'vorname' is undefined"),
    ],
)
def test_a_broken_template_is_refused_with_the_error_and_the_text_kept(
    app: Flask, client: FlaskClient, admin: Person, identity_id: int, text: str, shown: str
) -> None:
    token = csrf_from(client.get(editor(identity_id)).get_data(as_text=True))
    data = {**FORM, "body_text": text, "csrf_token": token}
    refused = client.post(editor(identity_id), data=data)
    assert refused.status_code == 422
    body = html.unescape(refused.get_data(as_text=True))
    assert "Not saved: the template does not render." in body and shown in body
    assert text in body  # what was typed is still in the form
    assert stored(app) == []
    # The htmx save gets the editor fragment back, error included.
    fragment = client.post(editor(identity_id), data=data, headers={"HX-Request": "true"})
    assert fragment.status_code == 422
    assert fragment.get_data(as_text=True).lstrip().startswith('<section id="system-mail-editor"')
    assert shown in html.unescape(fragment.get_data(as_text=True))
    # The live preview says the same while typing.
    preview = client.post(
        editor(identity_id) + "/preview", data=data, headers={"HX-Request": "true"}
    )
    assert preview.status_code == 200 and shown in html.unescape(preview.get_data(as_text=True))


@pytest.mark.parametrize("role", [Role.AGENT, Role.CUSTOMER, Role.SUPERVISOR])
def test_only_admins_reach_the_editor(
    app: Flask, client: FlaskClient, make_user: Any, role: Role, identity_id: int
) -> None:
    person = make_user(role)
    sign_in(client, person, portal=role is Role.CUSTOMER)
    for path in ("/admin/system-mail", editor(identity_id)):
        assert client.get(path).status_code == 403, path
    token = csrf_from(client.get("/", follow_redirects=True).get_data(True))
    data = {**FORM, "csrf_token": token}
    for suffix in ("", "/preview", "/reset"):
        assert client.post(editor(identity_id) + suffix, data=data).status_code == 403, suffix
    assert stored(app) == []


def test_signed_out_visitors_are_sent_to_sign_in(client: FlaskClient, identity_id: int) -> None:
    response = client.get(editor(identity_id))
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_posts_without_a_csrf_token_are_refused(
    app: Flask, client: FlaskClient, admin: Person, identity_id: int
) -> None:
    assert client.post(editor(identity_id), data=FORM).status_code == 400
    assert stored(app) == []
    token = csrf_from(client.get(editor(identity_id)).get_data(as_text=True))
    client.post(editor(identity_id), data={**FORM, "csrf_token": token})
    assert client.post(editor(identity_id) + "/reset", data={}).status_code == 400
    assert len(stored(app)) == 1


@pytest.mark.parametrize(
    "path",
    ["/admin/system-mail/999/autoresponse/de", "/admin/system-mail/{id}/nothing/de",
     "/admin/system-mail/{id}/autoresponse/fr"],
)  # fmt: skip
def test_unknown_identity_kind_or_language_is_404(
    client: FlaskClient, admin: Person, identity_id: int, path: str
) -> None:
    assert client.get(path.format(id=identity_id)).status_code == 404
