"""SLA in the browser-facing pages: the admin's policy screen (admins only), the agent lists'
Due column with time left and the Near breach / Overdue filters, the ticket page's facts,
and the portal's "You will hear from ..." line (English and German)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import Flask
from sqlalchemy import select

from app.actor import Actor
from app.extensions import db
from app.models import Role
from app.models.audit import AuditLog
from app.models.people import User
from app.models.sla import SlaPolicy
from app.models.tickets import Priority, Ticket
from app.models.types import utcnow
from app.sla.targets import recompute_due
from tests import factories
from tests.conftest import Person, csrf_from


def test_admins_create_and_edit_policies_other_staff_cannot(
    app: Flask, client: Any, make_user: Any, login: Any
) -> None:
    agent = make_user(Role.AGENT)
    login(agent)
    assert client.get("/admin/sla").status_code in (302, 403)
    token = csrf_from(client.get("/agent/").get_data(as_text=True))
    refused = client.post(
        "/admin/sla",
        data={"csrf_token": token, "name": "Sneaky", "priority": "low", "first_hours": "1"},
    )
    assert refused.status_code in (302, 403)
    with app.app_context():
        assert db.session.scalar(select(SlaPolicy)) is None
    client.get("/logout")
    client.post("/logout", data={"csrf_token": token})

    admin = make_user(Role.ADMIN)
    login(admin)
    page = client.get("/admin/sla").get_data(as_text=True)
    assert "No SLA policy yet" in page and "most specific active policy" in page
    form = {
        "csrf_token": csrf_from(page),
        "name": "Urgent everywhere",
        "priority": "urgent",
        "first_hours": "0",
        "first_minutes": "30",
        "resolution_hours": "4",
        "resolution_minutes": "0",
        "pause_when_waiting": "1",
        "notify_at_once": "1",
        "warn_percent": "75",
        "active": "1",
    }
    assert client.post("/admin/sla", data=form).status_code == 303
    listing = client.get("/admin/sla").get_data(as_text=True)
    assert "Urgent everywhere" in listing and "30 min" in listing and "4 h" in listing
    # The same facts twice: refused with the reason, nothing stored.
    again = client.post("/admin/sla", data={**form, "name": "Duplicate"})
    assert again.status_code == 409 and "covers the same priority" in again.get_data(as_text=True)
    bad = client.post("/admin/sla", data={**form, "priority": "low", "first_minutes": "x"})
    assert bad.status_code == 422
    with app.app_context():
        (policy,) = db.session.scalars(select(SlaPolicy)).all()
        assert policy.first_response_minutes == 30 and policy.notify_at_once
        policy_id = policy.id
        assert db.session.scalar(
            select(AuditLog).where(AuditLog.action == "sla_policy.created")
        ).actor_id == admin.id
    edit = client.get(f"/admin/sla/{policy_id}").get_data(as_text=True)
    changed = {**form, "csrf_token": csrf_from(edit), "first_minutes": "45"}
    assert client.post(f"/admin/sla/{policy_id}", data=changed).status_code == 303
    with app.app_context():
        assert db.session.get(SlaPolicy, policy_id).first_response_minutes == 45
    assert client.post(
        f"/admin/sla/{policy_id}/delete", data={"csrf_token": csrf_from(edit)}
    ).status_code == 303
    with app.app_context():
        assert db.session.get(SlaPolicy, policy_id) is None


def _desk(app: Flask) -> dict[str, str]:
    """Three open tickets of a 24/7 desk: one fresh, one near breach, one overdue."""
    from datetime import time

    from app.sla import calendars

    with app.app_context():
        always = calendars.save_calendar(
            Actor.system(),
            None,
            name="Round the clock",
            zone="UTC",
            country="",
            subdivision="",
            shifts=[(d, time(0), time(0)) for d in range(7)],
            is_default=True,
        )
        del always
        db.session.add(
            SlaPolicy(
                name="Normal",
                priority="normal",
                first_response_minutes=60,
                resolution_minutes=600,
                warn_percent=80,
            )
        )
        db.session.flush()
        now = utcnow()
        made = {}
        for key, age in (("fresh", 5), ("near", 50), ("late", 95)):
            ticket = factories.ticket(f"{key} ticket", priority=Priority.NORMAL)
            ticket.created_at = now - timedelta(minutes=age)
            recompute_due(ticket, now)
            made[key] = ticket.number
        db.session.commit()
        return made


def test_the_list_shows_time_left_and_flags_near_breach_and_overdue(
    app: Flask, client: Any, make_user: Any, login: Any
) -> None:
    made = _desk(app)
    login(make_user(Role.AGENT))
    html = client.get("/agent/list/all").get_data(as_text=True)

    def row(number: str) -> str:
        start = html.index(f'data-number="{number}"')
        return html[start : html.index("</tr>", start)]

    assert "min left" in row(made["fresh"]) and "Near breach" not in row(made["fresh"])
    assert "Near breach" in row(made["near"]) and "min left" in row(made["near"])
    assert "Overdue" in row(made["late"]) and "overdue by 3" in row(made["late"])
    near = client.get("/agent/list/all?near=1").get_data(as_text=True)
    assert made["near"] in near and made["fresh"] not in near and made["late"] not in near
    late = client.get("/agent/list/all?overdue=1").get_data(as_text=True)
    assert made["late"] in late and made["near"] not in late and made["fresh"] not in late
    # The filter survives in the form and in htmx requests (a fragment).
    fragment = client.get("/agent/list/all?near=1", headers={"HX-Request": "true"})
    assert "<html" not in fragment.get_data(as_text=True)
    assert made["near"] in fragment.get_data(as_text=True)
    assert 'name="near" value="1" checked' in near

    page = client.get(f"/agent/tickets/{made['near']}").get_data(as_text=True)
    assert "First answer due" in page and "Near breach" in page and "Resolution due" in page


def _customer_ticket(app: Flask, customer: Person, language: str) -> str:
    with app.app_context():
        db.session.add(
            SlaPolicy(
                name="Normal",
                priority="normal",
                first_response_minutes=120,
                resolution_minutes=960,
                warn_percent=80,
            )
        )
        user = db.session.get(User, customer.id)
        user.language = language
        user.timezone = "Europe/Berlin"
        agent = factories.staff_user(Role.AGENT)
        agent.name = "Anna Agent"
        contact = user.contact
        ticket = factories.ticket("VPN down", contact=contact, assignee=agent)
        # A Friday afternoon far ahead: two business hours end on Monday at 10:00.
        from datetime import UTC, datetime
        from zoneinfo import ZoneInfo

        ticket.created_at = datetime(2030, 11, 22, 16, tzinfo=ZoneInfo("Europe/Berlin")).astimezone(
            UTC
        )
        recompute_due(ticket, ticket.created_at)
        db.session.commit()
        return ticket.number


def test_the_portal_says_when_the_customer_will_hear_back_in_english(
    app: Flask, client: Any, make_user: Any, login: Any
) -> None:
    customer = make_user(Role.CUSTOMER)
    number = _customer_ticket(app, customer, "en")
    login(customer, portal=True)
    html = client.get(f"/portal/tickets/{number}").get_data(as_text=True)
    assert "You will hear from Anna on Monday, 25 November, before 10:00" in html


def test_the_portal_says_it_in_german_dates_too(
    app: Flask, client: Any, make_user: Any, login: Any
) -> None:
    customer = make_user(Role.CUSTOMER)
    number = _customer_ticket(app, customer, "de")
    login(customer, portal=True)
    html = client.get(f"/portal/tickets/{number}").get_data(as_text=True)
    assert "Montag, 25. November" in html and "10:00" in html and "Anna" in html
    with app.app_context():
        ticket = db.session.scalar(select(Ticket).where(Ticket.number == number))
        ticket.first_responded_at = utcnow()
        db.session.commit()
    answered = client.get(f"/portal/tickets/{number}").get_data(as_text=True)
    assert "Montag, 25. November" not in answered  # answered: no promise left to make
