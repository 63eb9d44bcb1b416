"""Portal requests read the customer's own tickets, never the whole desk.

Speed is the bench's business (``bench/portal_load.py``); these tests check the shape
that makes it possible, without a clock. Every statement a portal request runs is
recorded and handed to SQLite's ``EXPLAIN QUERY PLAN``: no plan may ``SCAN`` a table, so
tickets, entries, read marks and files are all reached through an index from the
customer, the ticket number or the ticket id. A query that groups every entry of the desk
(the old unread flag) shows up as ``SCAN stream_entry`` whatever the data.

The ticket page and the poll must also run the same number of statements for a long
conversation as for a short one: no query per entry.

An empty test database has no ``ANALYZE`` statistics, like a freshly installed desk: the
planner decides by the schema alone, so the plans are the same on every run.
"""

from __future__ import annotations

import io
import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event, func, select

from app.actor import Actor
from app.extensions import db
from app.models.people import Contact, Role, User
from app.models.tickets import Channel, EntryKind, Status, StreamEntry, Ticket
from app.tickets import change_status, create_ticket
from app.tickets.inbox import mark_read
from app.tickets.stream import add_entry
from tests.conftest import Person, csrf_from, sign_in

HX = {"HX-Request": "true"}
SCAN = re.compile(r"\bSCAN (\w+)")


@contextmanager
def recorded(app: Any) -> Iterator[list[tuple[str, Any]]]:
    """Every statement the app sends to the database while the block runs."""
    statements: list[tuple[str, Any]] = []

    def keep(conn: Any, cursor: Any, statement: str, parameters: Any, *args: Any) -> None:
        statements.append((statement, parameters))

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", keep)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", keep)


def table_scans(app: Any, statements: list[tuple[str, Any]]) -> list[str]:
    """``table: statement`` for each plan step that reads a whole table (or a whole index)."""
    with app.app_context():
        path = db.engine.url.database
        tables = set(db.metadata.tables)
    scans = []
    with sqlite3.connect(path) as conn:
        for statement, parameters in statements:
            if not statement.lstrip().upper().startswith(("SELECT", "WITH", "UPDATE", "DELETE")):
                continue
            for *_, detail in conn.execute("EXPLAIN QUERY PLAN " + statement, parameters):
                match = SCAN.search(detail)
                if match and match.group(1) in tables:
                    scans.append(f"{match.group(1)}: {' '.join(statement.split())[:200]}")
    return scans


def _portal_ticket(app: Any, person: Person, subject: str) -> str:
    with app.app_context():
        ticket = create_ticket(
            Channel.PORTAL,
            Actor.customer(db.session.get(User, person.id)),
            subject=subject,
            body_text="Help!",
            contact=db.session.get(Contact, person.contact_id),
        )
        db.session.commit()
        return ticket.number


def _desk_answers(app: Any, agent: Person, number: str, text: str = "Try this.") -> None:
    with app.app_context():
        ticket = db.session.scalar(select(Ticket).where(Ticket.number == number))
        add_entry(
            ticket, EntryKind.MESSAGE, Actor.staff(db.session.get(User, agent.id)), body_text=text
        )
        db.session.commit()


@pytest.fixture
def desk(app: Any, make_user: Any, client: Any) -> dict[str, Any]:
    """Anna with two tickets (one answered) among others' answered tickets; Anna signed in."""
    anna = make_user(Role.CUSTOMER, email="anna@a.example")
    others = [make_user(Role.CUSTOMER) for _ in range(3)]
    agent = make_user(Role.AGENT, email="agent@desk.example")
    mine = [_portal_ticket(app, anna, "Printer on fire"), _portal_ticket(app, anna, "VPN drops")]
    _desk_answers(app, agent, mine[1])
    for n, other in enumerate(others * 4):
        number = _portal_ticket(app, other, f"Someone else's problem {n}")
        _desk_answers(app, agent, number)
        _desk_answers(app, agent, number, "And again.")
    assert sign_in(client, anna, portal=True).status_code == 302
    return {"anna": anna, "agent": agent, "mine": mine}


def test_the_ticket_list_and_its_count_scan_nothing(app: Any, client: Any, desk: Any) -> None:
    with recorded(app) as statements:
        for url in ("/portal/", "/portal/?state=all", "/portal/?state=closed&q=printer"):
            assert client.get(url).status_code == 200
        assert client.get("/portal/?state=all&page=2", headers=HX).status_code == 200
    assert any("stream_entry" in s for s, _ in statements), "the unread flag was not queried"
    assert table_scans(app, statements) == []


def test_ticket_page_poll_and_reply_scan_nothing(app: Any, client: Any, desk: Any) -> None:
    number = desk["mine"][1]
    with recorded(app) as statements:
        page = client.get(f"/portal/tickets/{number}")
        assert page.status_code == 200
        polled = client.get(f"/portal/tickets/{number}/messages", headers=HX)
        assert polled.status_code == 200
        etag = polled.headers["ETag"]
        same = client.get(
            f"/portal/tickets/{number}/messages", headers={**HX, "If-None-Match": etag}
        )
        assert same.status_code == 304
        token = csrf_from(page.get_data(as_text=True))
        replied = client.post(
            f"/portal/tickets/{number}/reply",
            data={"csrf_token": token, "body": "Still broken.", "files": [(io.BytesIO(b""), "")]},
            content_type="multipart/form-data",
            headers=HX,
        )
        assert replied.status_code == 200 and "Still broken." in replied.get_data(as_text=True)
    assert table_scans(app, statements) == []


def test_the_check_sees_a_desk_wide_scan(app: Any, desk: Any) -> None:
    """The detector is not blind: the latest staff entry of every ticket, joined to the
    customer's tickets (the list's old unread flag), is reported as a scan of the entries."""
    latest = (
        select(StreamEntry.ticket_id, func.max(StreamEntry.created_at).label("latest"))
        .where(StreamEntry.kind == EntryKind.MESSAGE.value)
        .group_by(StreamEntry.ticket_id)
        .subquery()
    )
    with recorded(app) as statements, app.app_context():
        db.session.execute(
            select(Ticket.id, latest.c.latest)
            .outerjoin(latest, latest.c.ticket_id == Ticket.id)
            .where(Ticket.contact_id == desk["anna"].contact_id)
        ).all()
    assert [s.split(":")[0] for s in table_scans(app, statements)] == ["stream_entry"]


def test_unread_follows_the_customers_own_read_marks_on_every_page(
    app: Any, client: Any, desk: Any
) -> None:
    """With the flag computed per page: right on page 2, blind to others' tickets."""
    anna, agent = desk["anna"], desk["agent"]
    older = desk["mine"][1]  # answered, never opened
    newer = [_portal_ticket(app, anna, f"Later question {n}") for n in range(25)]
    listing = client.get("/portal/?state=all").get_data(as_text=True)
    assert older not in listing and "New reply" not in listing  # page 1: nothing answered
    second = client.get("/portal/?state=all&page=2").get_data(as_text=True)
    row = re.search(rf'<li class="portal-ticket unread">(?:(?!</li>).)*{older}', second, re.S)
    assert row, "the answered ticket on page 2 is not unread"

    client.get(f"/portal/tickets/{older}")  # read
    assert "New reply" not in client.get("/portal/?state=all&page=2").get_data(as_text=True)
    # Notes, status changes and the customer's own messages are not news for the customer.
    with app.app_context():
        ticket = db.session.scalar(select(Ticket).where(Ticket.number == newer[0]))
        staff = Actor.staff(db.session.get(User, agent.id))
        change_status(ticket, Status.OPEN, staff)
        add_entry(ticket, EntryKind.NOTE, staff, body_text="internal", internal=True)
        db.session.commit()
    assert "New reply" not in client.get("/portal/?state=all").get_data(as_text=True)
    _desk_answers(app, agent, newer[0], "Here you go.")
    listing = client.get("/portal/?state=all").get_data(as_text=True)
    row = re.search(rf'<li class="portal-ticket unread">(?:(?!</li>).)*{newer[0]}', listing, re.S)
    assert row and listing.count("New reply") == 1
    # Marked read by someone else (an agent) does not make it read for the customer.
    with app.app_context():
        ticket = db.session.scalar(select(Ticket).where(Ticket.number == newer[0]))
        mark_read(ticket, db.session.get(User, agent.id))
        db.session.commit()
    assert client.get("/portal/?state=all").get_data(as_text=True).count("New reply") == 1


def test_ticket_page_and_poll_queries_do_not_grow_with_the_conversation(
    app: Any, client: Any, desk: Any
) -> None:
    """Entries, their files and authors come in a fixed number of queries, also once the
    read mark is committed (a commit expires what the page still has to render)."""
    short, long = desk["mine"]
    for n in range(10):
        _desk_answers(app, desk["agent"], long, f"Answer {n}")

    def statements_for(number: str) -> list[int]:
        counts = []
        for url in (f"/portal/tickets/{number}", f"/portal/tickets/{number}/messages"):
            with recorded(app) as statements:
                assert client.get(url, headers=HX).status_code == 200
            counts.append(len(statements))
        return counts

    assert statements_for(long) == statements_for(short)
