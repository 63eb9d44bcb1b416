"""Issue 11, points 17-19: the compliance screens name people and objects, read as
sentences, filter and export; customers' downloads are the customers'; data-subject
request tickets are readable by compliance, read-only, and nothing else is."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select

from app import audit
from app.actor import Actor
from app.extensions import db
from app.files.store import store_upload
from app.models import AuditLog, Role
from app.models.people import Contact, User
from app.models.tickets import Ticket
from app.tickets.changes import add_note
from tests import factories
from tests.conftest import csrf_from, sign_in

HTMX = {"HX-Request": "true"}


@pytest.fixture
def officer(make_user: Any, client: Any) -> Any:
    person = make_user(Role.COMPLIANCE)
    assert sign_in(client, person).status_code == 302
    return person


def _text(response: Any) -> str:
    return response.get_data(as_text=True)


# -- 17: a customer's portal download is the customer's ------------------------------------


def test_a_customers_portal_download_is_labelled_as_theirs(
    app: Any, client: Any, make_user: Any, officer: Any
) -> None:
    customer = make_user(Role.CUSTOMER)
    with app.app_context():
        contact = db.session.get(Contact, customer.contact_id)
        ticket = factories.ticket("Invoice", contact=contact)
        file = store_upload(
            io.BytesIO(b"%PDF-1.4 invoice"),
            "invoice-march.pdf",
            Actor.system(),
            ticket=ticket,
            entry=ticket.entries[0],
        )
        db.session.commit()
        number, public_id = ticket.number, file.public_id
        name = db.session.get(User, customer.id).name
    portal = app.test_client()
    assert sign_in(portal, customer, portal=True).status_code == 302
    got = portal.get(f"/portal/tickets/{number}/files/{public_id}")
    assert got.status_code == 200 and got.data == b"%PDF-1.4 invoice"

    html = _text(client.get("/compliance/downloads?outcome=served"))
    assert "Customer, in the portal" in html and name in html
    assert "Staff" not in html.split('id="download-table"')[1]
    exported = _text(client.get("/compliance/downloads.csv?outcome=served"))
    (row,) = list(csv.DictReader(io.StringIO(exported.lstrip("\ufeff"))))
    assert row["Through"] == "Customer, in the portal" and row["Who"] == name


# -- 18: the audit log reads like sentences ------------------------------------------------


def _audit_world(app: Any) -> dict[str, Any]:
    with app.app_context():
        agent = factories.staff_user(Role.AGENT)
        agent.name = "Anna Berg"
        ticket = factories.ticket("Printer on fire")
        row = audit.record(
            Actor.staff(agent, "198.51.100.7"),
            "ticket.status",
            "ticket",
            ticket.number,
            ticket_id=ticket.id,
            **{"from": "open", "to": "resolved"},
        )
        row.at = datetime(2026, 12, 2, 13, 5, tzinfo=UTC)
        audit.record(
            Actor.staff(agent),
            "ticket.assign",
            "ticket",
            ticket.number,
            ticket_id=ticket.id,
            assignee_id=agent.id,
            team_id=None,
        )
        old = audit.record(Actor.staff(agent), "user.profile", "user", agent.id, language="de")
        old.at = datetime(2025, 1, 15, 9, 0, tzinfo=UTC)
        audit.record(
            Actor.system("importer"),
            "widget.frobnicate",
            "widget",
            "w-1",
            colour="=HYPERLINK(\"http://evil.test\")",
            tries=3,
        )
        db.session.commit()
        return {"agent_id": agent.id, "number": ticket.number}


def test_the_audit_log_names_objects_and_says_what_happened(
    app: Any, client: Any, officer: Any
) -> None:
    w = _audit_world(app)
    html = _text(client.get("/compliance/"))
    assert "Changed the status from Open to Resolved." in html
    assert "Gave the ticket to Anna Berg (team: no team)." in html
    assert "Anna Berg" in html and w["number"] in html and "Printer on fire" in html
    assert "person #" not in html and f"user {w['agent_id']}" not in html
    # An action nobody taught the screen still reads as a list, never as JSON.
    assert "<dt>Colour</dt>" in html and "<dt>Tries</dt><dd>3</dd>" in html
    table = html.split('<div id="audit-table">')[1]
    assert "{&#34;" not in table and '{"' not in table


def test_audit_filters_live_in_the_url(app: Any, client: Any, officer: Any) -> None:
    w = _audit_world(app)

    def actions(query: str) -> list[str]:
        body = _text(client.get(f"/compliance/?{query}", headers=HTMX))
        assert body.lstrip().startswith('<div id="audit-table">')
        return [
            part.split('"')[0] for part in body.split('class="audit-row" data-action="')[1:]
        ]

    assert set(actions("actor=anna")) == {"ticket.status", "ticket.assign", "user.profile"}
    assert actions("action=ticket.status") == ["ticket.status"]
    assert set(actions("action=ticket.")) >= {"ticket.status", "ticket.assign", "ticket.create"}
    assert "user.profile" not in actions(f"object={w['number']}")
    assert set(actions(f"object={w['number']}")) >= {"ticket.status", "ticket.assign"}
    assert actions("object=Anna Berg&kind=user") == ["user.profile", "user.create"]
    assert actions("from=2025-01-15&to=2025-01-15") == ["user.profile"]
    assert "user.profile" not in actions("from=2025-01-16")
    page = _text(client.get("/compliance/?from=nonsense&actor=anna"))
    assert "is not a date" in page and 'value="anna"' in page
    # The export link carries the same filters.
    assert 'href="/compliance/audit.csv?actor=anna"' in page


def test_every_list_exports_csv_safely_with_the_same_filters(
    app: Any, client: Any, officer: Any
) -> None:
    _audit_world(app)
    response = client.get("/compliance/audit.csv?actor=importer")
    assert response.status_code == 200 and response.is_streamed
    assert response.headers["Content-Type"].startswith("text/csv")
    assert response.headers["Content-Disposition"].startswith('attachment; filename="audit-log-')
    rows = list(csv.reader(io.StringIO(_text(response).lstrip("\ufeff"))))
    assert rows[0][:3] == ["Time (UTC)", "Time", "Who"]
    (line,) = rows[1:]
    assert line[2] == "importer" and line[4] == "widget.frobnicate"
    details = line[10]
    assert "Colour: =HYPERLINK" in details and "Tries: 3" in details, repr(line)
    # A cell starting with = + - @ would run as a formula in a spreadsheet.
    for cell in line:
        assert not cell.startswith(("=", "+", "-", "@"))
    for path in ("/compliance/links.csv", "/compliance/downloads.csv"):
        exported = client.get(path)
        assert exported.status_code == 200 and exported.is_streamed, path
        assert _text(exported).startswith("\ufeff"), path


def test_a_formula_in_a_cell_is_defused() -> None:
    from app.web.compliance.export import safe_cell

    for dangerous in ("=1+1", "+1", "-1", "@SUM(A1)", "\t=1", "\r=1"):
        assert safe_cell(dangerous) == "'" + dangerous
    assert safe_cell("Printer on fire") == "Printer on fire"
    assert safe_cell(None) == "" and safe_cell(3) == "3"


def test_a_formula_typed_by_a_customer_is_defused_in_the_export(
    app: Any, client: Any, officer: Any
) -> None:
    with app.app_context():
        ticket = factories.ticket("=cmd|' /C calc'!A0")
        db.session.commit()
        number = ticket.number
    text = _text(client.get(f"/compliance/audit.csv?object={number}"))
    assert "=cmd" in text
    for row in csv.reader(io.StringIO(text.lstrip("\ufeff"))):
        assert not any(cell.startswith("=") for cell in row)


@pytest.mark.parametrize("role", [Role.AGENT, Role.SUPERVISOR, Role.ADMIN])
def test_exports_and_requests_refuse_other_staff(app: Any, make_user: Any, role: Role) -> None:
    other = app.test_client()
    assert sign_in(other, make_user(role)).status_code == 302
    for path in (
        "/compliance/audit.csv",
        "/compliance/links.csv",
        "/compliance/downloads.csv",
        "/compliance/requests",
    ):
        assert other.get(path).status_code == 403, path


def test_anonymous_exports_are_sent_to_sign_in(app: Any) -> None:
    response = app.test_client().get("/compliance/audit.csv")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


# -- 19: data-subject requests, read-only ----------------------------------------------------


def _data_request(app: Any, make_user: Any) -> dict[str, Any]:
    customer = make_user(Role.CUSTOMER)
    portal = app.test_client()
    assert sign_in(portal, customer, portal=True).status_code == 302
    token = csrf_from(_text(portal.get("/portal/profile")))
    assert portal.post("/portal/profile/data-copy", data={"csrf_token": token}).status_code in (
        302,
        303,
    )
    with app.app_context():
        ticket = db.session.scalar(select(Ticket).where(Ticket.data_subject_request.is_not(None)))
        assert ticket is not None and ticket.data_subject_request == "access"
        agent = factories.staff_user(Role.AGENT)
        add_note(ticket, Actor.staff(agent), "Export started, due Friday.")
        ordinary = factories.ticket("Ordinary question")
        ordinary.tags  # noqa: B018 - loaded before commit
        db.session.commit()
        return {"number": ticket.number, "ordinary": ordinary.number}


def test_a_data_request_is_marked_and_audited_at_creation(app: Any, make_user: Any) -> None:
    w = _data_request(app, make_user)
    with app.app_context():
        rows = list(
            db.session.scalars(select(AuditLog).where(AuditLog.action == "gdpr.access_request"))
        )
        assert [r.object_id for r in rows] == [w["number"]]
        ordinary = db.session.scalar(select(Ticket).where(Ticket.number == w["ordinary"]))
        assert ordinary.data_subject_request is None


def test_the_officer_reads_a_data_request_ticket_read_only(
    app: Any, client: Any, make_user: Any, officer: Any
) -> None:
    w = _data_request(app, make_user)
    listing = _text(client.get("/compliance/requests"))
    assert w["number"] in listing and w["ordinary"] not in listing
    assert "A copy of their personal data (GDPR Art. 15)" in listing
    response = client.get(f"/compliance/requests/{w['number']}")
    assert response.status_code == 200
    html = _text(response)
    assert "asks for a copy of the personal data" in html  # the customer's first entry
    assert "Export started, due Friday." in html and "Internal" in html  # notes shown, marked
    main = html.split('<main id="main"')[1].split("</main>")[0]
    assert "<form" not in main  # nothing to change here
    # The audit log links the request's ticket to this view.
    assert f'href="/compliance/requests/{w["number"]}"' in _text(
        client.get(f"/compliance/?object={w['number']}")
    )


def test_the_officer_cannot_open_any_other_ticket(
    app: Any, client: Any, make_user: Any, officer: Any
) -> None:
    w = _data_request(app, make_user)
    assert client.get(f"/compliance/requests/{w['ordinary']}").status_code == 404
    assert client.get("/compliance/requests/T-000000").status_code == 404
    # Read-only: nothing under the request answers a write.
    token = csrf_from(_text(client.get("/compliance/requests")))
    assert (
        client.post(f"/compliance/requests/{w['number']}", data={"csrf_token": token}).status_code
        == 405
    )
    # The agent's ticket page (and its writes) stay closed to the compliance officer.
    assert client.get(f"/agent/tickets/{w['number']}").status_code == 403
    assert client.get(f"/agent/tickets/{w['ordinary']}").status_code == 403
    note = client.post(
        f"/agent/tickets/{w['number']}/answer",
        data={"csrf_token": token, "body": "x", "visibility": "internal"},
    )
    assert note.status_code == 403


def test_an_agent_cannot_use_the_compliance_request_view(
    app: Any, make_user: Any
) -> None:
    w = _data_request(app, make_user)
    agent = app.test_client()
    assert sign_in(agent, make_user(Role.AGENT)).status_code == 302
    assert agent.get(f"/compliance/requests/{w['number']}").status_code == 403
