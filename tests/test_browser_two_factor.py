"""Two-factor sign-in in Chromium: an admin enrols at first sign-in, then signs in with a code.

The test reads the key off the enrolment page and computes the codes with pyotp, as an
authenticator app would from the QR code.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pyotp
import pytest

from app.models import Role

pytestmark = pytest.mark.browser
ARTIFACTS = Path(__file__).parent / "artifacts"


def password_step(page: Any, base: str, email: str, password: str) -> None:
    page.goto(base + "/login")
    page.get_by_label("Email address").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def test_an_admin_enrols_then_signs_in_with_a_code(
    app: Any, browser: Any, live_server: str, make_user: Any
) -> None:
    app.config["TWO_FACTOR_REQUIRED_ROLES"] = "admin,compliance"
    admin = make_user(Role.ADMIN)
    context = browser.new_context()
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    wrong_code_answer = "the server responded with a status of 401"  # the wrong code, below

    password_step(page, live_server, admin.email, admin.password)
    page.wait_for_url(live_server + "/login/enrol")
    assert page.get_by_role("heading", level=1).inner_text() == "Set up two-factor sign-in"
    assert page.get_by_role("img", name="QR code for your authenticator app").is_visible()
    # Nothing else opens before enrolment.
    page.goto(live_server + "/admin/")
    assert page.url.startswith(live_server + "/login?next=")
    page.goto(live_server + "/login/enrol")
    secret = page.locator("code.two-factor-secret").inner_text().replace(" ", "")
    totp = pyotp.TOTP(secret)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "two-factor-enrol.png"), full_page=True)
    page.get_by_label("Code", exact=True).fill(totp.now())
    page.get_by_role("button", name="Turn on two-factor sign-in").click()
    page.get_by_role("heading", name="Your recovery codes").wait_for()
    codes = page.locator("ul.recovery-codes code").all_inner_texts()
    assert len(codes) == 10
    page.get_by_role("link", name="I have saved them, continue").click()
    page.wait_for_url(live_server + "/admin/")
    assert page.get_by_role("heading", level=1).inner_text() == "Administration"
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(live_server + "/login")

    # Again: the password, then the code of the next time step (the last one is spent).
    password_step(page, live_server, admin.email, admin.password)
    page.wait_for_url(live_server + "/login/code")
    page.get_by_label("Code", exact=True).fill("000000" if totp.now() != "000000" else "111111")
    page.get_by_role("button", name="Verify").click()
    assert page.get_by_role("alert").inner_text() == (
        "That code is not right, or it was used already."
    )
    page.get_by_label("Code", exact=True).fill(totp.at(time.time() + 30))
    page.get_by_role("button", name="Verify").click()
    page.wait_for_url(live_server + "/admin/")
    assert page.get_by_role("heading", level=1).inner_text() == "Administration"
    # The security page says it is on.
    page.get_by_role("link", name=admin.email.split("@")[0].replace(".", " ").title()).click()
    page.wait_for_url(live_server + "/security")
    assert page.locator(".two-factor-state").inner_text().startswith("On since")
    assert [p for p in problems if wrong_code_answer not in p] == [], problems
    context.close()
