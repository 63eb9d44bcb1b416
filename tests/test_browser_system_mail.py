"""An admin edits the autoresponse in Chromium: the preview follows the typing (htmx),
a broken template is refused in place, a good one is saved and can be reset."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.browser
ARTIFACTS = Path(__file__).parent / "artifacts"


def test_admin_edits_the_autoresponse_with_a_live_preview(
    app: Any, browser: Any, live_server: str, make_user: Any
) -> None:
    from app.actor import Actor
    from app.extensions import db
    from app.mail.identities import save_identity
    from app.models import Role

    admin = make_user(Role.ADMIN)
    with app.app_context():
        save_identity(Actor.system(), address="support@desk.test", name="Desk", is_default=True)
        db.session.commit()
    page = browser.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.goto(live_server + "/login")
    page.get_by_label("Email address").fill(admin.email)
    page.get_by_label("Password", exact=True).fill(admin.password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(live_server + "/admin/")
    page.get_by_role("link", name="System mail (autoresponse, notices, portal mails)").click()
    page.locator("tr", has_text="Autoresponse to a new ticket").get_by_role("link").first.click()
    page.wait_for_url("**/admin/system-mail/*/autoresponse/en")
    preview = page.locator("#system-mail-preview")
    assert "[#T-104233] We received your request: Printer on fire" in preview.inner_text()

    # Typing re-renders the preview with the sample values, without a page load.
    url = page.url
    page.get_by_label("Text", exact=True).fill("Dear {{ customer_name }}, see {{ portal_url }}")
    preview.get_by_text("Dear Nora Customer, see https://desk.example/portal/").wait_for()
    page.get_by_label("Text", exact=True).fill("Dear {{ customer_name.__class__ }}")
    preview.get_by_text("SecurityError").wait_for()
    assert page.url == url

    # Saving the escape is refused in place, with the error and what was typed.
    page.get_by_role("button", name="Save template").click()
    page.locator("#system-mail-error").wait_for()
    assert "SecurityError" in page.locator("#system-mail-error").inner_text()
    assert page.get_by_label("Text", exact=True).input_value() == (
        "Dear {{ customer_name.__class__ }}"
    )
    page.get_by_label("Text", exact=True).fill(
        "Dear {{ customer_name }}, ticket {{ ticket_number }}"
    )
    page.get_by_role("button", name="Save template").click()
    page.get_by_text("Template saved").wait_for()
    assert page.get_by_label("Text", exact=True).input_value() == (
        "Dear {{ customer_name }}, ticket {{ ticket_number }}"
    )
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "admin-system-mail.png"), full_page=True)
    page.get_by_role("button", name="Reset to the default").click()
    page.get_by_text("The default template applies again.").wait_for()
    assert "We received your request" in page.locator("#system-mail-preview").inner_text()
    # The refused save answered 422 on purpose; anything else is a problem.
    assert [p for p in problems if "422" not in p] == []
