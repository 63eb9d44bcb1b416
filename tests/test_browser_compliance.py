"""The compliance screens in real Chromium: they fit 1440 px and 360 px without a page-wide
horizontal scroll, and a German officer reads German dates ("2. Dez. 2026")."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from app import audit
from app.actor import Actor
from app.extensions import db
from app.files import vault_links
from app.files.store import store_upload
from app.models import Role
from app.models.files import DownloadOutcome
from app.models.people import User
from tests import factories

pytestmark = pytest.mark.browser
ARTIFACTS = Path(__file__).parent / "artifacts"
LONG_NAME = "Quartalsabrechnung-2026-Q4-mit-allen-Anlagen-und-Unterschriften-final-v3.pdf"
PAGES = ("/compliance/", "/compliance/links", "/compliance/downloads")


def sign_in(page: Any, base: str, person: Any) -> None:
    page.goto(base + "/login")
    page.locator("#email").fill(person.email)
    page.locator("#password").fill(person.password)
    page.locator("form button[type=submit]").first.click()
    page.wait_for_url("**/compliance/**")


def fill_the_desk(app: Any, officer_id: int) -> str:
    """Rows with long names and addresses in every list, audited on 2 Dec 2026."""
    with app.app_context():
        agent = factories.staff_user(Role.AGENT)
        for n in range(3):
            ticket = factories.ticket(f"Rechnung {n} " + "sehr lang " * 8)
            file = store_upload(io.BytesIO(b"%PDF-1.4 x"), LONG_NAME, Actor.system(), ticket=ticket)
            link = vault_links.issue_link(
                file,
                Actor.staff(agent),
                days=14,
                recipient_email="buchhaltung.abteilung.sehr.lang@example-grosskunde-gmbh.test",
            )
            vault_links.record(
                link,
                file,
                DownloadOutcome.REFUSED,
                vault_links.Client("203.0.113.9", "Mozilla/5.0 (X11; Linux x86_64) " * 4),
                reason="recipient_required",
            )
        row = audit.record(
            Actor.staff(agent, "203.0.113.9"),
            "ticket.status",
            "ticket",
            ticket.number,
            ticket_id=ticket.id,
            **{"from": "open", "to": "resolved"},
        )
        row.at = datetime(2026, 12, 2, 13, 5, tzinfo=UTC)
        officer = db.session.get(User, officer_id)
        officer.language, officer.timezone = "de", "Europe/Berlin"
        db.session.commit()
        return agent.name


def page_overflow(page: Any) -> int:
    """How far the page is wider than the window (0 when it fits)."""
    return page.evaluate(
        "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )


@pytest.mark.parametrize("width", [1440, 360])
def test_compliance_lists_fit_the_screen(
    app: Any, browser: Any, live_server: str, make_user: Any, width: int
) -> None:
    person = make_user(Role.COMPLIANCE)
    fill_the_desk(app, person.id)
    ARTIFACTS.mkdir(exist_ok=True)
    context = browser.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()
    sign_in(page, live_server, person)
    for path in PAGES:
        page.goto(live_server + path)
        page.locator("main table").first.wait_for()
        assert page_overflow(page) <= 0, f"{path} scrolls sideways at {width} px"
        name = path.strip("/").replace("/", "-") or "compliance-audit"
        page.screenshot(path=str(ARTIFACTS / f"{name}-{width}.png"), full_page=True)
    context.close()


def test_a_german_officer_reads_german_dates_and_sentences(
    app: Any, browser: Any, live_server: str, make_user: Any
) -> None:
    person = make_user(Role.COMPLIANCE)
    agent_name = fill_the_desk(app, person.id)
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    sign_in(page, live_server, person)
    page.goto(live_server + "/compliance/?action=ticket.status")
    row = page.locator("tr.audit-row").first
    # 13:05 UTC is 14:05 in Berlin, written the German way.
    assert "2. Dez. 2026, 14:05" in row.locator("time").inner_text()
    assert row.locator(".who-name").inner_text() == agent_name  # the person, not an address
    sentence = row.locator(".sentence").inner_text()
    assert "Open" in sentence or "Offen" in sentence  # a sentence, not {"from": "open"}
    assert '"from"' not in row.inner_text()
    context.close()
