"""Drafts and presence in real Chromium: two agents, two browser contexts, one ticket."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from app.actor import Actor
from app.extensions import db
from app.mail.identities import save_identity
from app.models import Role, TicketDraft
from tests import factories

pytestmark = pytest.mark.browser
ARTIFACTS = Path(__file__).parent / "artifacts"


def open_ticket(
    browser: Any, live_server: str, person: Any, number: str, subject: str | None = None
) -> Any:
    """A fresh browser context (another device) signed in as ``person`` on the ticket.

    With ``subject`` the ticket is opened from the inbox (a boosted navigation, no load).
    """
    page = browser.new_context().new_page()
    page.goto(live_server + "/login")
    page.get_by_label("Email address").fill(person.email)
    page.get_by_label("Password").fill(person.password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(live_server + "/agent/")
    if subject:
        page.get_by_role("link", name=subject).click()
        page.wait_for_url(f"{live_server}/agent/tickets/{number}")
    else:
        page.goto(f"{live_server}/agent/tickets/{number}")
    return page


def wait_until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "not reached in time"
        time.sleep(0.1)


def drafts_in_db(app: Any) -> list[tuple[int, str, str]]:
    with app.app_context():
        rows = db.session.scalars(select(TicketDraft)).all()
        return sorted((d.user_id, d.kind, d.body) for d in rows)


def test_a_draft_survives_a_reload_and_another_device_and_goes_when_sent(
    app: Any, browser: Any, live_server: str, make_user: Any
) -> None:
    agent = make_user(Role.AGENT)
    with app.app_context():
        save_identity(Actor.system(), address="contact@desk.test", name="Desk Support")
        number = factories.ticket("Toner everywhere").number
        db.session.commit()

    page = open_ticket(browser, live_server, agent, number, "Toner everywhere")
    page.get_by_label("Message").press_sequentially("Please send a photo of the tray.", delay=5)
    page.get_by_text("Draft saved").wait_for()
    page.reload()  # at once: the last save may still be waiting for the pause in typing
    expect(page.get_by_label("Message")).to_have_value("Please send a photo of the tray.")
    page.get_by_text("Draft saved").wait_for()
    assert drafts_in_db(app) == [(agent.id, "reply", "Please send a photo of the tray.")]

    # The same agent on another device finds it too; switching to a note takes the text along.
    laptop = open_ticket(browser, live_server, agent, number)
    expect(laptop.get_by_label("Message")).to_have_value("Please send a photo of the tray.")
    laptop.get_by_label("Internal note (only staff see it)").check()
    wait_until(
        lambda: drafts_in_db(app) == [(agent.id, "note", "Please send a photo of the tray.")]
    )
    laptop.reload()
    expect(laptop.get_by_label("Internal note (only staff see it)")).to_be_checked()
    expect(laptop.get_by_label("Message")).to_have_value("Please send a photo of the tray.")

    # Sent: the draft is gone, from the database and from the next load.
    laptop.get_by_role("button", name="Send").click()
    laptop.get_by_text("Note added.").wait_for()
    assert laptop.get_by_label("Message").input_value() == ""
    assert drafts_in_db(app) == []
    with page.expect_response(lambda r: r.url.endswith(f"/tickets/{number}/drafts")):
        page.reload()  # the restore request has answered, with nothing
    page.wait_for_timeout(200)
    assert page.get_by_label("Message").input_value() == ""
    page.context.close()
    laptop.context.close()


def test_two_agents_see_each_others_presence_and_typing(
    app: Any, browser: Any, live_server: str, make_user: Any
) -> None:
    ann = make_user(Role.AGENT, email="ann@example.org")
    bob = make_user(Role.AGENT, email="bob@example.org")
    with app.app_context():
        save_identity(Actor.system(), address="contact@desk.test", name="Desk Support")
        number = factories.ticket("Who is on it").number
        db.session.commit()

    ann_page = open_ticket(browser, live_server, ann, number)
    bob_page = open_ticket(browser, live_server, bob, number)
    bob_page.locator("#presence").get_by_text("Ann").wait_for()
    ann_page.locator("#presence").get_by_text("Bob").wait_for(timeout=10_000)
    assert "typing" not in ann_page.locator("#presence").inner_text()

    bob_page.get_by_label("Message").press_sequentially("Hello Ann's customer", delay=20)
    ann_page.locator("#presence").get_by_text("typing a reply…").wait_for(timeout=10_000)
    assert "Bob" in ann_page.locator("#presence").inner_text()
    assert "Ann" not in ann_page.locator("#presence").inner_text()  # not myself
    ARTIFACTS.mkdir(exist_ok=True)
    ann_page.locator("#presence").screenshot(path=str(ARTIFACTS / "ticket-presence.png"))
    bob_page.locator("#composer").screenshot(path=str(ARTIFACTS / "composer-draft.png"))

    # Bob leaves: after the short expiry Ann sees nobody.
    bob_page.context.close()
    ann_page.locator("#presence .presence-list").wait_for(state="detached", timeout=35_000)
    ann_page.context.close()
