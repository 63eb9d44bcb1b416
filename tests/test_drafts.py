"""Composer drafts: per ticket, agent and kind; private to their author; gone once sent."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from sqlalchemy import func, select

from app.actor import Actor
from app.errors import InvalidInput
from app.extensions import db
from app.mail.identities import save_identity
from app.models import Role, TicketDraft, User
from app.models.drafts import DraftKind
from app.tickets import drafts
from app.tickets.replies import answer
from tests import factories
from tests.conftest import csrf_from, sign_in

HTMX = {"HX-Request": "true"}


# --- the domain -------------------------------------------------------------------------


def test_a_draft_per_ticket_agent_and_kind_blank_removes_it(ctx: None) -> None:
    ticket, other = factories.ticket("One"), factories.ticket("Two")
    me, colleague = factories.staff_user(), factories.staff_user()
    drafts.save(ticket, me, DraftKind.REPLY, "Dear customer")
    drafts.save(ticket, me, DraftKind.NOTE, "Check the logs")
    drafts.save(ticket, colleague, DraftKind.REPLY, "Their text")
    drafts.save(other, me, DraftKind.REPLY, "Elsewhere")
    mine = {d.kind: d.body for d in drafts.drafts_of(ticket, me)}
    assert mine == {"reply": "Dear customer", "note": "Check the logs"}
    assert [d.body for d in drafts.drafts_of(ticket, colleague)] == ["Their text"]

    again = drafts.save(ticket, me, DraftKind.REPLY, "Dear customer, thanks")
    assert again is not None and again.body == "Dear customer, thanks"
    assert drafts.save(ticket, me, DraftKind.REPLY, "   \n") is None
    assert [d.kind for d in drafts.drafts_of(ticket, me)] == ["note"]
    assert [d.body for d in drafts.drafts_of(ticket, colleague)] == ["Their text"]


def test_switching_reply_and_note_moves_the_text_and_keeps_the_identity_for_replies(
    ctx: None,
) -> None:
    ticket, me = factories.ticket(), factories.staff_user()
    identity = save_identity(Actor.system(), address="help@desk.test", name="Help")
    drafts.save(ticket, me, DraftKind.REPLY, "Typed as a reply", identity=identity)
    assert drafts.draft_of(ticket, me, DraftKind.REPLY).identity_id == identity.id
    moved = drafts.save(ticket, me, DraftKind.NOTE, "Typed as a reply", replaces=DraftKind.REPLY)
    assert moved is not None and moved.identity_id is None  # a note has no sender
    assert [d.kind for d in drafts.drafts_of(ticket, me)] == ["note"]


def test_a_runaway_draft_is_refused(ctx: None) -> None:
    with pytest.raises(InvalidInput):
        drafts.save(factories.ticket(), factories.staff_user(), DraftKind.NOTE, "x" * 100_001)


def test_sending_drops_only_my_draft_of_that_kind_and_a_refusal_keeps_it(ctx: None) -> None:
    ticket = factories.ticket()
    me, colleague = factories.staff_user(), factories.staff_user()
    drafts.save(ticket, me, DraftKind.NOTE, "My note")
    drafts.save(ticket, me, DraftKind.REPLY, "My reply")
    drafts.save(ticket, colleague, DraftKind.NOTE, "Their note")
    with pytest.raises(InvalidInput):
        answer(ticket, Actor.staff(me), "  ", internal=True)
    assert len(drafts.drafts_of(ticket, me)) == 2

    answer(ticket, Actor.staff(me), "My note", internal=True)
    assert [d.kind for d in drafts.drafts_of(ticket, me)] == ["reply"]
    assert [d.body for d in drafts.drafts_of(ticket, colleague)] == ["Their note"]


# --- over HTTP --------------------------------------------------------------------------


@pytest.fixture
def desk(app: Flask, make_user: Any) -> dict[str, Any]:
    agent, colleague = make_user(Role.AGENT), make_user(Role.AGENT)
    customer = make_user(Role.CUSTOMER)
    with app.app_context():
        identity = save_identity(Actor.system(), address="contact@desk.test", name="Desk")
        ticket = factories.ticket("Drafted")
        db.session.commit()
        return {
            "agent": agent,
            "colleague": colleague,
            "customer": customer,
            "number": ticket.number,
            "ticket_id": ticket.id,
            "identity_id": identity.id,
        }


def signed_in(app: Flask, person: Any, *, portal: bool = False) -> tuple[Any, str]:
    client = app.test_client()
    assert sign_in(client, person, portal=portal).status_code == 302
    home = "/portal/" if portal else "/agent/"
    return client, csrf_from(client.get(home).get_data(as_text=True))


def stored(app: Flask, ticket_id: int) -> dict[tuple[int, str], str]:
    with app.app_context():
        rows = db.session.scalars(select(TicketDraft).where(TicketDraft.ticket_id == ticket_id))
        return {(d.user_id, d.kind): d.body for d in rows}


def test_the_page_saves_and_restores_my_draft_with_the_time_in_my_zone(
    app: Flask, desk: dict[str, Any]
) -> None:
    with app.app_context():
        db.session.get(User, desk["agent"].id).timezone = "America/New_York"
        db.session.commit()
    client, token = signed_in(app, desk["agent"])
    url = f"/agent/tickets/{desk['number']}/drafts"
    page = client.get(f"/agent/tickets/{desk['number']}").get_data(as_text=True)
    assert f'data-drafts="{url}"' in page and 'id="draft-status"' in page

    saved = client.post(
        url,
        data={
            "csrf_token": token,
            "kind": "reply",
            "body": "Hello, about your printer",
            "identity_id": str(desk["identity_id"]),
        },
        headers=HTMX,
    )
    assert saved.status_code == 200
    with app.app_context():
        when = db.session.scalar(select(TicketDraft.updated_at))
    local = when.astimezone(ZoneInfo("America/New_York")).strftime("%H:%M")
    assert f"Draft saved {local}" in saved.get_data(as_text=True)

    restored = client.get(url).get_json()["drafts"]
    assert [(d["kind"], d["body"], d["identity_id"]) for d in restored] == [
        ("reply", "Hello, about your printer", desk["identity_id"])
    ]
    assert f"Draft saved {local}" in restored[0]["status"]
    assert datetime.fromisoformat(restored[0]["updated_at"]) <= datetime.now(UTC)


def test_a_colleague_never_sees_or_overwrites_my_draft(app: Flask, desk: dict[str, Any]) -> None:
    mine, my_token = signed_in(app, desk["agent"])
    theirs, their_token = signed_in(app, desk["colleague"])
    url = f"/agent/tickets/{desk['number']}/drafts"
    mine.post(url, data={"csrf_token": my_token, "kind": "note", "body": "Secret plan"})

    assert theirs.get(url).get_json() == {"drafts": []}
    # Naming me in the form changes nothing: the server only ever uses the session's user.
    theirs.post(
        url,
        data={
            "csrf_token": their_token,
            "kind": "note",
            "body": "Overwritten?",
            "user_id": str(desk["agent"].id),
        },
    )
    assert stored(app, desk["ticket_id"]) == {
        (desk["agent"].id, "note"): "Secret plan",
        (desk["colleague"].id, "note"): "Overwritten?",
    }
    assert [d["body"] for d in mine.get(url).get_json()["drafts"]] == ["Secret plan"]


def test_customers_strangers_and_forged_posts_cannot_reach_drafts(
    app: Flask, desk: dict[str, Any]
) -> None:
    url = f"/agent/tickets/{desk['number']}/drafts"
    agent, _ = signed_in(app, desk["agent"])
    agent.post(url, data={"kind": "note", "body": "No token"})  # no CSRF token
    customer, token = signed_in(app, desk["customer"], portal=True)
    assert customer.get(url).status_code == 403
    assert (
        customer.post(url, data={"csrf_token": token, "kind": "note", "body": "x"}).status_code
        == 403
    )
    anonymous = app.test_client().get(url)
    assert anonymous.status_code == 302 and "/login" in anonymous.headers["Location"]
    assert stored(app, desk["ticket_id"]) == {}


def test_a_bad_kind_is_refused_with_a_sentence_and_an_unknown_ticket_is_404(
    app: Flask, desk: dict[str, Any]
) -> None:
    client, token = signed_in(app, desk["agent"])
    refused = client.post(
        f"/agent/tickets/{desk['number']}/drafts",
        data={"csrf_token": token, "kind": "letter", "body": "x"},
        headers=HTMX,
    )
    assert refused.status_code == 422 and "is not a draft kind" in refused.get_data(as_text=True)
    assert refused.headers["HX-Retarget"] == "#flash"
    assert client.get("/agent/tickets/T-000000/drafts").status_code == 404


def test_sending_from_the_composer_discards_the_draft_in_the_same_request(
    app: Flask, desk: dict[str, Any]
) -> None:
    client, token = signed_in(app, desk["agent"])
    url = f"/agent/tickets/{desk['number']}/drafts"
    client.post(url, data={"csrf_token": token, "kind": "reply", "body": "Almost done"})
    client.post(url, data={"csrf_token": token, "kind": "note", "body": "Keep me"})
    sent = client.post(
        f"/agent/tickets/{desk['number']}/answer",
        data={
            "csrf_token": token,
            "visibility": "public",
            "identity_id": str(desk["identity_id"]),
            "body": "Almost done, and sent",
        },
        content_type="multipart/form-data",
        headers=HTMX,
    )
    assert sent.status_code == 204
    assert stored(app, desk["ticket_id"]) == {(desk["agent"].id, "note"): "Keep me"}
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(TicketDraft)) == 1
