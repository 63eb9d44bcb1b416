"""A new user's first minute, in a real browser: demo accounts of each role sign in."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.browser
ARTIFACTS = Path(__file__).parent / "artifacts"

EXPECTED = {  # role column of the demo output -> (home path, heading)
    "supervisor+agent": ("/agent/", "Inbox"),
    "agent": ("/agent/", "Inbox"),
    "compliance": ("/compliance/", "Audit log"),
    "admin": ("/admin/", "Administration"),
    "customer": ("/portal/", "My tickets"),
}


def test_each_demo_role_signs_in_and_lands_home(app: Any, browser: Any, live_server: str) -> None:
    result = app.test_cli_runner().invoke(args=["demo-data"])
    accounts: dict[str, tuple[str, str]] = {}
    for line in result.output.splitlines():
        parts = line.split()
        if len(parts) == 4 and "@" in parts[1]:
            accounts.setdefault(parts[0], (parts[1], parts[2]))
    assert set(accounts) == set(EXPECTED)
    ARTIFACTS.mkdir(exist_ok=True)
    for role, (email, password) in accounts.items():
        home, heading = EXPECTED[role]
        context = browser.new_context()
        page = context.new_page()
        problems: list[str] = []

        def record(message: Any, problems: list[str] = problems) -> None:
            if message.type == "error":
                problems.append(message.text)

        page.on("console", record)
        door = "/portal/login" if role == "customer" else "/login"
        page.goto(live_server + door)
        page.get_by_label("Email address").fill(email)
        page.get_by_label("Password").fill(password)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(live_server + home)
        assert page.get_by_role("heading", level=1).inner_text().startswith(heading)
        assert page.title() == f"{heading} · Vaultdesk"
        assert page.evaluate("typeof window.htmx") == "object", "vendored htmx did not load"
        assert problems == [], problems  # e.g. the CSP blocking something we ship
        page.screenshot(path=str(ARTIFACTS / f"home-{role}.png"), full_page=False)
        # Sign out from the top bar, back to the door this role uses.
        page.get_by_role("button", name="Sign out").click()
        page.wait_for_url(live_server + door)
        context.close()


def test_wrong_password_shows_a_message_in_the_page(
    app: Any, browser: Any, live_server: str, make_user: Any
) -> None:
    from app.models import Role

    agent = make_user(Role.AGENT)
    page = browser.new_page()
    page.goto(live_server + "/login")
    page.get_by_label("Email address").fill(agent.email)
    page.get_by_label("Password").fill("not it")
    page.get_by_role("button", name="Sign in").click()
    assert page.get_by_role("alert").inner_text() == "Wrong email address or password."
    assert page.url == live_server + "/login"
    page.close()
