"""Emailed portal links (sign-in, reset, invitation) and the mail sender, over real HTTP.

Mail goes either through the real SMTP sink (``smtp_sink``) or into the instance outbox
folder, the two modes of ``app.mail.sending``; the links are taken from the mails that
arrived, as a customer would.
"""

from __future__ import annotations

import re
import stat
import time
from collections.abc import Iterator
from email import policy
from email.parser import BytesParser
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from itsdangerous import TimestampSigner
from sqlalchemy import select

from app.accounts import emailed_links
from app.actor import Actor
from app.extensions import db
from app.mail.sending import MailNotSent, parse_smtp_url, send_mail
from app.models import AuditLog, Role, User
from app.models.people import Account, Contact
from tests.conftest import Person, csrf_from, run_jobs, sign_in

LINK = re.compile(r"https?://\S+/portal/(?:sign-in|reset)/\S+")
SENT = "If the address belongs to a portal account, we sent a sign-in link."
NEW_PASSWORD = "a much better passphrase"


@pytest.fixture
def smtp(app: Flask, smtp_sink: Any) -> Iterator[Any]:
    """Send through the real SMTP sink for this test."""
    app.config["SMTP_URL"] = f"smtp://{smtp_sink.host}:{smtp_sink.port}"
    yield smtp_sink
    app.config.pop("SMTP_URL", None)


@pytest.fixture
def customer(make_user: Any) -> Person:
    return make_user(Role.CUSTOMER)


def outbox(app: Flask) -> Path:
    return Path(app.instance_path) / "outbox"


def filed_text(path: Path) -> str:
    """The text part of a filed .eml, decoded (the file itself is quoted-printable)."""
    with path.open("rb") as handle:
        message = BytesParser(policy=policy.default).parse(handle)
    return message.get_body(("plain",)).get_content()


def link_path(text: str) -> str:
    """The path of the one portal link in a mail body."""
    found = LINK.findall(text)
    assert len(found) == 1, text
    return urlsplit(found[0]).path


def request_link(client: FlaskClient, email: str, url: str = "/portal/sign-in-link") -> Any:
    """Ask for a link, then let the mail worker do its part."""
    token = csrf_from(client.get("/portal/login").get_data(as_text=True))
    response = client.post(url, data={"email": email, "csrf_token": token})
    run_jobs(client.application)
    return response


def without_tokens(html: str) -> str:
    return re.sub(r'(content|value)="[^"]*"', "", html)


def audit_rows(app: Flask, action: str) -> list[AuditLog]:
    with app.app_context():
        return list(db.session.scalars(select(AuditLog).where(AuditLog.action == action)))


def post_form(client: FlaskClient, path: str, **data: str) -> Any:
    page = client.get(path)
    token = csrf_from(page.get_data(as_text=True))
    response = client.post(path, data={**data, "csrf_token": token})
    run_jobs(client.application)
    return response


# -- the sender -----------------------------------------------------------------------------


def test_send_mail_over_smtp_builds_a_proper_message(app: Flask, smtp: Any) -> None:
    with app.app_context():
        message_id = send_mail("kunde@example.org", "Grüße aus dem Support", "Preis: 10 €\n")
    (arrived,) = smtp.wait_for(1)
    message = arrived.message
    assert arrived.rcpt_tos == ("kunde@example.org",)
    assert message["From"] == app.config["MAIL_FROM"]
    assert message["To"] == "kunde@example.org"
    assert message["Subject"] == "Grüße aus dem Support"
    assert message["Message-ID"] == message_id and message_id.endswith("@localhost>")
    assert message["Date"] and message["Auto-Submitted"] == "auto-generated"
    assert message.get_content_charset() == "utf-8"
    assert message.get_content() == "Preis: 10 €\n"


def test_send_mail_with_html_part(app: Flask, smtp: Any) -> None:
    with app.app_context():
        send_mail("a@example.org", "Both", "plain text\n", html="<p>html</p>")
    message = smtp.wait_for(1)[0].message
    assert message.get_body(("plain",)).get_content() == "plain text\n"
    assert "<p>html</p>" in message.get_body(("html",)).get_content()


def test_refused_or_unreachable_smtp_raises_mail_not_sent(app: Flask, smtp: Any) -> None:
    smtp.fail_next(code=554, message="no thanks")
    with app.app_context(), pytest.raises(MailNotSent, match="no thanks"):
        send_mail("a@example.org", "Hi", "text")
    from tests.services import free_port

    app.config["SMTP_URL"] = f"smtp://user:secret@127.0.0.1:{free_port()}"
    with app.app_context(), pytest.raises(MailNotSent) as refused:
        send_mail("a@example.org", "Hi", "text")
    assert "secret" not in refused.value.message


def test_parse_smtp_url() -> None:
    plain = parse_smtp_url("smtp://mail.example.org")
    assert (plain.port, plain.starttls, plain.implicit_tls, plain.username) == (
        25,
        False,
        False,
        None,
    )
    submission = parse_smtp_url("smtp://me%40example.org:p%3Ass@mail.example.org?starttls=1")
    assert (submission.port, submission.starttls) == (587, True)
    assert (submission.username, submission.password) == ("me@example.org", "p:ss")
    tls = parse_smtp_url("smtps://u:p@mail.example.org:2465")
    assert (tls.port, tls.implicit_tls, tls.starttls) == (2465, True, False)
    with pytest.raises(ValueError, match="SMTP_URL"):
        parse_smtp_url("http://mail.example.org")


def test_without_smtp_url_mails_are_filed_privately(app: Flask) -> None:
    with app.app_context():
        message_id = send_mail("a@example.org", "Filed", "text ✓\n")
    folder = outbox(app)
    (path,) = folder.iterdir()
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert re.fullmatch(r"\d{8}T\d{12}Z-[0-9a-f]{16}\.eml", path.name)
    raw = path.read_text()
    assert message_id in raw and "Subject: Filed" in raw


# -- sign-in links --------------------------------------------------------------------------


def test_magic_link_flow(app: Flask, client: FlaskClient, customer: Person, smtp: Any) -> None:
    response = request_link(client, customer.email)
    assert response.status_code == 200
    assert SENT in response.get_data(as_text=True)
    (mail,) = smtp.wait_for(1)
    assert mail.rcpt_tos == (customer.email,)
    assert mail.message["Subject"] == "Your sign-in link"
    path = link_path(mail.message.get_content())

    page = client.get(path)
    assert page.status_code == 200
    assert "Sign me in" in page.get_data(as_text=True)
    assert page.headers["Cache-Control"] == "no-store"
    assert client.get(path).status_code == 200  # a scanner's GET spends nothing
    assert client.get("/portal/").status_code == 302  # and signs nobody in

    signed_in = client.post(path, data={"csrf_token": csrf_from(page.get_data(as_text=True))})
    assert signed_in.status_code == 302 and signed_in.headers["Location"] == "/portal/"
    assert client.get("/portal/").status_code == 200
    assert [r.details.get("method") for r in audit_rows(app, "auth.login")] == ["email link"]

    other = app.test_client()
    again = other.get(path)
    assert again.status_code == 410
    assert "used already" in again.get_data(as_text=True)
    assert 'data-state="used"' in again.get_data(as_text=True)
    token = csrf_from(again.get_data(as_text=True))
    assert other.post(path, data={"csrf_token": token}).status_code == 410
    assert other.get("/portal/").status_code == 302
    (refusal,) = audit_rows(app, "auth.link_refused")
    assert refusal.details == {"purpose": "portal-sign-in", "state": "used"}


def _old_token(
    app: Flask, monkeypatch: pytest.MonkeyPatch, person: Person, seconds: int, **kind: Any
) -> str:
    """A token signed ``seconds`` ago, by setting itsdangerous' clock back while signing."""
    with app.app_context(), monkeypatch.context() as patch:
        patch.setattr(TimestampSigner, "get_timestamp", lambda self: int(time.time()) - seconds)
        user = db.session.get(User, person.id)
        if kind:
            return emailed_links.set_password_token(user, kind["kind"])
        return emailed_links.sign_in_token(user)


def test_sign_in_link_expires_after_15_minutes(
    app: Flask, client: FlaskClient, customer: Person, monkeypatch: pytest.MonkeyPatch
) -> None:
    fresh_enough = _old_token(app, monkeypatch, customer, 14 * 60)
    assert client.get(f"/portal/sign-in/{fresh_enough}").status_code == 200
    expired = _old_token(app, monkeypatch, customer, 16 * 60)
    page = client.get(f"/portal/sign-in/{expired}")
    assert page.status_code == 410
    html = page.get_data(as_text=True)
    assert "expired" in html and "Send me a new link" in html
    assert (
        client.post(f"/portal/sign-in/{expired}", data={"csrf_token": csrf_from(html)}).status_code
        == 410
    )
    assert client.get("/portal/").status_code == 302


def test_password_change_spends_unused_links(
    app: Flask, client: FlaskClient, customer: Person
) -> None:
    request_link(client, customer.email)
    (filed,) = outbox(app).iterdir()
    path = link_path(filed_text(filed))
    assert client.get(path).status_code == 200
    with app.app_context():
        db.session.get(User, customer.id).set_password(NEW_PASSWORD)
        db.session.commit()
    assert client.get(path).status_code == 410


def test_a_newer_link_spends_older_ones_once_used(
    app: Flask, client: FlaskClient, customer: Person
) -> None:
    with app.app_context():
        user = db.session.get(User, customer.id)
        first, second = emailed_links.sign_in_token(user), emailed_links.sign_in_token(user)
    page = client.get(f"/portal/sign-in/{second}")
    client.post(
        f"/portal/sign-in/{second}", data={"csrf_token": csrf_from(page.get_data(as_text=True))}
    )
    assert app.test_client().get(f"/portal/sign-in/{first}").status_code == 410


@pytest.mark.parametrize("url", ["/portal/sign-in-link", "/portal/reset"])
def test_same_answer_and_no_mail_for_addresses_without_a_portal_account(
    url: str, app: Flask, client: FlaskClient, make_user: Any, customer: Person, smtp: Any
) -> None:
    staff = make_user(Role.AGENT)
    gone = make_user(Role.CUSTOMER)
    with app.app_context():
        db.session.get(User, gone.id).active = False
        db.session.commit()
    pages = {}
    for email in ("nobody@example.org", staff.email, gone.email, customer.email):
        response = request_link(client, email, url)
        assert response.status_code == 200
        pages[email] = without_tokens(response.get_data(as_text=True))
    assert len(set(pages.values())) == 1
    (mail,) = smtp.wait_for(1)
    time.sleep(0.2)
    assert len(smtp.messages) == 1 and mail.rcpt_tos == (customer.email,)
    action = (
        "portal.sign_in_link_requested" if "sign-in" in url else "portal.password_reset_requested"
    )
    outcomes = {r.actor_label: r.details["outcome"] for r in audit_rows(app, action)}
    assert outcomes == {
        "nobody@example.org": "unknown address",
        staff.email: "not a customer account",
        gone.email: "deactivated",
        customer.email: "sent",
    }


def test_tampered_or_foreign_tokens_are_not_found(
    app: Flask, client: FlaskClient, customer: Person
) -> None:
    with app.app_context():
        user = db.session.get(User, customer.id)
        token = emailed_links.sign_in_token(user)
        reset = emailed_links.set_password_token(user, emailed_links.SetPasswordKind.RESET)
    tampered = token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")
    for path in (
        f"/portal/sign-in/{tampered}",
        "/portal/sign-in/garbage",
        f"/portal/sign-in/{reset}",  # signed for another purpose
        f"/portal/reset/{token}",
    ):
        page = client.get(path)
        assert page.status_code == 404, path
        assert "not valid" in page.get_data(as_text=True)


# -- password reset -------------------------------------------------------------------------


def test_password_reset_flow(app: Flask, customer: Person, smtp: Any) -> None:
    elsewhere = app.test_client()
    assert sign_in(elsewhere, customer, portal=True).status_code == 302
    client = app.test_client()
    form = client.get("/portal/reset")
    assert form.status_code == 200 and "Forgot your password?" in form.get_data(as_text=True)
    answer = post_form(client, "/portal/reset", email=customer.email)
    assert answer.status_code == 200 and "60 minutes" in answer.get_data(as_text=True)
    (mail,) = smtp.wait_for(1)
    assert mail.message["Subject"] == "Reset your password"
    path = link_path(mail.message.get_content())

    page = client.get(path)
    assert page.status_code == 200 and "Choose a new password" in page.get_data(as_text=True)
    token = csrf_from(page.get_data(as_text=True))
    mismatch = client.post(
        path, data={"password": NEW_PASSWORD, "repeat": "something else!", "csrf_token": token}
    )
    assert mismatch.status_code == 422 and "The passwords differ." in mismatch.get_data(
        as_text=True
    )
    short = client.post(path, data={"password": "short", "repeat": "short", "csrf_token": token})
    assert short.status_code == 422
    done = client.post(
        path, data={"password": NEW_PASSWORD, "repeat": NEW_PASSWORD, "csrf_token": token}
    )
    assert done.status_code == 303 and done.headers["Location"] == "/portal/login"

    assert elsewhere.get("/portal/").status_code == 302  # the other session ended
    assert sign_in(app.test_client(), customer, portal=True).status_code == 401
    fresh = app.test_client()
    assert sign_in(fresh, customer, portal=True, password=NEW_PASSWORD).status_code == 302
    assert fresh.get("/portal/").status_code == 200
    assert client.get(path).status_code == 410  # single use
    assert [r.details["via"] for r in audit_rows(app, "auth.password_set")] == ["reset"]


def test_reset_links_live_60_minutes_invitations_7_days(
    app: Flask, client: FlaskClient, customer: Person, monkeypatch: pytest.MonkeyPatch
) -> None:
    reset, invite = emailed_links.SetPasswordKind.RESET, emailed_links.SetPasswordKind.INVITE
    almost_an_hour = _old_token(app, monkeypatch, customer, 59 * 60, kind=reset)
    assert client.get(f"/portal/reset/{almost_an_hour}").status_code == 200
    old_reset = _old_token(app, monkeypatch, customer, 61 * 60, kind=reset)
    assert client.get(f"/portal/reset/{old_reset}").status_code == 410
    six_days = _old_token(app, monkeypatch, customer, 6 * 86400, kind=invite)
    assert client.get(f"/portal/reset/{six_days}").status_code == 200
    eight_days = _old_token(app, monkeypatch, customer, 8 * 86400, kind=invite)
    assert client.get(f"/portal/reset/{eight_days}").status_code == 410


# -- invitations ----------------------------------------------------------------------------


def _contact(app: Flask, email: str = "new.contact@example.org") -> int:
    with app.app_context():
        contact = Contact(name="New Contact", email=email, account=Account(name="Invited AG"))
        db.session.add(contact)
        db.session.commit()
        return contact.id


def test_invitation_flow(app: Flask, make_user: Any, smtp: Any) -> None:
    contact_id = _contact(app)
    agent = app.test_client()
    assert sign_in(agent, make_user(Role.AGENT)).status_code == 302
    token = csrf_from(agent.get("/agent/").get_data(as_text=True))
    invited = agent.post(
        f"/agent/contacts/{contact_id}/invite", data={"csrf_token": token, "next": "/agent/tasks"}
    )
    assert invited.status_code == 303 and invited.headers["Location"] == "/agent/tasks"
    assert "The portal invitation to new.contact@example.org is on its way" in agent.get(
        "/agent/"
    ).get_data(as_text=True)
    assert smtp.messages == []  # the page did not wait for the mail server
    run_jobs(app)
    (mail,) = smtp.wait_for(1)
    assert mail.rcpt_tos == ("new.contact@example.org",)
    assert "7 days" in mail.message.get_content()
    with app.app_context():
        contact = db.session.get(Contact, contact_id)
        assert contact.user is not None and contact.user.roles == {Role.CUSTOMER}
        assert contact.user.password_hash is None

    customer = app.test_client()
    path = link_path(mail.message.get_content())
    page = customer.get(path)
    assert "Welcome to the support portal" in page.get_data(as_text=True)
    customer_token = csrf_from(page.get_data(as_text=True))
    done = customer.post(
        path,
        data={"password": NEW_PASSWORD, "repeat": NEW_PASSWORD, "csrf_token": customer_token},
    )
    assert done.status_code == 303
    person = Person(0, "new.contact@example.org", NEW_PASSWORD)
    landed = sign_in(customer, person, portal=True)
    assert landed.status_code == 302 and landed.headers["Location"] == "/portal/"
    assert customer.get("/portal/").status_code == 200

    again = agent.post(
        f"/agent/contacts/{contact_id}/invite", data={"csrf_token": token}, follow_redirects=True
    )
    assert "has a portal password already" in again.get_data(as_text=True)
    assert len(smtp.messages) == 1
    assert (
        agent.post("/agent/contacts/999999/invite", data={"csrf_token": token}).status_code == 404
    )
    assert [r.details["contact_id"] for r in audit_rows(app, "portal.invite")] == [contact_id]


def test_a_refused_invitation_is_retried_then_reported_on_the_ticket(
    app: Flask, make_user: Any, smtp: Any
) -> None:
    """A mail server that refuses: RQ retries; after the last try the agent reads why."""
    from rq import Queue

    from app.extensions import redis_client
    from tests import factories

    contact_id = _contact(app)
    with app.app_context():
        ticket = factories.ticket(contact=db.session.get(Contact, contact_id))
        db.session.commit()
        number = ticket.number
    agent = app.test_client()
    sign_in(agent, make_user(Role.AGENT))
    token = csrf_from(agent.get(f"/agent/tickets/{number}").get_data(as_text=True))
    agent.post(f"/agent/contacts/{contact_id}/invite", data={"csrf_token": token, "ticket": number})
    smtp.fail_next(5, code=451, message="try again later")
    run_jobs(app)
    with app.app_context():
        queue = Queue("mail", connection=redis_client.connection)
        scheduled = queue.scheduled_job_registry.get_job_ids()
        assert len(scheduled) == 1  # refused once, waiting for its retry
        (job,) = [queue.fetch_job(i) for i in scheduled]
        assert job.retries_left == 3
        for _ in range(4):  # let every retry run now instead of waiting minutes
            for job_id in queue.scheduled_job_registry.get_job_ids():
                queue.scheduled_job_registry.remove(job_id)
                queue.enqueue_job(queue.fetch_job(job_id))
            run_jobs(app)
        assert queue.scheduled_job_registry.get_job_ids() == []
    assert smtp.messages == []
    page = agent.get(f"/agent/tickets/{number}").get_data(as_text=True)
    assert "The portal invitation to new.contact@example.org could not be sent" in page
    assert [r.object_id for r in audit_rows(app, "portal.invite_failed")]
    with app.app_context():  # the login stays: inviting again is one click
        assert db.session.get(Contact, contact_id).user_id is not None


def test_invitation_is_for_agents_only(app: Flask, client: FlaskClient, customer: Person) -> None:
    contact_id = _contact(app)
    sign_in(client, customer, portal=True)
    token = csrf_from(client.get("/portal/").get_data(as_text=True))
    response = client.post(f"/agent/contacts/{contact_id}/invite", data={"csrf_token": token})
    assert response.status_code == 403


def test_invite_contact_links_an_existing_customer_login(app: Flask) -> None:
    with app.app_context():
        from app.accounts.people import create_user

        user = create_user(email="kept@example.org", roles=[Role.CUSTOMER], password=None)
        contact = Contact(name="Kept", email="Kept@example.org")
        db.session.add(contact)
        db.session.flush()
        assert emailed_links.invite_contact(contact, Actor.system()) is user
        assert contact.user is user
        db.session.rollback()


# -- CSRF and rate limits -------------------------------------------------------------------


def test_forms_without_csrf_token_are_refused(
    app: Flask, client: FlaskClient, customer: Person, make_user: Any, smtp: Any
) -> None:
    assert client.post("/portal/sign-in-link", data={"email": customer.email}).status_code == 400
    assert client.post("/portal/reset", data={"email": customer.email}).status_code == 400
    with app.app_context():
        token = emailed_links.sign_in_token(db.session.get(User, customer.id))
    assert client.post(f"/portal/sign-in/{token}").status_code == 400
    assert client.get("/portal/").status_code == 302
    assert client.get(f"/portal/sign-in/{token}").status_code == 200  # still unused
    assert smtp.messages == []
    agent = app.test_client()
    sign_in(agent, make_user(Role.AGENT))
    assert agent.post(f"/agent/contacts/{_contact(app)}/invite").status_code == 400


def test_mail_requests_are_limited_per_address(client: FlaskClient) -> None:
    client.environ_base["REMOTE_ADDR"] = "203.0.113.5"
    for n in range(5):
        url = "/portal/sign-in-link" if n % 2 else "/portal/reset"  # one budget for both
        assert request_link(client, f"someone{n}@example.org", url).status_code == 200
    refused = request_link(client, "someone-else@example.org")
    assert refused.status_code == 429
    html = refused.get_data(as_text=True)
    assert "Too many link requests" in html and "· Vaultdesk</title>" in html
    client.environ_base["REMOTE_ADDR"] = "203.0.113.6"
    assert request_link(client, "someone-else@example.org").status_code == 200


def test_mail_requests_are_limited_per_email(app: Flask, customer: Person) -> None:
    for n in range(5):
        client = app.test_client()
        client.environ_base["REMOTE_ADDR"] = f"198.51.100.{n + 1}"
        assert request_link(client, customer.email.upper()).status_code == 200
    late = app.test_client()
    late.environ_base["REMOTE_ADDR"] = "198.51.100.99"
    assert request_link(late, customer.email).status_code == 429
    assert len(list(outbox(app).iterdir())) == 5


# -- the outbox page ------------------------------------------------------------------------


def test_outbox_page_lists_and_shows_mail(
    app: Flask, client: FlaskClient, make_user: Any, customer: Person
) -> None:
    request_link(app.test_client(), customer.email)
    with app.app_context():
        send_mail("x@example.org", "Later <b>one</b>", "<script>alert(1)</script>\n")
    sign_in(client, make_user(Role.ADMIN))
    listing = client.get("/admin/outbox")
    assert listing.status_code == 200
    html = listing.get_data(as_text=True)
    assert html.index("Later &lt;b&gt;one&lt;/b&gt;") < html.index("Your sign-in link")
    assert customer.email in html
    names = sorted((p.name for p in outbox(app).iterdir()), reverse=True)
    assert html.index(names[0]) < html.index(names[1])

    shown = client.get(f"/admin/outbox/{names[1]}").get_data(as_text=True)
    assert "/portal/sign-in/" in shown and customer.email in shown
    latest = client.get(f"/admin/outbox/{names[0]}").get_data(as_text=True)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in latest and "<script>alert" not in latest

    (Path(app.instance_path) / "outbox" / "notes.eml").write_text("Subject: no\n\nx")
    for bad in (
        "..%2Fsecret_key",
        "..%2F..%2Fetc%2Fpasswd",
        "secret_key",
        "notes.eml",
        "20260101T000000000000Z-0123456789abcdef.eml",
    ):
        assert client.get(f"/admin/outbox/{bad}").status_code == 404, bad
    assert client.get("/admin/outbox/../secret_key").status_code in {404, 308}


def test_outbox_page_is_for_admins_only(
    app: Flask, client: FlaskClient, make_user: Any, customer: Person
) -> None:
    sign_in(client, customer, portal=True)
    assert client.get("/admin/outbox").status_code == 403
    agent = app.test_client()
    sign_in(agent, make_user(Role.AGENT))
    assert agent.get("/admin/outbox").status_code == 403
    assert app.test_client().get("/admin/outbox").status_code == 302


def test_login_page_offers_link_and_reset(client: FlaskClient) -> None:
    html = client.get("/portal/login").get_data(as_text=True)
    assert 'action="/portal/sign-in-link"' in html and "Email me a sign-in link" in html
    assert 'href="/portal/reset"' in html and "Forgot your password?" in html


def test_an_empty_address_is_asked_again(client: FlaskClient, smtp: Any) -> None:
    response = request_link(client, "")
    assert response.status_code == 422
    assert "Email me a sign-in link" in response.get_data(as_text=True)
    assert smtp.messages == []


@pytest.mark.parametrize("url", ["/portal/sign-in-link", "/portal/reset"])
def test_a_link_request_does_the_same_work_whether_or_not_the_account_exists(
    url: str, app: Flask, customer: Person
) -> None:
    """The request only queues a job: same SQL, same queue, so timing cannot tell."""
    from rq import Queue
    from sqlalchemy import event

    from app.extensions import redis_client

    def work_for(email: str) -> tuple[list[str], int]:
        client = app.test_client()
        token = csrf_from(client.get("/portal/login").get_data(as_text=True))
        statements: list[str] = []

        def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            statements.append(statement)

        with app.app_context():
            engine = db.engine
            queue = Queue("mail", connection=redis_client.connection)
            queue.empty()
        event.listen(engine, "before_cursor_execute", seen)
        try:
            response = client.post(url, data={"email": email, "csrf_token": token})
        finally:
            event.remove(engine, "before_cursor_execute", seen)
        assert response.status_code == 200
        assert not outbox(app).exists() or not any(outbox(app).iterdir())  # nothing sent yet
        with app.app_context():
            return statements, queue.count

    known = work_for(customer.email)
    unknown = work_for("nobody-here@example.org")
    assert known == unknown
    assert known[1] == 1  # one job each; the job decides, out of the request
