"""The htmx convention over HTTP (``app.htmx``), and the typed parser (``app.params``)."""

from __future__ import annotations

import io
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from app import params
from app.actor import Actor
from app.errors import InvalidInput
from app.extensions import db
from app.mail.identities import add_template, save_identity
from app.models import Role, Ticket
from app.models.files import VaultFile
from app.models.tickets import Status
from tests import factories
from tests.conftest import csrf_from, sign_in

HTMX = {"HX-Request": "true"}
BOOSTED = {"HX-Request": "true", "HX-Boosted": "true"}


def is_page(response: Any) -> bool:
    return response.get_data(as_text=True).lstrip().lower().startswith("<!doctype html")


@pytest.fixture
def agent_client(app: Flask, client: Any, make_user: Any) -> Any:
    sign_in(client, make_user(Role.AGENT))
    return client


def test_errors_are_pages_for_plain_requests_and_flash_messages_for_htmx(
    agent_client: Any,
) -> None:
    plain = agent_client.get("/agent/tickets/T-000000")
    assert plain.status_code == 404 and is_page(plain)
    assert "There is no ticket T-000000." in plain.get_data(as_text=True)
    for headers in (HTMX, BOOSTED):
        answer = agent_client.get("/agent/tickets/T-000000", headers=headers)
        assert answer.status_code == 404 and not is_page(answer), headers
        assert answer.headers["HX-Retarget"] == "#flash"
        assert answer.headers["HX-Reswap"] == "innerHTML"
        assert answer.headers["HX-Push-Url"] == "false"  # a refused link keeps the address
        assert "HX-Request" in answer.headers["Vary"]
        assert "There is no ticket T-000000." in answer.get_data(as_text=True)


def test_an_unexpected_error_is_our_page_or_a_flash_message(app: Flask) -> None:
    app.config["PROPAGATE_EXCEPTIONS"] = False

    @app.get("/boom")
    def boom() -> str:
        raise RuntimeError("broken on purpose")

    client = app.test_client()
    page = client.get("/boom")
    assert page.status_code == 500 and is_page(page)
    assert "Something went wrong" in page.get_data(as_text=True)
    message = client.get("/boom", headers=HTMX)
    assert message.status_code == 500 and not is_page(message)
    assert message.headers["HX-Retarget"] == "#flash"


def test_whole_pages_for_htmx_replace_the_body_and_redirects_become_hx_redirect(
    app: Flask, agent_client: Any
) -> None:
    with app.app_context():
        number = factories.ticket("Boosted").number
        db.session.commit()
    boosted = agent_client.get(f"/agent/tickets/{number}", headers=BOOSTED)
    assert boosted.status_code == 200 and is_page(boosted)
    assert boosted.headers["HX-Retarget"] == "body"
    assert boosted.headers["HX-Reswap"] == "innerHTML"
    assert "HX-Retarget" not in agent_client.get(f"/agent/tickets/{number}").headers
    # GET / redirects to the agent's home; htmx gets a navigation instead of a page to swap.
    home = agent_client.get("/", headers=HTMX)
    assert home.status_code == 204 and home.headers["HX-Redirect"] == "/agent/"
    assert "Location" not in home.headers
    assert agent_client.get("/").status_code == 302


def test_bulk_answers_htmx_with_the_list_and_an_out_of_band_flash(
    app: Flask, agent_client: Any
) -> None:
    with app.app_context():
        tickets = [factories.ticket(f"Bulk {n}") for n in range(3)]
        db.session.commit()
        ids = [str(t.id) for t in tickets[:2]]
    page = agent_client.get("/agent/list/new?sort=number&dir=asc").get_data(as_text=True)
    form = {"csrf_token": csrf_from(page), "next": "/agent/list/new?sort=number&dir=asc"}
    done = agent_client.post(
        "/agent/bulk",
        data={**form, "action": "status", "status": "in_progress", "ticket": ids},
        headers=HTMX,
    )
    html = done.get_data(as_text=True)
    assert done.status_code == 200 and not is_page(done)
    assert html.lstrip().startswith('<div id="ticket-list"')
    assert 'hx-swap-oob="innerHTML"' in html and "Changed the status of 2 ticket(s)." in html
    assert "Bulk 2" in html and "Bulk 0" not in html  # the New list, redrawn without them
    assert 'aria-sort="ascending"' in html  # with the sorting of the page it came from

    refused = agent_client.post(
        "/agent/bulk", data={**form, "action": "status", "ticket": ids[:1]}, headers=HTMX
    )
    assert refused.status_code == 422 and not is_page(refused)
    assert refused.headers["HX-Retarget"] == "#flash"
    assert "Choose a status." in refused.get_data(as_text=True)
    plain = agent_client.post("/agent/bulk", data={**form, "action": "read", "ticket": ids})
    assert plain.status_code == 303 and plain.headers["Location"] == form["next"]


def test_a_refused_plain_answer_renders_the_ticket_page_with_the_composer_filled(
    app: Flask, agent_client: Any
) -> None:
    with app.app_context():
        identity = save_identity(Actor.system(), address="help@desk.test", name="Help")
        template = add_template(Actor.system(), identity, "Hi", "Hello there.")
        number = factories.ticket("Composer").number
        db.session.commit()
        identity_id, template_id = identity.id, template.id
    page = agent_client.get(f"/agent/tickets/{number}").get_data(as_text=True)
    response = agent_client.post(
        f"/agent/tickets/{number}/answer",
        data={
            "csrf_token": csrf_from(page),
            "visibility": "public",
            "identity_id": str(identity_id),
            "template": str(template_id),
            "body": "Typed before the refusal",
            "pending": "on",
            "pending_until": "2001-01-01T10:00",
            "files": [(io.BytesIO(b"notes"), "notes.txt")],
        },
        content_type="multipart/form-data",
    )
    html = response.get_data(as_text=True)
    assert response.status_code == 422 and is_page(response)
    assert "Back to your start page" not in html and 'id="ticket-header"' in html
    assert "The follow-up date must be in the future." in html
    assert "The 1 attached file(s) were not kept: choose them again" in html
    assert ">Typed before the refusal</textarea>" in html
    assert 'value="2001-01-01T10:00"' in html
    assert f'<option value="{identity_id}" selected>' in html
    assert f'<option value="{template_id}" data-body="Hello there." selected>' in html
    assert 'name="pending" id="pending" checked' in html
    assert 'value="public" checked' in html
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(VaultFile)) == 0

    fragment = agent_client.post(
        f"/agent/tickets/{number}/answer",
        data={"csrf_token": csrf_from(page), "visibility": "internal", "body": " "},
        content_type="multipart/form-data",
        headers=HTMX,
    )
    assert fragment.status_code == 422 and not is_page(fragment)
    assert fragment.get_data(as_text=True).lstrip().startswith('<section class="panel composer"')
    sent = agent_client.post(
        f"/agent/tickets/{number}/answer",
        data={"csrf_token": csrf_from(page), "visibility": "internal", "body": "Noted"},
        content_type="multipart/form-data",
        headers=HTMX,
    )
    assert sent.status_code == 204 and sent.headers["HX-Redirect"] == f"/agent/tickets/{number}"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("42", 42),
        (" 7 ", 7),
        (str(2**63 - 1), 2**63 - 1),
        (str(2**63), None),
        ("9" * 40, None),
        ("0", None),
        ("-1", None),
        ("²", None),  # isdigit() says yes, int() says no
        ("١", None),  # an Arabic-Indic one: int() would take it
        ("1.5", None),
        ("", None),
        (None, None),
    ],
)
def test_ids_are_ascii_positive_and_fit_in_64_bits(value: Any, expected: int | None) -> None:
    assert params.id_or_none(value) == expected


def test_strict_parsers_refuse_with_a_sentence() -> None:
    assert params.int_id("", "Team") is None and params.int_id("12", "Team") == 12
    with pytest.raises(InvalidInput, match="“x” is not a valid choice for Team."):
        params.int_id("x", "Team")
    assert params.int_ids(["1", "", "3"], "Leads") == [1, 3]
    with pytest.raises(InvalidInput, match="not a valid choice for Leads"):
        params.int_ids(["1", str(2**64)], "Leads")
    assert params.choice(Status, "open", "status") is Status.OPEN
    assert params.choice(Status, "", "status") is None
    with pytest.raises(InvalidInput, match="“bogus\\?” is not a status. Choose one of: New"):
        params.choice(Status, "bogus\x00", "status")
    with pytest.raises(InvalidInput, match="Choose a status."):
        params.required_choice(Status, "", "status")
    assert params.page_number("x") == 1 and params.page_number("3") == 3
    assert params.page_number(str(2**63 - 1)) == params.MAX_PAGE


def test_a_page_past_the_end_shows_the_last_page(app: Flask, agent_client: Any) -> None:
    with app.app_context():
        factories.ticket("Only one")
        db.session.commit()
        assert db.session.scalar(select(func.count()).select_from(Ticket)) == 1
    listed = agent_client.get("/agent/list/all?page=99999999999999999999")
    assert listed.status_code == 200 and "Only one" in listed.get_data(as_text=True)
    assert agent_client.get("/agent/?page=9223372036854775807").status_code == 200
