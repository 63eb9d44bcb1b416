"""Search finds tickets by number (any spelling), customer and account, beside the text;
a lone number sent on purpose jumps to the ticket."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from app import create_app
from app.extensions import db
from app.models import Role
from app.tickets import search
from app.tickets.listing import ListQuery, list_tickets
from tests import factories
from tests.conftest import base_config, sign_in


def test_number_terms_read_every_spelling() -> None:
    for text in ("T-104233", "t-104233", "#T-104233", "[#T-104233]", "104233", "#104233"):
        assert search.lone_number(text, "T")[0] == "T-104233", text
    assert search.lone_number("X-104233", "T") == ("X-104233", True)
    assert search.lone_number("104233 printer", "T") is None
    assert search.lone_number("printer", "T") is None
    assert search.number_terms("T-104233 printer", "T") == (["T-104233"], ["printer"])


@pytest.fixture
def world(app: Flask) -> dict[str, Any]:
    with app.app_context():
        schmidt = factories.contact("Kranich Logistik GmbH")
        schmidt.name, schmidt.email = "Anna Schmidt", "anna.schmidt@kranich.test"
        a = factories.ticket("Printer jams", contact=schmidt)
        b = factories.ticket("VPN slow")
        c = factories.ticket("Mentions Schmidt in the text")  # body: "It is on fire."
        db.session.commit()
        return {"a": a.number, "b": b.number, "c": c.number}


def _found(app: Flask, text: str) -> list[str]:
    with app.app_context():
        from app.models.people import User

        viewer = db.session.get(User, factories.staff_user(Role.AGENT).id)
        rows = list_tickets(ListQuery(view="all", text=text), viewer).rows
        return [r.ticket.number for r in rows]


def test_list_search_by_number_customer_and_account(app: Flask, world: dict[str, Any]) -> None:
    a, b = world["a"], world["b"]
    digits = a.split("-")[1]
    for text in (a, digits, f"#{a}", a.lower()):
        assert _found(app, text) == [a], text
    assert _found(app, "Anna Schmidt") == [a]  # the contact's name, both words
    assert _found(app, "kranich.test") == [a]  # the address
    assert _found(app, "Kranich Logistik") == [a]  # the account's name
    assert _found(app, "schmidt")[0] == a  # customer first, then text hits (subject of c)
    assert world["c"] in _found(app, "schmidt")
    assert _found(app, "VPN") == [b]  # the text search still works
    assert set(_found(app, f"{a} {b}")) == {a, b}  # several numbers: each of them
    assert _found(app, "T-999999999") == []


def test_a_number_sent_on_purpose_jumps_to_the_ticket(
    app: Flask, client: Any, make_user: Any, world: dict[str, Any]
) -> None:
    sign_in(client, make_user(Role.AGENT))
    a = world["a"]
    digits = a.split("-")[1]
    for text in (a, digits, f"#{a}"):
        plain = client.get("/agent/list/all", query_string={"q": text})
        assert plain.status_code == 303 and plain.headers["Location"] == f"/agent/tickets/{a}"
    sent = client.get(
        "/agent/list/inbox",
        query_string={"q": digits},
        headers={"HX-Request": "true", "HX-Trigger": "list-filters"},
    )
    assert sent.status_code == 204 and sent.headers["HX-Redirect"] == f"/agent/tickets/{a}"
    # Typing (the search box's own request) and the table's poll list it instead.
    for trigger in ("list-q", "ticket-list"):
        typed = client.get(
            "/agent/list/all",
            query_string={"q": digits},
            headers={"HX-Request": "true", "HX-Trigger": trigger},
        )
        assert typed.status_code == 200 and f'data-number="{a}"' in typed.get_data(as_text=True)
    # A number that names no ticket is an ordinary (empty) search.
    none = client.get("/agent/list/all", query_string={"q": "T-999999999"})
    assert none.status_code == 200 and "No tickets here." in none.get_data(as_text=True)


@pytest.mark.postgres
def test_search_by_number_and_customer_on_postgres(
    tmp_path: Path, redis_server: Any, postgres_database: str
) -> None:
    from flask_migrate import upgrade

    app = create_app(base_config(tmp_path, redis_server.url, postgres_database))
    with app.app_context():
        upgrade()
        viewer = factories.staff_user(Role.AGENT)
        person = factories.contact("Pelikan AG")
        t = factories.ticket("Printer jams", contact=person)
        factories.ticket("Other")
        db.session.commit()
        for text in (t.number, t.number.split("-")[1], "Pelikan", person.email, "printer"):
            rows = list_tickets(ListQuery(view="all", text=text), viewer).rows
            assert [r.ticket.number for r in rows] == [t.number], text
        db.session.remove()
        db.engine.dispose()
