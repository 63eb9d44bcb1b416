"""Links bound to a recipient: only that address gets the file, by portal sign-in or a code.

Codes travel through the real mail queue (``run_jobs``) into the instance outbox, are
read from the filed mail, and typed back in like a person would.
"""

from __future__ import annotations

import re
from email import policy
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from app.extensions import db
from app.models import DownloadEvent, Role, VaultLink
from tests.conftest import csrf_from, run_jobs, sign_in
from tests.test_links import CONTENT, events, make_link

NORA = "nora@example.test"
ANY_CODE = re.compile(r"^\s+(\d{6})$", re.M)


def outbox(app: Flask) -> list[Any]:
    """Filed mails, oldest first, parsed."""
    folder = Path(app.instance_path) / "outbox"
    if not folder.exists():
        return []
    parsed = []
    for path in sorted(folder.iterdir()):
        with path.open("rb") as handle:
            parsed.append(BytesParser(policy=policy.default).parse(handle))
    return parsed


def code_in(message: Any) -> str:
    (code,) = ANY_CODE.findall(message.get_body(("plain",)).get_content())
    return code


def page(client: FlaskClient, path: str, address: str = "127.0.0.1") -> tuple[str, str]:
    """The landing page's HTML and a CSRF token from it."""
    html = client.get(path, environ_base={"REMOTE_ADDR": address}).get_data(as_text=True)
    return html, csrf_from(html)


def post(client: FlaskClient, path: str, address: str = "127.0.0.1", **data: str) -> Any:
    """Post a landing-page form (its CSRF token fetched first), as a browser at ``address``."""
    landing = path.removesuffix("/code").removesuffix("/confirm")
    _html, token = page(client, landing, address)
    return client.post(
        path, data={"csrf_token": token, **data}, environ_base={"REMOTE_ADDR": address}
    )


def ask_for_code(app: Flask, client: FlaskClient, path: str, address: str = "127.0.0.1") -> str:
    """Press "Mail me a code", let the mail worker run, and read the code from the mail."""
    before = len(outbox(app))
    response = post(client, f"{path}/code", address)
    assert response.status_code == 303, response.get_data(as_text=True)[:300]
    run_jobs(app)
    mails = outbox(app)
    assert len(mails) == before + 1
    return code_in(mails[-1])


def download(client: FlaskClient, path: str, **data: str) -> Any:
    started = post(client, path, **data)
    assert started.status_code == 303, started.get_data(as_text=True)[:500]
    return client.get(started.headers["Location"])


def count(app: Flask, link_id: str) -> int:
    with app.app_context():
        return db.session.get(VaultLink, link_id).download_count


def test_a_stranger_gets_nothing_from_a_recipient_bound_link(app: Flask, client: Any) -> None:
    link = make_link(app, recipient_email=NORA)
    html, token = page(client, link["path"])
    assert "This file is for n***@example.test; we can mail a code to that address." in html
    assert NORA not in html
    assert f'action="{link["path"]}"' not in html  # no Download form to press
    refused = client.post(link["path"], data={"csrf_token": token})
    assert refused.status_code == 403 and CONTENT[:64] not in refused.data
    assert "only for n***@example.test" in refused.get_data(as_text=True)
    assert count(app, link["link_id"]) == 0
    assert ("refused", "recipient_required") in events(app, link["link_id"])


def test_the_recipient_confirms_a_mailed_code_and_downloads(app: Flask, client: Any) -> None:
    link = make_link(app, recipient_email=NORA, password="s3cret-phrase")
    # Whatever the visitor types, the code goes to the link's recipient only.
    before = post(client, f"{link['path']}/code", email="mallory@evil.test")
    assert before.status_code == 303
    assert outbox(app) == []  # queued, not sent from the request
    run_jobs(app)
    (mail,) = outbox(app)
    assert mail["To"] == NORA and mail["Subject"] == "Your download code"
    code = code_in(mail)
    text = mail.get_body(("plain",)).get_content()
    assert "report.pdf" in text and "10 minutes" in text
    html, _token = page(client, link["path"])
    assert "We mailed a code to n***@example.test" in html and 'name="code"' in html
    # Stored only as a keyed hash, for ten minutes at most.
    redis = app.extensions["vaultdesk_redis"]
    (key,) = redis.keys(f"vaultdesk:link-code:{link['link_id']}:*")
    stored = redis.hgetall(key)
    assert code.encode() not in b"".join(stored.values()) and 0 < redis.ttl(key) <= 600
    wrong = "000000" if code != "000000" else "111111"
    refused = post(client, f"{link['path']}/confirm", code=wrong)
    assert refused.status_code == 403 and "That code is not right." in refused.get_data(
        as_text=True
    )
    assert (
        post(client, f"{link['path']}/confirm", code=f" {code[:3]} {code[3:]} ").status_code == 303
    )
    html, _token = page(client, link["path"])
    assert "You confirmed the code mailed to the recipient." in html and 'name="password"' in html
    assert download(client, link["path"], password="s3cret-phrase").data == CONTENT
    # The code works once.
    assert post(client, f"{link['path']}/confirm", code=code).status_code == 403
    assert events(app, link["link_id"])[1:] == [  # after the first landing view
        ("challenged", "code_sent"),
        ("viewed", None),
        ("viewed", None),
        ("refused", "wrong_code"),
        ("viewed", None),
        ("verified", "code"),
        ("viewed", None),
        ("viewed", None),
        ("granted", "recipient_code"),
        ("served", None),
        ("viewed", None),
        ("refused", "no_code"),
    ]


def test_the_proof_stays_in_the_browser_that_confirmed(app: Flask, client: Any) -> None:
    link = make_link(app, recipient_email=NORA)
    code = ask_for_code(app, client, link["path"])
    other = app.test_client()  # another browser: the code was not asked for there
    assert post(other, f"{link['path']}/confirm", code=code).status_code == 403
    assert post(client, f"{link['path']}/confirm", code=code).status_code == 303
    assert post(other, link["path"]).status_code == 403  # nor does the proof travel
    # Even copied into another browser's session, the proof names the browser it was for.
    with client.session_transaction() as session:
        proof = session["link_proofs"][link["link_id"]]
    with other.session_transaction() as session:
        session["link_browser"] = "another-browser"
        session["link_proofs"] = {link["link_id"]: proof}
    assert post(other, link["path"]).status_code == 403
    assert download(client, link["path"]).data == CONTENT


def test_strangers_cannot_spend_the_recipients_code(app: Flask, client: Any) -> None:
    link = make_link(app, recipient_email=NORA)
    code = ask_for_code(app, client, link["path"], "198.51.100.9")
    stranger = app.test_client()
    ask_for_code(app, stranger, link["path"], "203.0.113.7")
    for _ in range(5):
        assert post(
            stranger, f"{link['path']}/confirm", "203.0.113.7", code="123456"
        ).status_code in (
            403,
            429,
        )
    assert post(stranger, f"{link['path']}/confirm", "203.0.113.7", code=code).status_code == 429
    confirmed = post(client, f"{link['path']}/confirm", "198.51.100.9", code=code)
    assert confirmed.status_code == 303


def test_a_code_takes_five_tries(app: Flask, client: Any) -> None:
    app.config["LINK_GUESS_LIMIT"] = "100 per minute"
    link = make_link(app, recipient_email=NORA)
    code = ask_for_code(app, client, link["path"])
    wrong = "000000" if code != "000000" else "111111"
    for _ in range(5):
        assert post(client, f"{link['path']}/confirm", code=wrong).status_code == 403
    spent = post(client, f"{link['path']}/confirm", code=code)
    assert spent.status_code == 403 and "no valid code" in spent.get_data(as_text=True)
    assert events(app, link["link_id"]).count(("refused", "wrong_code")) == 5


def test_codes_per_client_and_per_link_are_limited(app: Flask, client: Any) -> None:
    link = make_link(app, recipient_email=NORA)
    for _ in range(3):
        assert post(client, f"{link['path']}/code", "203.0.113.7").status_code == 303
    limited = post(client, f"{link['path']}/code", "203.0.113.7")
    assert limited.status_code == 429 and "Too many codes" in limited.get_data(as_text=True)
    assert post(client, f"{link['path']}/code", "203.0.113.8").status_code == 303
    assert post(client, f"{link['path']}/code", "203.0.113.9").status_code == 303
    # Five mails an hour per link, whoever asks: the recipient's inbox is not a target.
    assert post(client, f"{link['path']}/code", "198.51.100.1").status_code == 429
    run_jobs(app)
    assert len(outbox(app)) == 5
    assert events(app, link["link_id"]).count(("refused", "code_limit")) == 2


def test_a_signed_in_customer_with_that_address_downloads_straight_away(
    app: Flask, client: Any, make_user: Any
) -> None:
    nora = make_user(Role.CUSTOMER, email=NORA)
    link = make_link(app, recipient_email=NORA.upper())
    html, _token = page(client, link["path"])
    (sign_in_url,) = re.findall(r'href="(/portal/login\?next=[^"]+)"', html)
    form = csrf_from(client.get(sign_in_url).get_data(as_text=True))
    signed_in = client.post(
        sign_in_url, data={"email": nora.email, "password": nora.password, "csrf_token": form}
    )
    assert signed_in.headers["Location"] == link["path"]  # back to the link, signed in
    html, _token = page(client, link["path"])
    assert "You are signed in as the recipient." in html and "Mail me a code" not in html
    assert download(client, link["path"]).data == CONTENT
    with app.app_context():
        granted = db.session.scalar(select(DownloadEvent).where(DownloadEvent.outcome == "granted"))
        assert (granted.reason, granted.user_id) == ("recipient_signed_in", nora.id)


@pytest.mark.parametrize("who", ["other customer", "staff with that address"])
def test_other_signed_in_accounts_still_need_the_code(
    app: Flask, client: Any, make_user: Any, who: str
) -> None:
    if who == "other customer":
        person, portal = make_user(Role.CUSTOMER, email="olga@example.test"), True
    else:
        person, portal = make_user(Role.AGENT, email=NORA), False
    link = make_link(app, recipient_email=NORA)
    sign_in(client, person, portal=portal)
    html, _token = page(client, link["path"])
    assert "we can mail a code to that address" in html
    assert post(client, link["path"]).status_code == 403


def test_the_code_mail_speaks_the_recipients_language(
    app: Flask, client: Any, make_user: Any
) -> None:
    from app.models import User

    nora = make_user(Role.CUSTOMER, email=NORA)
    with app.app_context():
        db.session.get(User, nora.id).language = "de"
        db.session.commit()
    link = make_link(app, recipient_email=NORA)
    ask_for_code(app, client, link["path"])
    (mail,) = outbox(app)
    assert mail["Subject"] == "Ihr Download-Code"
    assert "10 Minuten" in mail.get_body(("plain",)).get_content()


def test_a_link_revoked_before_the_job_runs_mails_nothing(app: Flask, client: Any) -> None:
    from app.actor import Actor
    from app.files import vault_links

    link = make_link(app, recipient_email=NORA)
    assert post(client, f"{link['path']}/code").status_code == 303
    with app.app_context():
        row = db.session.get(VaultLink, link["link_id"])
        vault_links.revoke_link(row, Actor.system(), "wrong customer")
        db.session.commit()
    run_jobs(app)
    assert outbox(app) == []
    assert events(app, link["link_id"])[-1] == ("refused", "revoked")


def test_the_agents_link_list_says_what_is_enforced(
    app: Flask, client: Any, make_user: Any
) -> None:
    link = make_link(app, recipient_email=NORA)
    sign_in(client, make_user(Role.AGENT))
    with app.app_context():
        from app.models import VaultFile

        public_id = db.session.get(VaultFile, link["file_id"]).public_id
    html = client.get(f"/agent/tickets/{link['ticket']}/files/{public_id}/links").get_data(
        as_text=True
    )
    assert f"only {NORA}, after confirming a mailed code or signed in to the portal" in html
    assert "Only this address can download: the recipient confirms a code we mail to it" in html


def test_a_reply_with_a_file_reaches_the_real_customer(
    app: Flask, client: Any, make_user: Any
) -> None:
    """The mail pipeline binds reply links to the ticket's To: both ways in must work."""
    import io

    from app.actor import Actor
    from app.mail.identities import save_identity
    from app.models import Contact, OutboxMessage
    from tests import factories

    nora = make_user(Role.CUSTOMER, email=NORA)
    with app.app_context():
        ticket = factories.ticket(
            "Signed contract", contact=db.session.get(Contact, nora.contact_id)
        )
        identity = save_identity(Actor.system(), address="contact@desk.test", name="Desk")
        db.session.commit()
        number, identity_id = ticket.number, identity.id
    staff = app.test_client()
    sign_in(staff, make_user(Role.AGENT))
    token = csrf_from(staff.get(f"/agent/tickets/{number}").get_data(as_text=True))
    answered = staff.post(
        f"/agent/tickets/{number}/answer",
        data={
            "csrf_token": token,
            "visibility": "public",
            "identity_id": str(identity_id),
            "body": "Here is the signed contract.",
            "files": [(io.BytesIO(CONTENT), "contract.pdf")],
        },
        content_type="multipart/form-data",
    )
    assert answered.status_code == 303
    run_jobs(app)  # the reply itself goes out (filed: no SMTP here)
    with app.app_context():
        assert db.session.scalar(select(OutboxMessage)).status == "sent"
        link = db.session.scalar(select(VaultLink))
        assert link.recipient_email == NORA
    (reply,) = [m for m in outbox(app) if m["To"] and NORA in m["To"]]
    body = reply.get_body(("plain",)).get_content()
    (url,) = re.findall(r"contract\.pdf: (\S+)", body)
    path = url.removeprefix("http://localhost:5000")
    # Not signed in (another device): a code to the address the reply went to.
    elsewhere = app.test_client()
    code = ask_for_code(app, elsewhere, path)
    assert outbox(app)[-1]["To"] == NORA
    assert post(elsewhere, f"{path}/confirm", code=code).status_code == 303
    assert download(elsewhere, path).data == CONTENT
    # Signed in to the portal: straight to the file.
    sign_in(client, nora, portal=True)
    assert download(client, path).data == CONTENT
