"""Staff screens in German, in real Chromium: a German agent and a German admin work a day
without meeting an English button, and dates read the German way."""

from __future__ import annotations

import re
from typing import Any

import pytest

from app.actor import Actor
from app.extensions import db
from app.mail.identities import save_identity
from app.models import Role, User
from tests import factories

pytestmark = pytest.mark.browser

# What the English pages say, and what must never show on the German ones.
ENGLISH = ["Mark as read", "Assign to me", "New ticket", "Internal note", "Send", "Answer from"]
GERMAN_MONTH = re.compile(r"\b\d{1,2}\. (Jan|Feb|März|Apr|Mai|Juni|Juli|Aug|Sept|Okt|Nov|Dez)")


def _german(app: Any, person: Any) -> None:
    with app.app_context():
        user = db.session.get(User, person.id)
        user.language = "de"
        db.session.commit()


def _sign_in(page: Any, live_server: str, person: Any, landing: str) -> None:
    page.goto(live_server + "/login")
    page.locator("input[name=email]").fill(person.email)
    page.locator("input[name=password]").fill(person.password)
    page.locator("form button[type=submit]").first.click()
    page.wait_for_url(live_server + landing)


def test_a_german_agent_works_a_ticket_in_german(
    app: Any, browser: Any, live_server: str, make_user: Any
) -> None:
    agent = make_user(Role.AGENT)
    _german(app, agent)
    with app.app_context():
        save_identity(Actor.system(), address="kontakt@desk.test", name="Kontakt", is_default=True)
        number = factories.ticket("Drucker brennt").number
        db.session.commit()
    page = browser.new_page()
    _sign_in(page, live_server, agent, "/agent/")
    inbox = page.locator("main").inner_text()
    assert "Neue Anfrage" in inbox and "Drucker brennt" in inbox
    page.goto(f"{live_server}/agent/tickets/{number}")
    page.get_by_role("button", name="Senden").wait_for()
    text = page.locator("main").inner_text()
    assert "Als gelesen markieren" in text and "Mir zuweisen" in text
    assert GERMAN_MONTH.search(text), "dates on the ticket page read the German way"
    leaked = [p for p in ENGLISH if re.search(rf"\b{p}\b", text + "\n" + inbox)]
    assert leaked == [], leaked
    # A refusal from the domain arrives in German too: answering with nothing written.
    page.get_by_role("button", name="Senden").click()
    page.locator("#composer-error").wait_for()
    assert "Schreiben" in page.locator("#composer-error").inner_text()
    page.close()


def test_a_german_admin_reads_the_administration_in_german(
    app: Any, browser: Any, live_server: str, make_user: Any
) -> None:
    admin = make_user(Role.ADMIN)
    _german(app, admin)
    page = browser.new_page()
    _sign_in(page, live_server, admin, "/admin/")
    for path in ("/admin/users", "/admin/settings", "/admin/calendars", "/admin/sla"):
        page.goto(live_server + path)
        heading = page.locator("h1").first.inner_text()
        assert heading and not re.search(r"\b(Users|Settings|Calendars|SLA policies)\b", heading), (
            path,
            heading,
        )
    page.close()
