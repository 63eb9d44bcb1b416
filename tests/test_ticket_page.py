"""The agent's ticket page: answering takes the ticket, leads from the account only,
conflicts beside the fields, the poll carrying the facts, "assign to me"."""

from __future__ import annotations

import io
from typing import Any

import pytest
from sqlalchemy import select

from app.actor import Actor
from app.extensions import db
from app.mail.identities import save_identity
from app.models import AuditLog, Contact, Role, Ticket, User
from app.models.people import Account
from app.tickets import add_customer_message
from app.tickets.inbox import is_unread
from tests import factories
from tests.conftest import csrf_from, sign_in


@pytest.fixture
def desk(app: Any, make_user: Any, client: Any) -> dict[str, Any]:
    agent = make_user(Role.AGENT)
    with app.app_context():
        identity = save_identity(Actor.system(), address="contact@desk.test", name="Desk")
        ticket = factories.ticket("Scanner jams")
        add_customer_message(
            ticket, Actor.customer(name="C", email=ticket.contact.email), "Still jammed."
        )
        other_account = Account(name="Elsewhere AG")
        stranger = Contact(name="Eve Stranger", email="eve@elsewhere.test", account=other_account)
        colleague = Contact(name="Eva Colleague", email="eva@acme.test", account=ticket.account)
        db.session.add_all([other_account, stranger, colleague])
        db.session.commit()
        desk = {
            "agent": agent,
            "number": ticket.number,
            "ticket_id": ticket.id,
            "identity": identity.id,
            "stranger": stranger.id,
            "colleague": colleague.id,
        }
    sign_in(client, agent)
    return desk


def page_of(client: Any, desk: dict[str, Any]) -> str:
    return client.get(f"/agent/tickets/{desk['number']}").get_data(as_text=True)


def version_in(html: str) -> str:
    return html.split('name="version" value="')[1].split('"')[0]


def reply(client: Any, desk: dict[str, Any], **fields: str) -> Any:
    data = {
        "csrf_token": csrf_from(page_of(client, desk)),
        "visibility": "public",
        "identity_id": str(desk["identity"]),
        "body": "We are on it.",
        **fields,
    }
    return client.post(
        f"/agent/tickets/{desk['number']}/answer",
        data={**data, "files": [(io.BytesIO(b""), "")]},
        content_type="multipart/form-data",
    )


def test_a_public_reply_makes_the_replier_manager_and_clears_their_unread(
    app: Any, client: Any, desk: dict[str, Any]
) -> None:
    with app.app_context():
        ticket = db.session.get(Ticket, desk["ticket_id"])
        assert ticket.assignee_id is None
        assert is_unread(ticket, db.session.get(User, desk["agent"].id))
    assert reply(client, desk).status_code == 303
    with app.app_context():
        ticket = db.session.get(Ticket, desk["ticket_id"])
        me = db.session.get(User, desk["agent"].id)
        assert ticket.assignee_id == me.id and not ticket.waiting_for_dispatch
        assert not is_unread(ticket, me)
        assignment = [e for e in ticket.entries if e.kind == "assignment"]
        assert assignment and assignment[-1].author_id == me.id
        audit = db.session.scalars(
            select(AuditLog).where(
                AuditLog.action == "ticket.assign", AuditLog.ticket_id == ticket.id
            )
        ).all()
        assert [row.actor_id for row in audit] == [me.id]
    assert "unread</span>" not in page_of(client, desk)


def test_keep_unassigned_and_internal_notes_do_not_take_the_ticket(
    app: Any, client: Any, desk: dict[str, Any]
) -> None:
    assert reply(client, desk, keep_unassigned="on").status_code == 303
    assert reply(client, desk, visibility="internal", body="Just a note").status_code == 303
    with app.app_context():
        ticket = db.session.get(Ticket, desk["ticket_id"])
        assert ticket.assignee_id is None
        assert not [e for e in ticket.entries if e.kind == "assignment"]


def test_a_reply_leaves_a_colleagues_ticket_with_the_colleague(
    app: Any, client: Any, desk: dict[str, Any], make_user: Any
) -> None:
    colleague = make_user(Role.AGENT)
    with app.app_context():
        from app.tickets import assign

        ticket = db.session.get(Ticket, desk["ticket_id"])
        assign(ticket, Actor.system(), assignee=db.session.get(User, colleague.id))
        db.session.commit()
    html = page_of(client, desk)
    assert 'name="keep_unassigned"' not in html  # only offered while nobody manages it
    assert reply(client, desk).status_code == 303
    with app.app_context():
        assert db.session.get(Ticket, desk["ticket_id"]).assignee_id == colleague.id


def test_lead_search_offers_only_contacts_of_the_tickets_account(
    client: Any, desk: dict[str, Any]
) -> None:
    response = client.get(
        f"/agent/tickets/{desk['number']}/leads?q=ev", headers={"HX-Request": "true"}
    )
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and html.lstrip().startswith('<div id="lead-results"')
    assert "Eva Colleague" in html and "Eve Stranger" not in html
    everyone = client.get(f"/agent/tickets/{desk['number']}").get_data(as_text=True)
    assert "Eva Colleague" in everyone and "Eve Stranger" not in everyone


def test_a_lead_from_another_account_is_refused(
    app: Any, client: Any, desk: dict[str, Any]
) -> None:
    html = page_of(client, desk)
    forged = client.post(
        f"/agent/tickets/{desk['number']}/fields",
        data={
            "csrf_token": csrf_from(html),
            "version": version_in(html),
            "leads_shown": "1",
            "lead_ids": [str(desk["stranger"])],
        },
        headers={"HX-Request": "true"},
    )
    assert forged.status_code == 422
    assert "Eve Stranger is not a contact of this ticket" in forged.get_data(as_text=True)
    with app.app_context():
        assert db.session.get(Ticket, desk["ticket_id"]).leads == []
    ok = client.post(
        f"/agent/tickets/{desk['number']}/fields",
        data={
            "csrf_token": csrf_from(html),
            "version": version_in(html),
            "leads_shown": "1",
            "lead_ids": [str(desk["colleague"])],
        },
        headers={"HX-Request": "true"},
    )
    assert ok.status_code == 200
    with app.app_context():
        ticket = db.session.get(Ticket, desk["ticket_id"])
        assert [c.name for c in ticket.leads] == ["Eva Colleague"]
        assert db.session.scalar(
            select(AuditLog).where(
                AuditLog.action == "ticket.leads", AuditLog.ticket_id == ticket.id
            )
        )


def test_a_conflict_comes_back_inside_the_facts_beside_the_fields(
    client: Any, desk: dict[str, Any]
) -> None:
    html = page_of(client, desk)
    stale = str(int(version_in(html)) - 1)
    response = client.post(
        f"/agent/tickets/{desk['number']}/fields",
        data={"csrf_token": csrf_from(html), "version": stale, "priority": "high"},
        headers={"HX-Request": "true"},
    )
    body = response.get_data(as_text=True)
    assert response.status_code == 409
    assert body.lstrip().startswith('<section class="panel ticket-facts" id="ticket-header"')
    error_at, form_at = body.index('id="fields-error"'), body.index('id="ticket-fields"')
    assert error_at < form_at and "Someone else changed this ticket" in body
    assert "<html" not in body


def test_the_poll_brings_the_stream_and_the_facts_out_of_band(
    app: Any, client: Any, desk: dict[str, Any]
) -> None:
    with app.app_context():
        ticket = db.session.get(Ticket, desk["ticket_id"])
        add_customer_message(
            ticket, Actor.customer(name="C", email=ticket.contact.email), "Any news?"
        )
        db.session.commit()
        version = ticket.version
    response = client.get(f"/agent/tickets/{desk['number']}/live", headers={"HX-Request": "true"})
    body = response.get_data(as_text=True)
    assert response.status_code == 200 and body.lstrip().startswith('<div id="ticket-live"')
    assert "Any news?" in body
    assert 'id="ticket-header" data-live-guard' in body and 'hx-swap-oob="true"' in body
    assert f'name="version" value="{version}"' in body
    assert 'id="composer"' not in body  # what the agent types is never replaced


def test_assign_to_me_and_its_conflict(app: Any, client: Any, desk: dict[str, Any]) -> None:
    html = page_of(client, desk)
    stale = client.post(
        f"/agent/tickets/{desk['number']}/assign-me",
        data={"csrf_token": csrf_from(html), "version": str(int(version_in(html)) - 1)},
        headers={"HX-Request": "true"},
    )
    assert stale.status_code == 409
    done = client.post(
        f"/agent/tickets/{desk['number']}/assign-me",
        data={"csrf_token": csrf_from(html), "version": version_in(html)},
        headers={"HX-Request": "true"},
    )
    assert done.status_code == 200 and 'id="ticket-header"' in done.get_data(as_text=True)
    with app.app_context():
        assert db.session.get(Ticket, desk["ticket_id"]).assignee_id == desk["agent"].id


def test_the_page_has_two_columns_a_customer_card_and_the_presence_spot(
    app: Any, client: Any, desk: dict[str, Any]
) -> None:
    with app.app_context():
        ticket = db.session.get(Ticket, desk["ticket_id"])
        earlier = factories.ticket("Old scanner issue", contact=ticket.contact)
        earlier_number = earlier.number
        db.session.commit()
    html = page_of(client, desk)
    main, side = html.index('class="ticket-main"'), html.index('class="ticket-side"')
    stream, composer = html.index('class="stream"'), html.index('id="composer"')
    assert main < stream < composer < side  # the composer sits right under the stream
    for part in ('id="ticket-header"', 'id="ticket-customer"', 'id="ticket-tasks"'):
        assert side < html.index(part)
    assert earlier_number in html[html.index('id="ticket-customer"') :]
    assert 'id="shortcuts"' in html
