"""In Chromium: an admin invites an agent; the agent opens the mailed link, chooses a
password and lands in their inbox."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.conftest import run_jobs

pytestmark = pytest.mark.browser
ARTIFACTS = Path(__file__).parent / "artifacts"
WELCOME = re.compile(r"https?://\S+/admin/welcome/\S+")


def test_admin_creates_an_agent_who_signs_in_from_the_invitation(
    app: Any, browser: Any, live_server: str, make_user: Any, smtp_sink: Any
) -> None:
    from app.models import Role

    app.config["SMTP_URL"] = f"smtp://{smtp_sink.host}:{smtp_sink.port}"
    admin = make_user(Role.ADMIN)
    problems: list[str] = []
    context = browser.new_context()
    page = context.new_page()
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.goto(live_server + "/login")
    page.get_by_label("Email address").fill(admin.email)
    page.get_by_label("Password", exact=True).fill(admin.password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(live_server + "/admin/")

    page.get_by_role("link", name="Invite a colleague").click()
    page.wait_for_url(live_server + "/admin/users/new")
    page.get_by_label("Name", exact=True).fill("Ada Lovelace")
    page.get_by_label("Email address").fill("ada@desk.test")
    page.get_by_label("Agent", exact=True).check()
    page.get_by_role("button", name="Send the invitation").click()
    page.get_by_text("Ada Lovelace is invited").wait_for()
    assert page.locator("#user-state").inner_text() == "Invited: has not chosen a password yet."
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "admin-user-invited.png"), full_page=True)
    # The staff list shows the newcomer as invited.
    page.get_by_role("link", name="Users", exact=True).click()
    row = page.locator("tr[data-user='ada@desk.test']")
    row.get_by_text("invited").wait_for()
    context.close()

    run_jobs(app)
    (mail,) = smtp_sink.wait_for(1)
    assert mail.rcpt_tos == ("ada@desk.test",)
    (link,) = WELCOME.findall(mail.message.get_body(("plain",)).get_content())

    newcomer = browser.new_context()
    page = newcomer.new_page()
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.goto(live_server + urlsplit(link).path)
    page.get_by_role("heading", name="Welcome, Ada Lovelace").wait_for()
    page.get_by_label("New password", exact=True).fill("ada's analytical engine")
    page.get_by_label("New password again").fill("ada's analytical engine")
    page.get_by_role("button", name="Set my password").click()
    page.wait_for_url(live_server + "/agent/")
    page.get_by_text("Welcome, Ada Lovelace. Your password is set.").wait_for()
    assert page.locator(".who").inner_text() == "Ada Lovelace"
    page.screenshot(path=str(ARTIFACTS / "admin-invited-agent-inbox.png"), full_page=False)
    newcomer.close()
    assert problems == [], problems
