"""The relay end to end in Chromium: an agent replies, a worker sends, the SMTP server
receives it, and a failed send shows on the ticket with a "Send again" that works."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from app.actor import Actor
from app.extensions import db
from app.mail.identities import save_identity
from app.models import Role
from tests import factories
from tests.conftest import run_jobs
from tests.services import SmtpSink

pytestmark = pytest.mark.browser
ARTIFACTS = Path(__file__).parent / "artifacts"


def test_an_agent_replies_in_the_browser_and_the_mail_server_receives_it(
    app: Any, browser: Any, live_server: str, make_user: Any, smtp_sink: SmtpSink
) -> None:
    app.config["SMTP_URL"] = f"smtp://127.0.0.1:{smtp_sink.port}"
    app.config["MAIL_MAX_ATTEMPTS"] = 1  # the first refusal is final: "Send again" shows
    agent = make_user(Role.AGENT)
    with app.app_context():
        save_identity(Actor.system(), address="contact@desk.test", name="Desk Support")
        ticket = factories.ticket("Printer prints blank pages")
        number, customer = ticket.number, ticket.contact.email
        db.session.commit()
    ARTIFACTS.mkdir(exist_ok=True)

    page = browser.new_page()
    page.goto(live_server + "/login")
    page.get_by_label("Email address").fill(agent.email)
    page.get_by_label("Password").fill(agent.password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(live_server + "/agent/")
    page.goto(f"{live_server}/agent/tickets/{number}")
    page.get_by_label("Public reply (mailed to the customer)").check()
    page.get_by_label("Message").fill("The spooler is fixed; please print again.")
    page.get_by_role("button", name="Send").click()
    page.get_by_text("Reply queued for sending.").wait_for()
    page.get_by_text("Queued for sending", exact=True).wait_for()

    run_jobs(app)  # the worker
    (delivered,) = smtp_sink.wait_for(1)
    assert delivered.rcpt_tos == (customer,)
    mail = delivered.message
    assert mail["Subject"] == f"[#{number}] Printer prints blank pages"
    assert mail["From"].addresses[0].addr_spec == "contact@desk.test"
    assert "via Desk Support" in mail["From"].addresses[0].display_name
    assert mail.get_body(("plain",)).get_content().startswith("The spooler is fixed")
    page.reload()
    page.get_by_text("Sent", exact=True).wait_for()

    # The server refuses the next one for good: the ticket says so and offers to send again.
    smtp_sink.fail_next(1, code=554, message="5.7.1 rejected by policy", stage="mail")
    page.get_by_label("Public reply (mailed to the customer)").check()
    page.get_by_label("Message").fill("A second answer.")
    page.get_by_role("button", name="Send").click()
    page.get_by_text("Reply queued for sending.").wait_for()
    run_jobs(app)
    page.get_by_text("5.7.1 rejected by policy").first.wait_for(timeout=15_000)  # the live poll
    page.screenshot(path=str(ARTIFACTS / "relay-failed.png"), full_page=True)
    page.get_by_role("button", name="Send again").click()
    page.get_by_text("Queued for sending", exact=True).wait_for()
    assert page.url == f"{live_server}/agent/tickets/{number}"  # swapped in place
    run_jobs(app)
    # The refusal also mailed the reply's author (a notification); the customer's copy is
    # the one that matters here.
    to_customer = [m for m in smtp_sink.wait_for(3) if m.rcpt_tos == (customer,)]
    assert len(to_customer) == 2, [m.rcpt_tos for m in smtp_sink.wait_for(3)]
    second = to_customer[1]
    assert second.message.get_body(("plain",)).get_content().startswith("A second answer.")
    page.close()
