"""The agent's ticket page: answer (reply or note), field edits, read state, live updates."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select

from app.actor import Actor
from app.extensions import db
from app.mail.identities import add_template, save_identity
from app.mail.relay import preview_copies
from app.models import (
    AuditLog,
    EntryKind,
    OutboxMessage,
    Role,
    Status,
    StreamEntry,
    Ticket,
    TicketRead,
    User,
    VaultLink,
)
from app.tickets import add_customer_message
from tests import factories
from tests.conftest import csrf_from, run_jobs, sign_in


@pytest.fixture
def world(app: Any, make_user: Any, client: Any) -> dict[str, Any]:
    agent = make_user(Role.AGENT)
    with app.app_context():
        system = Actor.system()
        support = save_identity(
            system,
            address="contact@desk.test",
            name="Desk Support",
            signature="Desk Support\nMon-Fri",
        )
        add_template(system, support, "Thanks", "Thank you, we are on it.")
        billing = save_identity(system, address="billing@desk.test", name="Billing", language="de")
        add_template(system, billing, "Rechnung", "Die Rechnung ist korrigiert.")
        ticket = factories.ticket("VPN drops every hour")
        db.session.get(User, agent.id).timezone = "Europe/Berlin"
        db.session.commit()
        world = {
            "agent": agent,
            "number": ticket.number,
            "ticket_id": ticket.id,
            "support": support.id,
            "billing": billing.id,
            "contact": ticket.contact.email,
        }
    sign_in(client, agent)
    return world


def post_answer(client: Any, world: dict[str, Any], **fields: Any) -> Any:
    page = client.get(f"/agent/tickets/{world['number']}").get_data(as_text=True)
    files = fields.pop("files", [])
    data = {"csrf_token": csrf_from(page), **fields}
    if files:
        data["files"] = [(io.BytesIO(content), name) for content, name in files]
    return client.post(
        f"/agent/tickets/{world['number']}/answer", data=data, content_type="multipart/form-data"
    )


def test_public_reply_with_a_file_queues_a_mail_with_a_link(
    app: Any, client: Any, world: Any
) -> None:
    response = post_answer(
        client,
        world,
        visibility="public",
        identity_id=str(world["support"]),
        body="Please update the client to 5.2.",
        files=[(b"fix", "fix.txt")],
    )
    assert response.status_code == 303
    assert "Reply queued for sending with 1 file(s)." in client.get(
        response.headers["Location"]
    ).get_data(as_text=True)
    with app.app_context():
        message = db.session.scalar(select(OutboxMessage))
        assert message.subject == f"[#{world['number']}] VPN drops every hour"
        assert message.recipients["to"] == [world["contact"]]
        assert (
            message.from_address == "contact@desk.test" and message.reply_to == "contact@desk.test"
        )
        assert message.status == "queued" and message.message_id.endswith("@desk.test>")
        assert message.body_text == "Please update the client to 5.2."
        # The customer's copy: the words, their own file link, the identity's signature.
        (copy,) = preview_copies(message)
        assert copy.address == world["contact"] and copy.status == "pending"
        assert copy.text.startswith("Please update the client to 5.2.")
        assert "- fix.txt: http://localhost:5000/v/" in copy.text
        assert copy.text.rstrip().endswith("-- \nDesk Support\nMon-Fri")
        entry = db.session.get(StreamEntry, message.entry_id)
        assert entry.kind == EntryKind.MAIL_OUT.value and not entry.is_internal
        assert [f.display_name for f in entry.attachments] == ["fix.txt"]
        link = db.session.scalar(select(VaultLink))
        assert link.recipient_email == world["contact"] and link.contact_id is not None
        ticket = db.session.get(Ticket, world["ticket_id"])
        assert ticket.first_responded_at == entry.created_at
        assert db.session.scalar(select(AuditLog).where(AuditLog.action == "ticket.reply"))


def test_internal_note_sends_nothing(app: Any, client: Any, world: Any) -> None:
    assert (
        post_answer(client, world, visibility="internal", body="Known issue #42").status_code == 303
    )
    with app.app_context():
        assert db.session.scalar(select(OutboxMessage)) is None
        entry = db.session.scalar(select(StreamEntry).where(StreamEntry.kind == "note"))
        assert entry.is_internal and entry.body_text == "Known issue #42"


def test_reply_then_pending_with_follow_up_in_the_agents_zone(
    app: Any, client: Any, world: Any
) -> None:
    response = post_answer(
        client,
        world,
        visibility="public",
        identity_id=str(world["support"]),
        body="Try this and tell us.",
        keep_unassigned="on",  # else answering makes the agent manager (test_ticket_page)
        pending="on",
        pending_until="2031-03-02T09:30",
    )
    assert response.status_code == 303
    with app.app_context():
        ticket = db.session.get(Ticket, world["ticket_id"])
        assert ticket.status == Status.PENDING.value
        assert ticket.pending_until == datetime(2031, 3, 2, 8, 30, tzinfo=UTC)  # CET is UTC+1
        kinds = [e.kind for e in ticket.entries]
        assert kinds[-2:] == ["mail_out", "status_change"]
    page = client.get(f"/agent/tickets/{world['number']}")
    assert page.status_code == 200
    assert "Follow up</dt><dd><time" in page.get_data(as_text=True)
    assert "Mar 2, 2031, 9:30\u202fAM" in page.get_data(as_text=True)  # in the agent's zone


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"visibility": "public", "body": "hi"}, "Choose the address to answer from."),
        ({"visibility": "internal", "body": "  "}, "Write something or attach a file."),
        (
            {
                "visibility": "internal",
                "body": "x",
                "pending": "on",
                "pending_until": "2001-01-01T10:00",
            },
            "The follow-up date must be in the future.",
        ),
        (
            {"visibility": "internal", "body": "x", "pending_until": "soon"},
            "is not a date and time",
        ),
    ],
)
def test_answer_refusals_explain_themselves(
    app: Any, client: Any, world: Any, fields: dict[str, str], message: str
) -> None:
    response = post_answer(client, world, **fields)
    assert response.status_code == 422 and message in response.get_data(as_text=True)
    with app.app_context():
        assert len(db.session.get(Ticket, world["ticket_id"]).entries) == 1


def test_reply_without_any_recipient_is_refused(app: Any, client: Any, world: Any) -> None:
    with app.app_context():
        from sqlalchemy import delete

        from app.models import TicketRecipient

        db.session.execute(delete(TicketRecipient))
        db.session.commit()
    response = post_answer(
        client, world, visibility="public", identity_id=str(world["support"]), body="x"
    )
    assert response.status_code == 422 and "no external recipient" in response.get_data(
        as_text=True
    )


def test_templates_follow_the_chosen_identity(client: Any, world: Any) -> None:
    page = client.get(f"/agent/tickets/{world['number']}").get_data(as_text=True)
    assert (
        "Thank you, we are on it." in page
        and "Rechnung" not in page.split('id="body"')[0].split("Answer from")[1]
    )
    options = client.get(
        f"/agent/identities/templates?identity_id={world['billing']}",
        headers={"HX-Request": "true"},
    ).get_data(as_text=True)
    assert "Die Rechnung ist korrigiert." in options and "we are on it" not in options


def edit(client: Any, world: Any, **fields: str) -> Any:
    page = client.get(f"/agent/tickets/{world['number']}").get_data(as_text=True)
    version = page.split('name="version" value="')[1].split('"')[0]
    data = {"csrf_token": csrf_from(page), "version": version, **fields}
    return client.post(
        f"/agent/tickets/{world['number']}/fields", data=data, headers={"HX-Request": "true"}
    )


def test_fields_change_in_place_and_show_in_the_stream(
    app: Any, client: Any, world: Any, make_user: Any
) -> None:
    colleague = make_user(Role.AGENT)
    response = edit(
        client,
        world,
        status="in_progress",
        priority="urgent",
        tags="vpn, Network",
        assignee_id=str(colleague.id),
    )
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and 'id="ticket-header"' in html and "<html" not in html
    with app.app_context():
        ticket = db.session.get(Ticket, world["ticket_id"])
        assert (ticket.status, ticket.priority, ticket.assignee_id) == (
            "in_progress",
            "urgent",
            colleague.id,
        )
        assert [t.name for t in ticket.tags] == ["network", "vpn"]
        kinds = {e.kind for e in ticket.entries}
        assert {"status_change", "priority_change", "tags", "assignment"} <= kinds


def test_a_stale_edit_gets_a_conflict_not_an_overwrite(app: Any, client: Any, world: Any) -> None:
    page = client.get(f"/agent/tickets/{world['number']}").get_data(as_text=True)
    stale_version = page.split('name="version" value="')[1].split('"')[0]
    assert edit(client, world, priority="high").status_code == 200  # a colleague, meanwhile
    response = client.post(
        f"/agent/tickets/{world['number']}/fields",
        data={"csrf_token": csrf_from(page), "version": stale_version, "priority": "low"},
        headers={"HX-Request": "true"},
    )
    assert response.status_code == 409
    assert "Someone else changed this ticket" in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.get(Ticket, world["ticket_id"]).priority == "high"


def test_forbidden_transition_is_a_409_with_the_reason(client: Any, world: Any) -> None:
    assert edit(client, world, status="open").status_code == 200
    response = edit(client, world, status="new")
    assert response.status_code == 409
    assert "A ticket cannot go from Open to New." in response.get_data(as_text=True)


def test_read_state_and_inbox_moves(app: Any, client: Any, world: Any) -> None:
    agent_id = world["agent"].id
    with app.app_context():
        ticket = db.session.get(Ticket, world["ticket_id"])
        ticket.assignee_id = agent_id
        db.session.commit()
    page = client.get(f"/agent/tickets/{world['number']}").get_data(as_text=True)
    assert "unread-badge" in page and 'hx-trigger="load delay:3s"' in page
    token = csrf_from(page)
    assert (
        client.post(
            f"/agent/tickets/{world['number']}/read",
            data={"csrf_token": token},
            headers={"HX-Request": "true"},
        ).status_code
        == 204
    )
    assert "unread-badge" not in client.get(f"/agent/tickets/{world['number']}").get_data(
        as_text=True
    )
    with app.app_context():
        assert db.session.scalar(select(TicketRead).where(TicketRead.user_id == agent_id))
        add_customer_message(
            db.session.get(Ticket, world["ticket_id"]),
            Actor.customer(name="C", email=world["contact"]),
            "Still broken",
        )
        db.session.commit()
    assert "unread-badge" in client.get(f"/agent/tickets/{world['number']}").get_data(as_text=True)
    removed = client.post(
        f"/agent/tickets/{world['number']}/inbox",
        data={"csrf_token": token, "in_inbox": "0"},
        headers={"HX-Request": "true"},
    )
    assert removed.status_code == 200 and "Move to Inbox" in removed.get_data(as_text=True)
    with app.app_context():
        ticket = db.session.get(Ticket, world["ticket_id"])
        assert not ticket.in_inbox
        assert (
            ticket.entries[-1].kind == "inbox"
            and ticket.entries[-1].body_text == "Removed from the inbox."
        )


def test_live_region_answers_304_until_something_changes(app: Any, client: Any, world: Any) -> None:
    url = f"/agent/tickets/{world['number']}/live"
    first = client.get(url, headers={"HX-Request": "true"})
    etag = first.headers["ETag"]
    assert first.status_code == 200 and 'id="ticket-live"' in first.get_data(as_text=True)
    assert client.get(url, headers={"HX-Request": "true", "If-None-Match": etag}).status_code == 304
    with app.app_context():
        add_customer_message(
            db.session.get(Ticket, world["ticket_id"]),
            Actor.customer(name="C", email=world["contact"]),
            "New detail: it is the Wi-Fi",
        )
        db.session.commit()
    fresh = client.get(url, headers={"HX-Request": "true", "If-None-Match": etag})
    assert fresh.status_code == 200 and "New detail: it is the Wi-Fi" in fresh.get_data(
        as_text=True
    )


def test_customers_and_compliance_cannot_answer(app: Any, make_user: Any, world: Any) -> None:
    """With a valid CSRF token, so that the role rule is what refuses, not the token check."""
    for role, portal, home in (
        (Role.CUSTOMER, True, "/portal/"),
        (Role.COMPLIANCE, False, "/compliance/"),
    ):
        other = app.test_client()
        sign_in(other, make_user(role), portal=portal)
        token = csrf_from(other.get(home).get_data(as_text=True))
        for method, path in (
            ("get", ""),
            ("post", "/answer"),
            ("post", "/fields"),
            ("get", "/live"),
        ):
            response = getattr(other, method)(
                f"/agent/tickets/{world['number']}{path}",
                data={"csrf_token": token, "status": "closed"} if method == "post" else None,
                headers={"X-CSRFToken": token},
            )
            assert response.status_code == 403, (role, path)
            assert "Your account cannot open this page." in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.get(Ticket, world["ticket_id"]).status == "new"


def test_admin_manages_identities_and_templates(app: Any, make_user: Any) -> None:
    admin = app.test_client()
    sign_in(admin, make_user(Role.ADMIN))
    page = admin.get("/admin/identities").get_data(as_text=True)
    token = csrf_from(page)
    created = admin.post(
        "/admin/identities",
        data={
            "csrf_token": token,
            "address": "Sales@Desk.test",
            "name": "Sales",
            "language": "en",
            "is_default": "on",
        },
    )
    assert created.status_code == 303
    listing = admin.get("/admin/identities").get_data(as_text=True)
    assert "Sales &lt;sales@desk.test&gt;" in listing
    duplicate = admin.post(
        "/admin/identities", data={"csrf_token": token, "address": "sales@desk.test", "name": "x"}
    )
    assert duplicate.status_code == 409
    with app.app_context():
        from app.models import SenderIdentity

        defaults = db.session.scalars(select(SenderIdentity).where(SenderIdentity.is_default)).all()
        assert [d.address for d in defaults] == ["sales@desk.test"]
        sales_id = defaults[0].id
    added = admin.post(
        f"/admin/identities/{sales_id}/templates",
        data={"csrf_token": token, "name": "Offer", "body": "Here is our offer."},
    )
    assert added.status_code == 303
    agent = app.test_client()
    sign_in(agent, make_user(Role.AGENT))
    assert agent.get("/admin/identities").status_code == 403


def test_reassigning_follows_the_new_managers_team_unless_a_team_is_chosen(
    app: Any, client: Any, world: Any, make_user: Any
) -> None:
    from app.models import Team

    second = make_user(Role.AGENT)
    with app.app_context():
        first_line, tech = Team(name="First line"), Team(name="Tech")
        db.session.add_all([first_line, tech])
        db.session.get(User, second.id).team = tech
        db.session.get(Ticket, world["ticket_id"]).team = first_line
        db.session.commit()
        first_line_id, tech_id = first_line.id, tech.id
    edit(client, world, assignee_id=str(second.id), team_id=str(first_line_id))
    with app.app_context():
        ticket = db.session.get(Ticket, world["ticket_id"])
        assert (ticket.assignee_id, ticket.team_id) == (second.id, tech_id)
    edit(client, world, assignee_id="", team_id=str(first_line_id))
    with app.app_context():
        ticket = db.session.get(Ticket, world["ticket_id"])
        assert ticket.assignee_id is None and ticket.team_id == first_line_id
        assert ticket.waiting_for_dispatch


def test_leads_due_dates_and_a_reassignment_note(
    app: Any, client: Any, world: Any, make_user: Any
) -> None:
    from datetime import timedelta

    from app.models import Contact
    from app.models.types import utcnow

    other = make_user(Role.AGENT)
    with app.app_context():
        # Leads are contacts of the ticket's own account (app/tickets/leads.py).
        account = db.session.get(Ticket, world["ticket_id"]).account
        first = Contact(name="Ina Prospect", email="ina@nordwind.test", account=account)
        second = Contact(name="Otto Lead", email="otto@nordwind.test", account=account)
        db.session.add_all([first, second])
        db.session.get(Ticket, world["ticket_id"]).resolution_due_at = utcnow() - timedelta(hours=2)
        db.session.commit()
        lead_ids = [first.id, second.id]
    page = client.get(f"/agent/tickets/{world['number']}").get_data(as_text=True)
    assert "Resolution due" in page and "Overdue" in page
    response = client.post(
        f"/agent/tickets/{world['number']}/fields",
        data={
            "csrf_token": csrf_from(page),
            "version": page.split('name="version" value="')[1].split('"')[0],
            "leads_shown": "1",
            "lead_ids": [str(i) for i in lead_ids],
            "assignee_id": str(other.id),
            "note": "You know this customer",
        },
        headers={"HX-Request": "true"},
    )
    assert response.status_code == 200
    with app.app_context():
        ticket = db.session.get(Ticket, world["ticket_id"])
        assert sorted(lead.name for lead in ticket.leads) == ["Ina Prospect", "Otto Lead"]
        assignment = [e for e in ticket.entries if e.kind == "assignment"][-1]
        assert "You know this customer" in assignment.body_text
        leads_entry = [e for e in ticket.entries if e.body_text.startswith("Leads added")]
        assert leads_entry and leads_entry[0].is_internal
    again = client.get(f"/agent/tickets/{world['number']}").get_data(as_text=True)
    client.post(
        f"/agent/tickets/{world['number']}/fields",
        data={"csrf_token": csrf_from(again), "leads_shown": "1", "lead_ids": [str(lead_ids[0])]},
    )
    with app.app_context():
        assert [lead.name for lead in db.session.get(Ticket, world["ticket_id"]).leads] == [
            "Ina Prospect"
        ]


def test_agent_invites_the_ticket_contact_to_the_portal(app: Any, client: Any, world: Any) -> None:
    from pathlib import Path

    page = client.get(f"/agent/tickets/{world['number']}").get_data(as_text=True)
    assert "Invite to the portal" in page
    form = page.split('action="/agent/contacts/')[1]
    contact_id = form.split("/")[0]
    response = client.post(
        f"/agent/contacts/{contact_id}/invite",
        data={"csrf_token": csrf_from(page), "next": f"/agent/tickets/{world['number']}"},
    )
    assert (
        response.status_code == 303
        and response.headers["Location"] == f"/agent/tickets/{world['number']}"
    )
    run_jobs(app)  # the invitation goes out from the mail queue
    mails = list((Path(app.instance_path) / "outbox").glob("*.eml"))
    assert len(mails) == 1 and world["contact"] in mails[0].read_text()
    with app.app_context():
        user = db.session.scalar(select(User).where(User.email == world["contact"]))
        assert user is not None and user.password_hash is None and user.has_role(Role.CUSTOMER)
