"""Presence on a ticket page: colleagues and their typing, in a real Redis, staff only."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import delete

from app import create_app
from app.extensions import db
from app.models import Role
from app.tickets import presence
from tests import factories
from tests.conftest import base_config, csrf_from, sign_in
from tests.services import free_port

HTMX = {"HX-Request": "true"}


@pytest.fixture
def number(app: Flask) -> str:
    with app.app_context():
        ticket = factories.ticket("Watched")
        db.session.commit()
        return ticket.number


def signed_in(app: Flask, person: Any, *, portal: bool = False) -> tuple[Any, str]:
    client = app.test_client()
    assert sign_in(client, person, portal=portal).status_code == 302
    return client, csrf_from(client.get("/portal/" if portal else "/agent/").get_data(True))


def names(client: Any, number: str) -> str:
    response = client.get(f"/agent/tickets/{number}/presence", headers=HTMX)
    assert response.status_code == 200
    return response.get_data(as_text=True)


def test_two_agents_see_each_other_and_who_is_typing_what(
    app: Flask, make_user: Any, number: str
) -> None:
    ann = make_user(Role.AGENT, email="ann@example.org")
    bob = make_user(Role.SUPERVISOR, email="bob@example.org")
    ann_client, _ = signed_in(app, ann)
    bob_client, bob_token = signed_in(app, bob)

    assert "Also on this ticket" not in names(ann_client, number)  # alone
    seen_by_bob = names(bob_client, number)
    assert "Also on this ticket" in seen_by_bob and "Ann" in seen_by_bob
    seen_by_ann = names(ann_client, number)
    assert "Bob" in seen_by_ann and "Ann" not in seen_by_ann and "typing" not in seen_by_ann

    drafts = f"/agent/tickets/{number}/drafts"
    bob_client.post(drafts, data={"csrf_token": bob_token, "kind": "reply", "body": "Hi"})
    assert 'Bob <em class="presence-typing">typing a reply…</em>' in names(ann_client, number)
    bob_client.post(
        drafts, data={"csrf_token": bob_token, "kind": "note", "body": "Hm", "replaces": "reply"}
    )
    assert "writing a note…" in names(ann_client, number)
    # Emptying the composer ends "typing" at once.
    bob_client.post(drafts, data={"csrf_token": bob_token, "kind": "note", "body": ""})
    now = names(ann_client, number)
    assert "Bob" in now and "typing" not in now and "writing" not in now

    # Sending ends it too: the sender's next presence poll (on the reloaded page) clears it.
    bob_client.post(drafts, data={"csrf_token": bob_token, "kind": "reply", "body": "Sent"})
    assert "typing a reply…" in names(ann_client, number)
    with app.app_context():
        from app.models import TicketDraft

        db.session.execute(delete(TicketDraft))  # as the answer's transaction does
        db.session.commit()
    names(bob_client, number)
    now = names(ann_client, number)
    assert "Bob" in now and "typing" not in now


def test_presence_lapses_by_itself_and_redis_keeps_nothing_for_long(
    app: Flask, make_user: Any, number: str, redis_server: Any, monkeypatch: Any
) -> None:
    monkeypatch.setattr(presence, "OPEN_SECONDS", 1)
    ann_client, _ = signed_in(app, make_user(Role.AGENT, email="ann@example.org"))
    bob_client, _ = signed_in(app, make_user(Role.AGENT, email="bob@example.org"))
    names(bob_client, number)
    assert "Bob" in names(ann_client, number)
    keys = redis_server.client().keys("vaultdesk:presence:*")
    assert keys and all(0 < redis_server.client().ttl(k) <= 1 for k in keys)
    time.sleep(1.3)  # Bob closed the tab: no more polls from him
    assert "Bob" not in names(ann_client, number)


def test_customers_never_see_staff_presence(app: Flask, make_user: Any) -> None:
    customer = make_user(Role.CUSTOMER)
    with app.app_context():
        from app.models import Contact

        contact = db.session.get(Contact, customer.contact_id)
        number = factories.ticket("Mine", contact=contact).number
        db.session.commit()
    agent_client, _ = signed_in(app, make_user(Role.AGENT, email="watcher@example.org"))
    names(agent_client, number)
    customer_client, _ = signed_in(app, customer, portal=True)
    assert customer_client.get(f"/agent/tickets/{number}/presence").status_code == 403
    portal_page = customer_client.get(f"/portal/tickets/{number}").get_data(as_text=True)
    assert "Watcher" not in portal_page and "presence" not in portal_page
    anonymous = app.test_client().get(f"/agent/tickets/{number}/presence")
    assert anonymous.status_code == 302


def test_without_redis_the_ticket_page_drafts_and_presence_still_work(
    tmp_path: Path, make_user: Any, number: str
) -> None:
    """Redis down (nothing listens on its port): presence is just empty."""
    agent = make_user(Role.AGENT)
    # The same database as the ``app`` fixture's, served by an app whose Redis is gone.
    instance = tmp_path / "instance"
    config = base_config(instance, f"redis://127.0.0.1:{free_port()}/0")
    broken = create_app(config)
    client = broken.test_client()
    assert sign_in(client, agent).status_code == 302
    page = client.get(f"/agent/tickets/{number}")
    assert page.status_code == 200 and 'id="presence"' in page.get_data(as_text=True)
    assert "Also on this ticket" not in names(client, number)
    token = csrf_from(page.get_data(as_text=True))
    saved = client.post(
        f"/agent/tickets/{number}/drafts",
        data={"csrf_token": token, "kind": "reply", "body": "Still saved"},
        headers=HTMX,
    )
    assert saved.status_code == 200 and "Draft saved" in saved.get_data(as_text=True)
    assert client.get(f"/agent/tickets/{number}/drafts").get_json()["drafts"][0]["body"] == (
        "Still saved"
    )
    with broken.app_context():
        db.engine.dispose()
