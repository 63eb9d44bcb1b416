"""The agent's ticket page in real Chromium: two columns at 1440 px, one at 360 px with no
horizontal scroll, the poll keeping what is typed, a conflict beside the fields, the
keyboard, the lead picker and image previews. Screenshots go to tests/artifacts/."""

from __future__ import annotations

import base64
import io
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from app.actor import Actor
from app.extensions import db
from app.files.store import store_upload
from app.mail.identities import save_identity
from app.models import Contact, Role, Ticket
from app.models.types import utcnow
from app.tickets import add_customer_message
from tests import factories

pytestmark = pytest.mark.browser
ARTIFACTS = Path(__file__).parent / "artifacts"
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAABAAAAAQCAIAAACQkWg2AAAAHUlEQVR42mNkYPjPQApgYqAQ"
    "jBowasCoAaMGkA8AAN3wAR8dXtVBAAAAAElFTkSuQmCC"
)


def overflow(page: Any) -> int:
    """How much wider than the window the document is (0: no horizontal scroll)."""
    return page.evaluate(
        "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )


def overlaps(a: dict[str, float], b: dict[str, float]) -> bool:
    return not (
        a["x"] + a["width"] <= b["x"]
        or b["x"] + b["width"] <= a["x"]
        or a["y"] + a["height"] <= b["y"]
        or b["y"] + b["height"] <= a["y"]
    )


@pytest.fixture
def desk(app: Any, make_user: Any) -> dict[str, Any]:
    agent = make_user(Role.AGENT)
    with app.app_context():
        save_identity(Actor.system(), address="contact@desk.test", name="Desk Support")
        ticket = factories.ticket("Scanner jams on every second page of long duplex jobs")
        ticket.contact.email = "a.very.long.address.of.the.customer@subsidiary.example-holding.test"
        earlier = factories.ticket("Toner warning", contact=ticket.contact)
        customer = Actor.customer(name="Customer", email=ticket.contact.email)
        add_customer_message(
            ticket,
            customer,
            "Logs attached: " + "0xDEADBEEF" * 12 + " (one long unbroken word).",
        )
        picture = store_upload(io.BytesIO(PNG), "jam.png", customer, ticket=ticket)
        picture.entry = ticket.entries[-1]
        ticket.pending_until = utcnow() + timedelta(days=2)
        db.session.add(Contact(name="Eva Buyer", email="eva@acme.test", account=ticket.account))
        db.session.commit()
        desk = {"agent": agent, "number": ticket.number, "ticket_id": ticket.id}
        desk["earlier"] = earlier.number
    return desk


def signed_in(browser: Any, live_server: str, person: Any, width: int, height: int) -> Any:
    page = browser.new_page(viewport={"width": width, "height": height})
    page.goto(live_server + "/login")
    page.get_by_label("Email address").fill(person.email)
    page.get_by_label("Password").fill(person.password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(live_server + "/agent/")
    return page


def test_two_columns_wide_one_column_narrow_and_no_horizontal_scroll(
    browser: Any, live_server: str, desk: dict[str, Any]
) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page = signed_in(browser, live_server, desk["agent"], 1440, 900)
    page.goto(f"{live_server}/agent/tickets/{desk['number']}")
    page.locator("#ticket-tasks > details").wait_for(state="attached")  # panels loaded

    stream = page.locator(".stream").bounding_box()
    composer = page.locator("#composer").bounding_box()
    facts = page.locator("#ticket-header").bounding_box()
    tasks = page.locator("#ticket-tasks").bounding_box()
    assert composer["x"] + composer["width"] <= facts["x"]  # left column, facts right
    assert 0 <= composer["y"] - (stream["y"] + stream["height"]) <= 40  # right under it
    assert abs(tasks["x"] - facts["x"]) < 1 and facts["y"] < 200  # facts at the top right
    assert page.locator("#ticket-tasks > details").get_attribute("open") is None  # empty: folded
    follow_up = page.locator("#ticket-header dt", has_text="Follow up").bounding_box()
    address = page.locator("#ticket-customer dd.address").bounding_box()
    assert not overlaps(follow_up, address)
    thumbnail = page.locator(".attachments .preview img")
    thumbnail.wait_for()
    page.wait_for_function("() => document.querySelector('.attachments .preview img').complete")
    assert thumbnail.evaluate("img => img.naturalWidth") == 16
    assert overflow(page) <= 0
    page.screenshot(path=str(ARTIFACTS / "ticket-1440.png"), full_page=True)

    page.set_viewport_size({"width": 360, "height": 780})
    page.reload()
    page.locator("#ticket-tasks > details").wait_for(state="attached")
    assert overflow(page) <= 0, f"{overflow(page)} px too wide at 360 px"
    composer = page.locator("#composer").bounding_box()
    facts = page.locator("#ticket-header").bounding_box()
    assert composer["y"] < facts["y"]  # one column: the stream and composer first
    follow_up = page.locator("#ticket-header dt", has_text="Follow up").bounding_box()
    address = page.locator("#ticket-customer dd.address").bounding_box()
    assert not overlaps(follow_up, address)
    page.screenshot(path=str(ARTIFACTS / "ticket-360.png"), full_page=True)
    page.close()


def test_poll_conflict_keyboard_and_lead_picker(
    app: Any, browser: Any, live_server: str, desk: dict[str, Any]
) -> None:
    page = signed_in(browser, live_server, desk["agent"], 1440, 900)
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(str(error)))
    # Open the ticket from the inbox, so j/k walk that list.
    rows = page.locator("[data-row-link]")
    rows.first.wait_for()
    hrefs = [rows.nth(i).get_attribute("href") for i in range(rows.count())]
    assert len(hrefs) >= 2
    rows.first.click()
    page.wait_for_url(live_server + hrefs[0])
    number = hrefs[0].rsplit("/", 1)[-1]

    # The poll brings the customer's words and keeps what the agent is typing.
    page.get_by_label("Message").fill("A draft I am still typing")
    with app.app_context():
        ticket = db.session.scalar(db.select(Ticket).where(Ticket.number == number))
        add_customer_message(
            ticket, Actor.customer(name="C", email=ticket.contact.email), "Paper tray 2 now."
        )
        db.session.commit()
    page.get_by_text("Paper tray 2 now.").wait_for(timeout=15_000)
    assert page.get_by_label("Message").input_value() == "A draft I am still typing"

    # A stale page: the conflict appears in the facts, beside the fields changed.
    page.evaluate(
        """() => {
            document.querySelector("#ticket-fields input[name=version]").value = "1";
            const select = document.querySelector("#ticket-header select[name=priority]");
            select.value = "high";
            select.dispatchEvent(new Event("change", {bubbles: true}));
        }"""
    )
    error = page.locator("#ticket-header #fields-error")
    error.get_by_text("Someone else changed this ticket").wait_for()
    fields = page.locator("#ticket-fields").bounding_box()
    box = error.bounding_box()
    assert box["y"] + box["height"] <= fields["y"] + 1 and fields["y"] - box["y"] < 150
    assert abs(box["x"] - fields["x"]) < 40

    # Keyboard: ? shows the shortcuts; keys do nothing while typing.
    page.get_by_label("Message").press("?")
    assert not page.locator("#shortcuts").is_visible()
    assert page.get_by_label("Message").input_value().endswith("?")
    page.locator("h1").click()
    page.keyboard.press("?")
    page.locator("#shortcuts").get_by_text("Keyboard shortcuts").wait_for()
    page.keyboard.press("Escape")
    page.locator("#shortcuts").wait_for(state="hidden")
    page.keyboard.press("s")
    assert page.evaluate("() => document.activeElement.name") == "status"
    page.locator("h1").click()
    page.keyboard.press("a")
    page.locator("#assign-me-form button[disabled]").wait_for()
    page.keyboard.press("i")
    assert page.get_by_label("Internal note (only staff see it)").is_checked()
    page.locator("h1").click()

    # Leads: the picker searches this account's contacts; ticking one saves it.
    page.get_by_label("Find a lead among the contacts of").fill("eva")
    candidate = page.locator("#lead-results").get_by_label("Eva Buyer")
    candidate.wait_for()
    candidate.check()
    page.locator("fieldset.leads > label.check", has_text="Eva Buyer").wait_for()  # saved
    with app.app_context():
        ticket = db.session.scalar(db.select(Ticket).where(Ticket.number == number))
        assert [c.name for c in ticket.leads] == ["Eva Buyer"]
        assert ticket.assignee_id == desk["agent"].id

    # j: the next ticket of the list the agent came from.
    page.locator("h1").click()
    page.keyboard.press("j")
    page.wait_for_url(live_server + hrefs[1])
    assert problems == []
    page.close()
