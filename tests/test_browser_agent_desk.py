"""The agent desk in real Chromium: a phone ticket with a file, search by number, the inbox
on a phone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from app.extensions import db
from app.models import Role
from tests import factories

pytestmark = pytest.mark.browser
ARTIFACTS = Path(__file__).parent / "artifacts"


def _sign_in(page: Any, live_server: str, person: Any) -> None:
    page.goto(live_server + "/login")
    page.get_by_label("Email address").fill(person.email)
    page.get_by_label("Password").fill(person.password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(live_server + "/agent/")


def test_agent_opens_a_phone_ticket_with_a_file_and_finds_it_by_number(
    app: Any, browser: Any, live_server: str, make_user: Any, tmp_path: Path
) -> None:
    agent = make_user(Role.AGENT)
    with app.app_context():
        person = factories.contact("Seeblick Hotel GmbH")
        person.name = "Ida Seeblick"
        db.session.commit()
    scan = tmp_path / "booking-screenshot.png"
    scan.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    page = browser.new_page()
    _sign_in(page, live_server, agent)
    page.get_by_role("link", name="New ticket").click()
    page.wait_for_url(live_server + "/agent/new")
    page.get_by_label("Find a contact (name, address or account)").press_sequentially("seeblick")
    page.get_by_label("Ida Seeblick").check()
    page.get_by_label("Phone call").check()
    page.get_by_label("Subject").fill("Booking portal rejects card")
    page.get_by_label("What the customer asked for").fill(
        "Called 09:40: the card is refused at the last step."
    )
    page.locator("#new-files").set_input_files(str(scan))
    page.get_by_role("button", name="Open ticket").click()
    page.wait_for_url(f"{live_server}/agent/tickets/**")
    number = page.url.rsplit("/", 1)[1]
    page.get_by_text("Booking portal rejects card").first.wait_for()
    page.get_by_role("link", name="booking-screenshot.png").wait_for()

    # Search by number (without its prefix) and Enter: straight to the ticket.
    page.goto(live_server + "/agent/list/all")
    page.get_by_label("Search").fill(number.split("-")[1])
    page.get_by_label("Search").press("Enter")
    page.wait_for_url(f"{live_server}/agent/tickets/{number}")
    page.close()


def test_inbox_on_a_phone_shows_tickets_first_and_no_sideways_scroll(
    app: Any, browser: Any, live_server: str, make_user: Any
) -> None:
    agent = make_user(Role.AGENT)
    with app.app_context():
        for n in range(6):
            factories.ticket(f"Phone screen ticket {n} with a rather long subject line")
        db.session.commit()
    context = browser.new_context(viewport={"width": 360, "height": 740})
    page = context.new_page()
    _sign_in(page, live_server, agent)
    first = page.locator("#ticket-list table.tickets tbody tr").first
    first.wait_for()
    box = first.bounding_box()
    assert box is not None and box["y"] + min(box["height"], 40) <= 740, box
    widths = page.evaluate(
        "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    assert widths[0] <= widths[1], widths
    assert not page.locator("#list-nav").is_visible()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "agent-inbox-360.png"))
    # The views and filters are one tap away.
    page.get_by_text("Views and filters").click()
    page.locator("#list-nav").wait_for(state="visible")
    assert page.locator("#list-filters select[name=status]").is_visible()
    widths = page.evaluate(
        "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    assert widths[0] <= widths[1], widths
    context.close()
