"""Issue 3's "done when", in real Chromium: attach, share, download, revoke, refused."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import Role, VaultLink
from tests import factories
from tests.conftest import run_jobs

pytestmark = pytest.mark.browser
ARTIFACTS = Path(__file__).parent / "artifacts"


def sign_in(page: Any, base: str, person: Any) -> None:
    page.goto(base + "/login")
    page.get_by_label("Email address").fill(person.email)
    page.get_by_label("Password").fill(person.password)
    page.get_by_role("button", name="Sign in").click()


def test_attach_share_download_revoke(
    app: Any, browser: Any, live_server: str, make_user: Any, tmp_path: Path
) -> None:
    with app.app_context():
        ticket = factories.ticket("Signed contract for Q4")
        db.session.commit()
        number, customer_email = ticket.number, ticket.contact.email
    content = os.urandom(300_000) + b"end of contract"
    upload = tmp_path / "Vertrag Q4 – unterschrieben.pdf"
    upload.write_bytes(content)
    ARTIFACTS.mkdir(exist_ok=True)

    # The agent attaches the file to a note and makes a link for the customer.
    agent_context = browser.new_context()
    agent = agent_context.new_page()
    sign_in(agent, live_server, make_user(Role.AGENT))
    agent.goto(f"{live_server}/agent/tickets/{number}")
    agent.get_by_label("Message").fill("Signed version from the customer.")
    agent.get_by_label("Files (stored encrypted in the vault;").set_input_files(str(upload))
    agent.get_by_role("button", name="Send").click()
    agent.get_by_text("Note added with 1 file(s).").wait_for()
    agent.get_by_role("link", name="Share link…").click()
    assert agent.get_by_label("Only for (email address)").input_value() == customer_email
    # A refused form (422 from the server) is shown in place, not silently dropped.
    days = agent.get_by_label("Valid for (days)")
    days.evaluate("input => input.removeAttribute('min')")
    days.fill("0")
    agent.get_by_role("button", name="Create link").click()
    agent.get_by_role("alert").filter(has_text="Valid for (days)").wait_for()
    days.fill("14")
    agent.get_by_label("Download limit").fill("3")
    agent.get_by_role("button", name="Create link").click()
    url = agent.get_by_label("New link address").input_value()
    assert url.startswith("http://localhost:5000/v/")
    agent.screenshot(path=str(ARTIFACTS / "vault-agent-link.png"), full_page=True)
    agent_context.close()

    # The customer opens the link in their own browser and downloads the same bytes.
    path = url.removeprefix("http://localhost:5000")
    customer_context = browser.new_context(accept_downloads=True)
    customer = customer_context.new_page()
    customer.goto(live_server + path)
    customer.get_by_text("Vertrag Q4 – unterschrieben.pdf").wait_for()
    # The link is bound to the customer's address: they confirm a code mailed there.
    masked = customer_email[0] + "***@" + customer_email.split("@")[1]
    customer.get_by_text(f"This file is for {masked}").wait_for()
    customer.get_by_role("button", name="Mail me a code").click()
    customer.get_by_label("Code from the mail").wait_for()
    run_jobs(app)
    (mail,) = (Path(app.instance_path) / "outbox").glob("*.eml")
    code = re.search(r"^\s+(\d{6})$", mail.read_text(), re.M)
    assert code is not None and customer_email in mail.read_text()
    customer.get_by_label("Code from the mail").fill(code.group(1))
    customer.screenshot(path=str(ARTIFACTS / "vault-link-code.png"), full_page=True)
    customer.get_by_role("button", name="Confirm code").click()
    customer.get_by_text("You confirmed the code mailed to the recipient.").wait_for()
    with customer.expect_download() as download_info:
        customer.get_by_role("button", name="Download").click()
    download = download_info.value
    assert download.suggested_filename == "Vertrag Q4 – unterschrieben.pdf"
    saved = tmp_path / "downloaded.bin"
    download.save_as(str(saved))
    assert hashlib.sha256(saved.read_bytes()).hexdigest() == hashlib.sha256(content).hexdigest()

    # A compliance officer revokes it.
    with app.app_context():
        link_id = db.session.scalar(select(VaultLink.id))
    officer_context = browser.new_context()
    officer = officer_context.new_page()
    sign_in(officer, live_server, make_user(Role.COMPLIANCE))
    officer.goto(f"{live_server}/compliance/links")
    row = officer.locator(f"#link-{link_id}")
    row.get_by_label("Reason for revoking this link").fill("Sent before the NDA was signed")
    row.get_by_role("button", name="Revoke").click()
    officer.locator(f"#link-{link_id}").get_by_text("Sent before the NDA was signed").wait_for()
    officer.screenshot(path=str(ARTIFACTS / "vault-compliance-revoked.png"), full_page=True)
    officer_context.close()

    # The customer's next click says the link was revoked.
    customer.goto(live_server + path)
    assert "This link was revoked by the sender." in customer.content()
    customer.screenshot(path=str(ARTIFACTS / "vault-link-revoked.png"))
    customer_context.close()
