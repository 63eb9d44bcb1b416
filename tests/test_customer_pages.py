"""Contact and account pages for agents: tickets, portal status, invite, links, downloads;
staff only."""

from __future__ import annotations

import io
from typing import Any

from flask import Flask

from app.actor import Actor
from app.extensions import db
from app.files import vault_links
from app.files.store import store_upload
from app.models import Role
from app.models.files import DownloadEvent
from app.models.people import Account, Contact, User
from tests import factories
from tests.conftest import csrf_from, sign_in


def _world(app: Flask, make_user: Any) -> dict[str, Any]:
    customer = make_user(Role.CUSTOMER, account="Nordlicht KG")
    with app.app_context():
        contact = db.session.get(Contact, customer.contact_id)
        contact.sees_account_tickets = True
        colleague = Contact(
            name="Olaf Nordlicht", email="olaf@nordlicht.test", account_id=customer.account_id
        )
        db.session.add(colleague)
        db.session.flush()
        mine = factories.ticket("Heating fails at night", contact=contact)
        theirs = factories.ticket("Water meter readings", contact=colleague)
        agent = factories.staff_user(Role.AGENT)
        file = store_upload(
            io.BytesIO(b"report"), "meter-report.pdf", Actor.staff(agent), ticket=mine
        )
        link = vault_links.issue_link(file, Actor.staff(agent), days=7, contact=contact)
        db.session.add(DownloadEvent(link_id=link.id, file_id=file.id, outcome="served"))
        db.session.add(DownloadEvent(file_id=file.id, user_id=customer.id, outcome="served"))
        db.session.commit()
        return {
            "customer": customer,
            "contact_id": contact.id,
            "colleague_id": colleague.id,
            "account_id": customer.account_id,
            "mine": mine.number,
            "theirs": theirs.number,
        }


def test_contact_page_shows_tickets_portal_links_and_downloads(
    app: Flask, client: Any, make_user: Any
) -> None:
    w = _world(app, make_user)
    sign_in(client, make_user(Role.AGENT))
    html = client.get(f"/agent/contacts/{w['contact_id']}").get_data(as_text=True)
    assert w["mine"] in html and w["theirs"] not in html
    assert "Has a portal login." in html and "Last sign-in" in html
    assert "meter-report.pdf" in html and "Links issued to" in html
    assert "the portal" in html and "a link" in html
    assert "Invite to the portal" not in html  # has a password already
    # A contact without a login gets the invite button, which reuses the invite route.
    other = client.get(f"/agent/contacts/{w['colleague_id']}").get_data(as_text=True)
    assert "No portal login." in other and "Invite to the portal" in other
    sent = client.post(
        f"/agent/contacts/{w['colleague_id']}/invite",
        data={"csrf_token": csrf_from(other), "next": f"/agent/contacts/{w['colleague_id']}"},
    )
    assert sent.status_code == 303
    after = client.get(f"/agent/contacts/{w['colleague_id']}").get_data(as_text=True)
    assert "Invited; no password chosen yet." in after


def test_account_page_lists_contacts_managers_and_tickets(
    app: Flask, client: Any, make_user: Any
) -> None:
    w = _world(app, make_user)
    agent = make_user(Role.AGENT)
    with app.app_context():
        account = db.session.get(Account, w["account_id"])
        account.account_manager = db.session.get(User, agent.id)
        db.session.commit()
    sign_in(client, agent)
    html = client.get(f"/agent/accounts/{w['account_id']}").get_data(as_text=True)
    assert "Nordlicht KG" in html and "Olaf Nordlicht" in html
    assert w["mine"] in html and w["theirs"] in html
    assert "Their account managers" in html and "Our account manager" in html
    # The lists link the customer and the account to these pages.
    listed = client.get("/agent/list/all").get_data(as_text=True)
    assert f'href="/agent/contacts/{w["contact_id"]}"' in listed
    assert f'href="/agent/accounts/{w["account_id"]}"' in listed
    assert client.get("/agent/contacts/999999").status_code == 404
    assert client.get("/agent/accounts/999999").status_code == 404


def test_customer_pages_are_staff_only(app: Flask, make_user: Any) -> None:
    w = _world(app, make_user)
    customer = app.test_client()
    sign_in(customer, w["customer"], portal=True)
    for url in (f"/agent/contacts/{w['contact_id']}", f"/agent/accounts/{w['account_id']}"):
        answer = customer.get(url)
        assert answer.status_code in (302, 403), url
        assert "meter-report.pdf" not in answer.get_data(as_text=True)
    compliance = app.test_client()
    sign_in(compliance, make_user(Role.COMPLIANCE))
    assert compliance.get(f"/agent/contacts/{w['contact_id']}").status_code in (302, 403)
    anonymous = app.test_client()
    assert anonymous.get(f"/agent/contacts/{w['contact_id']}").status_code in (302, 401)
