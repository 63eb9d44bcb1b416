"""Refusals from the domain reach people in their language, through the real agent routes.

The domain raises its errors with ``gettext``: a German agent reads why an action was
refused in German (status names included), an English one in English, and code outside a
request (jobs, commands) keeps getting English.
"""

from __future__ import annotations

from typing import Any

import pytest

from app.actor import Actor
from app.errors import InvalidInput
from app.extensions import db
from app.mail.identities import save_identity
from app.models import Role, Status, Ticket, User
from app.tickets import change_status
from app.tickets.errors import TransitionNotAllowed
from app.tickets.replies import answer
from tests import factories
from tests.conftest import csrf_from, sign_in


@pytest.fixture
def desk(app: Any, make_user: Any) -> dict[str, Any]:
    """An open ticket, a sender identity, and one agent per language."""
    english = make_user(Role.AGENT)
    german = make_user(Role.AGENT)
    with app.app_context():
        identity = save_identity(Actor.system(), address="contact@desk.test", name="Desk")
        ticket = factories.ticket("Drucker druckt nicht")
        change_status(ticket, Status.OPEN, Actor.staff(db.session.get(User, english.id)))
        db.session.get(User, german.id).language = "de"
        db.session.commit()
        return {
            "en": english,
            "de": german,
            "number": ticket.number,
            "ticket_id": ticket.id,
            "identity": identity.id,
        }


def _ticket_page(client: Any, desk: dict[str, Any]) -> str:
    page = client.get(f"/agent/tickets/{desk['number']}")
    assert page.status_code == 200
    return page.get_data(as_text=True)


def _set_status(client: Any, desk: dict[str, Any], status: str, **headers: str) -> Any:
    page = _ticket_page(client, desk)
    version = page.split('name="version" value="')[1].split('"')[0]
    return client.post(
        f"/agent/tickets/{desk['number']}/fields",
        data={"csrf_token": csrf_from(page), "version": version, "status": status},
        headers={"HX-Request": "true", **headers},
    )


def _empty_answer(client: Any, desk: dict[str, Any]) -> Any:
    page = _ticket_page(client, desk)
    return client.post(
        f"/agent/tickets/{desk['number']}/answer",
        data={
            "csrf_token": csrf_from(page),
            "visibility": "public",
            "identity_id": str(desk["identity"]),
            "body": "   ",
        },
        content_type="multipart/form-data",
        headers={"HX-Request": "true"},
    )


def test_a_german_agent_reads_a_refused_transition_in_german(
    app: Any, client: Any, desk: dict[str, Any]
) -> None:
    sign_in(client, desk["de"])
    response = _set_status(client, desk, "new")
    text = response.get_data(as_text=True)
    assert response.status_code == 409
    assert "Eine Anfrage kann nicht von „Offen“ auf „Neu“ wechseln." in text
    assert "cannot go from" not in text
    with app.app_context():
        assert db.session.get(Ticket, desk["ticket_id"]).status == Status.OPEN.value


def test_an_english_agent_reads_it_in_english_whatever_the_browser_says(
    client: Any, desk: dict[str, Any]
) -> None:
    sign_in(client, desk["en"])
    response = _set_status(client, desk, "new", **{"Accept-Language": "de"})
    assert response.status_code == 409
    assert "A ticket cannot go from Open to New." in response.get_data(as_text=True)


def test_an_answer_without_text_is_refused_in_the_agents_language(
    app: Any, client: Any, desk: dict[str, Any]
) -> None:
    sign_in(client, desk["de"])
    german = _empty_answer(client, desk)
    assert german.status_code == 422
    assert "Schreiben Sie etwas oder hängen Sie eine Datei an." in german.get_data(as_text=True)

    colleague = app.test_client()
    sign_in(colleague, desk["en"])
    english = _empty_answer(colleague, desk)
    assert english.status_code == 422
    assert "Write something or attach a file." in english.get_data(as_text=True)


def test_outside_a_request_the_domain_speaks_english(app: Any, desk: dict[str, Any]) -> None:
    """Jobs and commands have no reader: their refusals stay English, as logs expect."""
    with app.app_context():
        ticket = db.session.get(Ticket, desk["ticket_id"])
        agent = Actor.staff(db.session.get(User, desk["de"].id))
        with pytest.raises(TransitionNotAllowed, match="A ticket cannot go from Open to New."):
            change_status(ticket, Status.NEW, agent)
        with pytest.raises(InvalidInput, match="Write something or attach a file."):
            answer(ticket, agent, "", internal=False)
