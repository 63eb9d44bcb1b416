"""Data-subject requests as records: deadlines, the portal form, the register, the audit."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from app.actor import Actor
from app.errors import Conflict, InvalidInput
from app.extensions import db
from app.gdpr import requests as gdpr
from app.models import AuditLog, Role
from app.models.gdpr import GdprAction, GdprRequest
from app.models.people import User
from app.models.types import utcnow
from tests import factories
from tests.conftest import csrf_from, sign_in


def _requests(app: Any) -> list[GdprRequest]:
    with app.app_context():
        rows = list(db.session.scalars(select(GdprRequest)))
        db.session.expunge_all()
        return rows


def _portal_request(
    client: Any, kind: str = "access", password: str | None = None, person: Any = None
) -> Any:
    token = csrf_from(client.get("/portal/profile").get_data(as_text=True))
    return client.post(
        "/portal/profile/gdpr-request",
        data={"csrf_token": token, "kind": kind, "password": password or person.password},
    )


def test_deadline_is_30_days_and_extends_once(ctx: None) -> None:
    officer = factories.staff_user(Role.COMPLIANCE)
    ticket = factories.ticket("Send me everything about me")
    req = gdpr.from_ticket(Actor.staff(officer), ticket, "access")
    assert req.deadline_at == req.received_at + timedelta(days=30)
    with pytest.raises(InvalidInput):
        gdpr.extend(Actor.staff(officer), req, 3, "too much")
    with pytest.raises(InvalidInput):
        gdpr.extend(Actor.staff(officer), req, 2, "  ")
    gdpr.extend(Actor.staff(officer), req, 2, "Many systems to search")
    assert req.deadline_at == req.received_at + timedelta(days=90)
    assert req.extension_reason == "Many systems to search"
    with pytest.raises(Conflict):
        gdpr.extend(Actor.staff(officer), req, 1, "again")


def test_urgency_colours(ctx: None) -> None:
    officer = factories.staff_user(Role.COMPLIANCE)
    req = gdpr.from_ticket(Actor.staff(officer), factories.ticket(), "erasure")
    now = utcnow()
    assert gdpr.urgency(req, req.received_at) == "fine"
    assert gdpr.urgency(req, req.deadline_at - timedelta(days=3)) == "soon"
    assert gdpr.urgency(req, req.deadline_at + timedelta(seconds=1)) == "overdue"
    with pytest.raises(InvalidInput):
        gdpr.set_status(Actor.staff(officer), req, "done", "")
    gdpr.set_status(Actor.staff(officer), req, "done", "Erased on request")
    assert gdpr.urgency(req, now) == "closed"
    with pytest.raises(Conflict):
        gdpr.set_status(Actor.staff(officer), req, "in_progress")


def test_portal_request_end_to_end(app: Any, client: Any, make_user: Any) -> None:
    customer = make_user(Role.CUSTOMER)
    sign_in(client, customer, portal=True)
    refused = _portal_request(client, password="wrong password", person=customer)
    assert refused.status_code == 403
    assert _requests(app) == []
    response = _portal_request(client, person=customer)
    assert response.status_code == 303
    page = client.get("/portal/profile").get_data(as_text=True)
    assert "We received your request" in page
    assert "is being handled" in page
    (req,) = _requests(app)
    assert req.kind == "access" and req.subject_user_id == customer.id
    assert req.ticket_id is not None and req.verified_at is not None
    with app.app_context():
        ticket = db.session.get(GdprRequest, req.id).ticket
        assert ticket.data_subject_request == "access"
    # Asking again shows the open request instead of a second one.
    again = _portal_request(client, person=customer)
    assert again.status_code == 303
    assert "open request of this kind" in client.get("/portal/profile").get_data(as_text=True)
    assert len(_requests(app)) == 1
    # Deleting is another kind: a second record.
    _portal_request(client, "erasure", person=customer)
    assert sorted(r.kind for r in _requests(app)) == ["access", "erasure"]


def test_double_submit_gives_one_request(app: Any, make_user: Any) -> None:
    """Two submits racing: the second one's check ran before the first committed."""
    customer = make_user(Role.CUSTOMER)
    with app.app_context():
        user = db.session.get(User, customer.id)
        gdpr.portal_request(user, "access", customer.password, client_address=None)
        db.session.commit()
    with app.app_context():
        user = db.session.get(User, customer.id)
        original = gdpr.open_request_for
        calls = []

        def first_check_misses(*args: Any) -> Any:
            # The first check runs as if the other submit had not committed yet.
            calls.append(args)
            return None if len(calls) == 1 else original(*args)

        gdpr.open_request_for = first_check_misses  # type: ignore[assignment]
        try:
            # The partial unique index refuses the insert; the winner's record comes back.
            req, created = gdpr.portal_request(
                user, "access", customer.password, client_address=None
            )
        finally:
            gdpr.open_request_for = original  # type: ignore[assignment]
        assert not created and req.id is not None
        db.session.commit()
    assert len(_requests(app)) == 1


def test_another_customer_cannot_see_or_act(app: Any, client: Any, make_user: Any) -> None:
    mine, other = make_user(Role.CUSTOMER), make_user(Role.CUSTOMER)
    sign_in(client, mine, portal=True)
    _portal_request(client, person=mine)
    (req,) = _requests(app)
    client.post("/logout")
    other_client = app.test_client()
    sign_in(other_client, other, portal=True)
    page = other_client.get("/portal/profile").get_data(as_text=True)
    assert "is being handled" not in page
    assert other_client.get(f"/compliance/requests-register/{req.id}").status_code in (302, 403)
    token = csrf_from(page)
    response = other_client.post(
        f"/compliance/requests-register/{req.id}/status",
        data={"csrf_token": token, "status": "refused", "note": "nope"},
    )
    assert response.status_code in (302, 403)
    assert _requests(app)[0].status == "received"


def test_agent_cannot_open_register_compliance_can(app: Any, client: Any, make_user: Any) -> None:
    agent = make_user(Role.AGENT)
    sign_in(client, agent)
    assert client.get("/compliance/requests-register").status_code == 403
    token = csrf_from(client.get("/agent/").get_data(as_text=True))
    refused = client.post(
        "/compliance/requests-register/from-ticket",
        data={"csrf_token": token, "number": "T-1", "kind": "access"},
    )
    assert refused.status_code == 403


def test_compliance_works_a_mailed_request(app: Any, client: Any, make_user: Any) -> None:
    with app.app_context():
        ticket = factories.ticket("Delete me please")
        db.session.commit()
        number = ticket.number
    officer = make_user(Role.COMPLIANCE)
    sign_in(client, officer)
    page = client.get("/compliance/requests-register")
    assert page.status_code == 200
    token = csrf_from(page.get_data(as_text=True))
    made = client.post(
        "/compliance/requests-register/from-ticket",
        data={"csrf_token": token, "number": number, "kind": "erasure"},
    )
    assert made.status_code == 303
    (req,) = _requests(app)
    url = f"/compliance/requests-register/{req.id}"
    for path, data in (
        ("verify", {"how": "Replied from the known address"}),
        ("extend", {"months": "1", "reason": "Complex archive"}),
        ("status", {"status": "in_progress"}),
        ("status", {"status": "done", "note": "Erased, subject told"}),
    ):
        response = client.post(f"{url}/{path}", data={"csrf_token": token, **data})
        assert response.status_code == 303, (path, response.get_data(as_text=True)[:300])
    detail = client.get(url).get_data(as_text=True)
    assert "Replied from the known address" in detail
    assert "Complex archive" in detail
    assert "Erased, subject told" in detail
    assert "Closed" in client.get("/compliance/requests-register").get_data(as_text=True)
    # Every action is in the action log and the audit log.
    with app.app_context():
        actions = [a.action for a in db.session.scalars(select(GdprAction))]
        audited = [
            a.action
            for a in db.session.scalars(
                select(AuditLog).where(AuditLog.object_type == "gdpr_request")
            )
        ]
    assert actions == ["received", "verified", "extended", "status", "status"]
    assert audited == [f"gdpr.{a}" for a in actions]


def test_agent_passes_a_mailed_request_to_compliance(app: Any, client: Any, make_user: Any) -> None:
    with app.app_context():
        number = factories.ticket("Send me all my data").number
        db.session.commit()
    agent = make_user(Role.AGENT)
    sign_in(client, agent)
    page = client.get(f"/agent/tickets/{number}").get_data(as_text=True)
    assert "Pass to compliance" in page
    response = client.post(
        f"/agent/tickets/{number}/gdpr-request",
        data={"csrf_token": csrf_from(page), "kind": "access"},
    )
    assert response.status_code == 303
    (req,) = _requests(app)
    assert req.kind == "access" and req.channel == "mail"
    with app.app_context():
        row = db.session.scalar(select(AuditLog).where(AuditLog.action == "gdpr.received"))
        assert row is not None and row.actor_id == agent.id


def test_customer_cannot_use_the_agent_button(app: Any, client: Any, make_user: Any) -> None:
    with app.app_context():
        number = factories.ticket("Someone else's").number
        db.session.commit()
    customer = make_user(Role.CUSTOMER)
    sign_in(client, customer, portal=True)
    token = csrf_from(client.get("/portal/profile").get_data(as_text=True))
    response = client.post(
        f"/agent/tickets/{number}/gdpr-request", data={"csrf_token": token, "kind": "access"}
    )
    assert response.status_code in (302, 403)
    assert _requests(app) == []
