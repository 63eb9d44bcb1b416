"""An agent opens a ticket for a customer: contact picked or created, intake, files, manager,
confirmation; audited, in the lists; someone else's upload cannot be attached."""

from __future__ import annotations

import io
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from app.actor import Actor
from app.errors import InvalidInput
from app.extensions import db
from app.files.store import store_upload
from app.mail.identities import save_identity
from app.models import OutboxMessage, Role
from app.models.audit import AuditLog
from app.models.files import VaultFile
from app.models.people import Account, Contact, User
from app.models.tickets import Category, Ticket
from app.tickets.creation import Intake, open_for_customer
from tests import factories
from tests.conftest import csrf_from, run_jobs, sign_in


def post_new(client: Any, fields: dict[str, Any], files: list[tuple[bytes, str]] = (), **kw: Any):  # type: ignore[assignment]
    token = csrf_from(client.get("/agent/new").get_data(as_text=True))
    data: dict[str, Any] = {"csrf_token": token, **fields}
    if files:
        data["files"] = [(io.BytesIO(content), name) for content, name in files]
    return client.post("/agent/new", data=data, content_type="multipart/form-data", **kw)


@pytest.fixture
def agent(make_user: Any, client: Any) -> Any:
    person = make_user(Role.AGENT)
    sign_in(client, person)
    return person


def test_phone_ticket_for_a_known_contact_with_a_file_manager_and_category(
    app: Flask, client: Any, agent: Any
) -> None:
    with app.app_context():
        person = factories.contact("Blue Ocean AG")
        billing = Category(name="Billing")
        db.session.add(billing)
        db.session.commit()
        contact_id, category_id = person.id, billing.id
    response = post_new(
        client,
        {
            "contact_id": str(contact_id),
            "via": "phone",
            "subject": "Invoice 2031-04 is wrong",
            "body": "Called at 10:05: the VAT rate is 19 %, not 16 %.",
            "priority": "high",
            "category": str(category_id),
            "assignee": str(agent.id),
        },
        files=[(b"%PDF-1.4 scan", "invoice-scan.pdf")],
    )
    assert response.status_code == 303, response.get_data(as_text=True)[:500]
    number = response.headers["Location"].rsplit("/", 1)[1]
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Invoice 2031-04 is wrong" in page and "invoice-scan.pdf" in page
    with app.app_context():
        t = db.session.scalar(select(Ticket).where(Ticket.number == number))
        assert (t.contact_id, t.priority, t.category_id, t.assignee_id) == (
            contact_id,
            "high",
            category_id,
            agent.id,
        )
        first = t.entries[0]
        assert first.data["via"] == "phone" and first.visibility == "external"
        assert [f.display_name for f in first.attachments] == ["invoice-scan.pdf"]
        actions = db.session.scalars(
            select(AuditLog.action).where(AuditLog.ticket_id == t.id)
        ).all()
        assert {"ticket.create", "ticket.open_for_customer"} <= set(actions)
        row = db.session.scalar(
            select(AuditLog).where(AuditLog.action == "ticket.open_for_customer")
        )
        assert row.actor_id == agent.id and row.details["files"] == 1
    # It lands in the lists (All, and the manager's own).
    listed = client.get(f"/agent/list/all?owner={agent.id}").get_data(as_text=True)
    assert f'data-number="{number}"' in listed


def test_walk_in_creates_contact_and_account_and_confirms_by_mail(
    app: Flask, client: Any, agent: Any
) -> None:
    with app.app_context():
        save_identity(Actor.system(), address="contact@desk.test", name="Desk Support")
        db.session.commit()
    response = post_new(
        client,
        {
            "contact_id": "new",
            "name": "Greta Gruber",
            "email": "Greta@Gruber-Bau.test",
            "phone": "+49 30 1234",
            "account_name": "Gruber Bau GmbH",
            "via": "walk_in",
            "subject": "Badge reader broken",
            "body": "Came to the front desk: the badge reader in hall 2 is dead.",
            "confirm": "1",
        },
    )
    assert response.status_code == 303
    with app.app_context():
        contact = db.session.scalar(select(Contact).where(Contact.email == "greta@gruber-bau.test"))
        assert contact is not None and contact.account.name == "Gruber Bau GmbH"
        assert contact.phone == "+49 30 1234"
        actions = set(db.session.scalars(select(AuditLog.action)))
        assert {"contact.create", "account.create"} <= actions
    run_jobs(app)
    with app.app_context():
        mails = db.session.scalars(
            select(OutboxMessage).where(OutboxMessage.system_kind == "autoresponse")
        ).all()
        assert len(mails) == 1
        assert "greta@gruber-bau.test" in str(mails[0].recipients["to"])
    # A second contact in the same account reuses the account by its name.
    post_new(
        client,
        {
            "contact_id": "new",
            "name": "Hans Gruber",
            "email": "hans@gruber-bau.test",
            "account_name": "gruber bau gmbh",
            "via": "phone",
            "subject": "Same badge reader",
            "body": "Also broken for me.",
        },
    )
    with app.app_context():
        assert db.session.scalar(select(db.func.count(Account.id))) == 1


def test_refusals_keep_what_was_typed_and_store_no_file(
    app: Flask, client: Any, agent: Any
) -> None:
    with app.app_context():
        known = factories.contact()
        db.session.commit()
        known_email = known.email
    response = post_new(
        client,
        {"contact_id": "new", "name": "Twin", "email": known_email, "via": "phone",
         "subject": "Hello", "body": "Text"},
        files=[(b"data", "a.txt")],
    )  # fmt: skip
    assert response.status_code == 409
    html = response.get_data(as_text=True)
    assert "is already the contact" in html and 'value="Hello"' in html
    assert "The attached files were not kept" in html
    empty = post_new(client, {"contact_id": "new", "via": "phone", "subject": "x", "body": "y"})
    assert empty.status_code == 422
    with app.app_context():
        assert db.session.scalar(select(db.func.count(VaultFile.id))) == 0
        assert db.session.scalar(select(db.func.count(Ticket.id))) == 0
    # htmx gets the form back as a fragment, not a page.
    again = post_new(
        client,
        {"contact_id": "new", "via": "phone", "subject": "x", "body": "y"},
        headers={"HX-Request": "true"},
    )
    assert again.status_code == 422 and "<html" not in again.get_data(as_text=True)


def test_someone_elses_upload_cannot_be_attached(app: Flask, client: Any, agent: Any) -> None:
    """The form only attaches files streamed with it; the domain refuses any other."""
    with app.app_context():
        other = factories.staff_user(Role.AGENT)
        victim = factories.ticket("Secret contract")
        secret = store_upload(
            io.BytesIO(b"secret"), "contract.pdf", Actor.staff(other), ticket=victim
        )
        loose = store_upload(io.BytesIO(b"loose"), "loose.txt", Actor.staff(other))
        person = factories.contact()
        db.session.commit()
        secret_id, public_id, contact_id = secret.id, secret.public_id, person.id
        loose_id, victim_id = loose.id, victim.id
    # Naming the file in the form does nothing: no upload path takes ids.
    response = post_new(
        client,
        {"contact_id": str(contact_id), "via": "phone", "subject": "Grab", "body": "Try",
         "files": public_id, "file_id": str(secret_id)},
    )  # fmt: skip
    assert response.status_code == 303
    with app.app_context():
        assert db.session.get(VaultFile, secret_id).ticket_id == victim_id
        number = response.headers["Location"].rsplit("/", 1)[1]
        t = db.session.scalar(select(Ticket).where(Ticket.number == number))
        assert db.session.scalars(select(VaultFile).where(VaultFile.ticket_id == t.id)).all() == []
        # And the domain refuses files that are not the agent's own, unattached uploads.
        me = Actor.staff(db.session.get(User, agent.id))
        for file_id in (secret_id, loose_id):
            with pytest.raises(InvalidInput):
                open_for_customer(
                    me,
                    contact=db.session.get(Contact, contact_id),
                    via=Intake.PHONE,
                    subject="Steal",
                    body="Attach it",
                    files=[db.session.get(VaultFile, file_id)],
                )
            db.session.rollback()


def test_contact_search_fragment_and_customers_cannot_open_the_form(
    app: Flask, client: Any, agent: Any, make_user: Any
) -> None:
    with app.app_context():
        factories.contact("Zeppelin Werke").name = "Zora Zeppelin"
        db.session.commit()
    html = client.get(
        "/agent/customers/contact-choices?contact_q=zeppelin", headers={"HX-Request": "true"}
    ).get_data(as_text=True)
    assert "Zora Zeppelin" in html and 'name="contact_id"' in html and "<html" not in html
    names = client.get(
        "/agent/customers/account-names?account_name=zepp", headers={"HX-Request": "true"}
    ).get_data(as_text=True)
    assert '<option value="Zeppelin Werke">' in names
    customer = make_user(Role.CUSTOMER)
    other = app.test_client()
    sign_in(other, customer, portal=True)
    for url in ("/agent/new", "/agent/customers/contact-choices?contact_q=z"):
        assert other.get(url).status_code in (302, 403)
    token = csrf_from(other.get("/portal/").get_data(as_text=True))
    refused = other.post(
        "/agent/new",
        data={"csrf_token": token, "contact_id": "new", "subject": "x", "body": "y"},
        content_type="multipart/form-data",
    )
    assert refused.status_code in (302, 403)
    with app.app_context():
        assert db.session.scalar(select(db.func.count(Ticket.id))) == 0
