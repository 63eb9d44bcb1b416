"""Notifications in Chromium: agent A assigns a ticket to agent B; B's bell shows it after
the page's own poll, and the notification leads B to the ticket."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from app.extensions import db
from app.models import Role, User
from tests import factories

pytestmark = pytest.mark.browser
ARTIFACTS = Path(__file__).parent / "artifacts"


def signed_in(browser: Any, live_server: str, person: Any) -> Any:
    page = browser.new_context().new_page()
    page.goto(live_server + "/login")
    page.get_by_label("Email address").fill(person.email)
    page.get_by_label("Password").fill(person.password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(live_server + "/agent/")
    return page


def test_an_assignment_rings_the_other_agents_bell(
    app: Any, browser: Any, live_server: str, make_user: Any
) -> None:
    a, b = make_user(Role.AGENT), make_user(Role.AGENT)
    with app.app_context():
        db.session.get(User, a.id).name = "Anna Assigner"
        db.session.get(User, b.id).name = "Bert Bellringer"
        handed = factories.ticket("Server room too warm")
        elsewhere = factories.ticket("Something else")
        db.session.commit()
        number, other = handed.number, elsewhere.number
    ARTIFACTS.mkdir(exist_ok=True)

    bert = signed_in(browser, live_server, b)
    bert.goto(f"{live_server}/agent/tickets/{other}")  # a page whose poll runs every 5 s
    bell = bert.locator("#bell .bell-count")
    bell.wait_for(state="attached")
    start = int(bell.get_attribute("data-unread") or 0)  # the new tickets told him too

    anna = signed_in(browser, live_server, a)
    anna.goto(f"{live_server}/agent/tickets/{number}")
    anna.get_by_label("Note for the new manager, sent with a reassignment").fill("Call facilities")
    anna.locator("#ticket-fields select[name=assignee_id]").select_option(label="Bert Bellringer")
    anna.get_by_text("Assigned to Bert Bellringer").first.wait_for()
    # Anna did it herself: her bell does not count it.
    assert anna.locator("#bell .bell-count").get_attribute("data-unread") == str(start)

    # No reload: Bert's ticket page polls and the answer carries his bell.
    bert.wait_for_function(
        "n => document.querySelector('#bell .bell-count').dataset.unread == n",
        arg=str(start + 1),
        timeout=15_000,
    )
    bert.screenshot(path=str(ARTIFACTS / "notification-bell.png"))
    bert.locator("#bell").click()
    bert.wait_for_url(f"{live_server}/agent/notifications")
    entry = bert.get_by_role("button", name=f"Anna Assigner assigned {number} to you")
    bert.get_by_text("Handover note: Call facilities").wait_for()
    entry.click()
    bert.wait_for_url(f"{live_server}/agent/tickets/{number}")
    bert.get_by_role("heading", name="Server room too warm").wait_for()
    assert int(bert.locator("#bell .bell-count").get_attribute("data-unread")) == start
    bert.context.close()
    anna.context.close()
