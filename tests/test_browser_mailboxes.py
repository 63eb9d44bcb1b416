"""An admin adds a mailbox in Chromium and presses "Test connection" (real Dovecot)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.test_mailboxes import PASSWORD, imap_user

pytestmark = pytest.mark.browser
ARTIFACTS = Path(__file__).parent / "artifacts"


def test_admin_adds_a_mailbox_and_tests_the_connection(
    app: Any, browser: Any, live_server: str, make_user: Any, imap_server: Any
) -> None:
    from app.models import Role

    admin = make_user(Role.ADMIN)
    user = imap_user(imap_server)
    page = browser.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.goto(live_server + "/login")
    page.get_by_label("Email address").fill(admin.email)
    page.get_by_label("Password", exact=True).fill(admin.password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(live_server + "/admin/")
    page.get_by_role("link", name="Mailboxes (mail in over IMAP)").click()
    page.get_by_role("link", name="Add a mailbox").click()
    page.wait_for_url(live_server + "/admin/mailboxes/new")

    page.get_by_label("Name", exact=True).fill("Support")
    page.get_by_label("Support address").fill("support@example.test")
    page.get_by_label("IMAP server").fill(imap_server.host)
    page.get_by_label("Security", exact=True).select_option("none")
    page.get_by_label("Port (empty: the usual one)").fill(str(imap_server.port))
    page.get_by_label("User name").fill(user)
    page.get_by_label("Password", exact=True).fill("not the password")
    page.get_by_label("Poll every").fill("60")

    page.get_by_role("button", name="Test connection").click()
    result = page.locator("#mailbox-test")
    result.get_by_text("Connection failed").wait_for()
    assert "LOGIN: NO [AUTHENTICATIONFAILED] Authentication failed." in result.inner_text()
    # Swapped in place: still on the form, with everything typed (the password too).
    assert page.url == live_server + "/admin/mailboxes/new"
    assert page.get_by_label("User name").input_value() == user

    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Test connection").click()
    result.get_by_text("Connection works").wait_for()
    assert "Logged in" in result.inner_text() and "Dovecot" in result.inner_text()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "admin-mailbox-test.png"), full_page=True)

    # A refused save shows why, keeps what was typed, but not the password.
    page.get_by_label("After import").select_option("move")
    page.get_by_role("button", name="Save mailbox").click()
    page.get_by_role("alert").get_by_text("Enter a folder name").wait_for()
    assert page.get_by_label("User name").input_value() == user
    assert page.get_by_label("Password", exact=True).input_value() == ""
    page.get_by_label("Move to folder").fill("Filed")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Save mailbox").click()
    page.wait_for_url(live_server + "/admin/mailboxes")
    row = page.locator("tr[data-mailbox='support@example.test']")
    assert "Support" in row.inner_text() and imap_server.host in row.inner_text()
    assert "Mailbox support@example.test saved." in page.locator("#flash").inner_text()

    row.get_by_role("link", name="Support").click()
    page.get_by_label("Password", exact=True).wait_for()
    assert page.get_by_label("Password", exact=True).input_value() == ""
    assert PASSWORD not in page.content()
    page.get_by_role("button", name="Test connection").click()  # with the stored password
    page.locator("#mailbox-test").get_by_text("Connection works").wait_for()
    # The refused save answers 422 on purpose; Chromium and htmx both log that. Anything
    # else (a CSP violation, a script error) is a problem.
    expected = ("status of 422", "Response Status Error Code 422")
    assert [p for p in problems if not any(e in p for e in expected)] == [], problems
    page.close()
