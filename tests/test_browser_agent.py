"""An agent's working day in real Chromium: inbox, ticket, reply, note, pending, assign, live."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from app.actor import Actor
from app.extensions import db
from app.mail.identities import save_identity
from app.mail.relay import preview_copies
from app.models import OutboxMessage, Role, Ticket
from app.tickets import add_customer_message
from tests import factories

pytestmark = pytest.mark.browser
ARTIFACTS = Path(__file__).parent / "artifacts"


def test_agent_answers_pends_assigns_and_sees_the_customer_live(
    app: Any, browser: Any, live_server: str, make_user: Any, tmp_path: Path
) -> None:
    agent = make_user(Role.AGENT)
    colleague = make_user(Role.AGENT, email="colleague@example.org")
    with app.app_context():
        save_identity(Actor.system(), address="contact@desk.test", name="Desk Support")
        ticket = factories.ticket("Printer prints blank pages")
        number, ticket_id, contact = ticket.number, ticket.id, ticket.contact.email
        db.session.commit()
    attachment = tmp_path / "driver-notes.txt"
    attachment.write_text("Install driver 4.2, then restart the spooler.\n")
    ARTIFACTS.mkdir(exist_ok=True)

    page = browser.new_page()
    page.goto(live_server + "/login")
    page.get_by_label("Email address").fill(agent.email)
    page.get_by_label("Password").fill(agent.password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(live_server + "/agent/")
    page.screenshot(path=str(ARTIFACTS / "agent-inbox.png"), full_page=True)
    page.get_by_role("link", name="Printer prints blank pages").click()
    page.wait_for_url(f"{live_server}/agent/tickets/{number}")

    # A public reply with a file, from the default identity.
    page.get_by_label("Public reply (mailed to the customer)").check()
    page.get_by_label("Message").fill("Please try the driver in the attached notes.")
    page.get_by_label("Files (stored encrypted in the vault;").set_input_files(str(attachment))
    page.get_by_role("button", name="Send").click()
    page.get_by_text("Reply queued for sending with 1 file(s).").wait_for()
    page.get_by_role("link", name="driver-notes.txt").wait_for()

    # An internal note, then a reply that sets Pending with a follow-up date.
    page.get_by_label("Internal note (only staff see it)").check()
    page.get_by_label("Message").fill("Customer uses the old spooler; see KB-17.")
    page.get_by_role("button", name="Send").click()
    page.get_by_text("Note added.").wait_for()
    page.get_by_label("Public reply (mailed to the customer)").check()
    page.get_by_label("Message").fill("Waiting for your confirmation.")
    page.get_by_label("Reply sent, now waiting for the customer (Pending)").check()
    page.get_by_label("Follow up on (optional)").fill("2031-05-04T10:00")
    page.get_by_role("button", name="Send").click()
    page.get_by_text("Reply queued for sending.").wait_for()
    assert page.locator("#ticket-header select[name=status]").input_value() == "pending"

    # Assign in place: the header swaps, the stream shows it.
    page.locator("#ticket-header select[name=assignee_id]").select_option(
        label=colleague.email.split("@")[0].title()
    )
    page.locator(".entry-assignment").last.wait_for()

    # The customer writes; the page shows it without a reload, keeping the draft.
    page.get_by_label("Message").fill("A draft I am still typing")
    with app.app_context():
        add_customer_message(
            db.session.get(Ticket, ticket_id),
            Actor.customer(name="Customer", email=contact),
            "It works now, thanks!",
        )
        db.session.commit()
    page.get_by_text("It works now, thanks!").wait_for(timeout=15_000)
    assert page.get_by_label("Message").input_value() == "A draft I am still typing"
    assert page.locator("#ticket-header select[name=status]").input_value() == "open"
    page.screenshot(path=str(ARTIFACTS / "agent-ticket.png"), full_page=True)

    with app.app_context():
        ticket = db.session.get(Ticket, ticket_id)
        assert ticket.assignee.email == colleague.email
        assert ticket.pending_until is None  # the customer's answer reopened it
        every = db.session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)).all()
        mails = [m for m in every if m.auto_submitted is None]
        assert len(mails) == 2
        # The assignment told the colleague by mail (notifications), no one else.
        told = [m.recipients["to"] for m in every if m.auto_submitted == "auto-generated"]
        assert told == [[colleague.email.lower()]]
        assert "driver-notes.txt: http" in preview_copies(mails[0])[0].text
    page.close()


def test_agent_bulk_changes_two_tickets_from_a_list(
    app: Any, browser: Any, live_server: str, make_user: Any
) -> None:
    agent = make_user(Role.AGENT)
    with app.app_context():
        first, second, third = (factories.ticket(f"Bulk {n}") for n in ("one", "two", "three"))
        db.session.commit()
        numbers = [first.number, second.number, third.number]
    page = browser.new_page()
    page.goto(live_server + "/login")
    page.get_by_label("Email address").fill(agent.email)
    page.get_by_label("Password").fill(agent.password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(live_server + "/agent/")
    page.goto(live_server + "/agent/list/new")
    page.get_by_label(f"Select {numbers[0]}").check()
    page.get_by_label(f"Select {numbers[1]}").check()
    bulk = page.locator("#bulk-form fieldset.bulk-actions")
    bulk.locator("select[name=action]").select_option("status")
    bulk.locator("select[name=status]").select_option("in_progress")
    bulk.get_by_role("button", name="Apply").click()
    page.get_by_role("status").first.wait_for()
    page.screenshot(path=str(ARTIFACTS / "agent-bulk.png"), full_page=True)
    with app.app_context():
        statuses = {
            t.number: t.status
            for t in db.session.scalars(select(Ticket).where(Ticket.number.in_(numbers)))
        }
    assert statuses == {numbers[0]: "in_progress", numbers[1]: "in_progress", numbers[2]: "new"}
    page.close()
