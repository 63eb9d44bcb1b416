"""Agent lists: views, filters, sorting, pages, search, counts, bulk actions, query counts."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import event, insert, select

from app import create_app
from app.actor import Actor
from app.extensions import db
from app.models.audit import AuditLog
from app.models.people import Role, Team, User
from app.models.tickets import (
    Category,
    Priority,
    Status,
    StreamEntry,
    Ticket,
    TicketRead,
)
from app.models.types import utcnow
from app.tickets import add_customer_message, add_note, assign, change_status, set_tags
from app.tickets import search as fts
from app.tickets.listing import ListQuery, Owner, list_tickets, view_counts
from tests import factories
from tests.conftest import base_config, csrf_from, sign_in

NUMBERS = re.compile(r'data-number="([^"]+)"')


def numbers(html: str) -> list[str]:
    return NUMBERS.findall(html)


def q(view: str = "all", **args: Any) -> ListQuery:
    """A ListQuery from URL-like arguments (lists become repeated arguments)."""
    from werkzeug.datastructures import MultiDict

    pairs = []
    for key, value in args.items():
        for v in value if isinstance(value, list) else [value]:
            pairs.append((key, str(v)))
    return ListQuery.from_args(view, MultiDict(pairs))


def listed(query: ListQuery, viewer: User, **kwargs: Any) -> list[str]:
    return [r.ticket.number for r in list_tickets(query, viewer, **kwargs).rows]


@pytest.fixture
def world(ctx: None) -> dict[str, Any]:
    """Two agents, a team, a category, and tickets in several states."""
    ann, bob = factories.staff_user(Role.AGENT), factories.staff_user(Role.AGENT)
    ann.name, bob.name = "Ann Agent", "Bob Agent"
    team = Team(name="Network")
    billing = Category(name="Billing")
    db.session.add_all([team, billing])
    system = Actor.system()
    t_new = factories.ticket("Printer on fire")
    t_open = factories.ticket("VPN drops every hour", priority=Priority.HIGH)
    t_pending = factories.ticket("Invoice copy wanted")
    t_closed = factories.ticket("Old question about fonts")
    db.session.flush()
    staff = Actor.staff(ann)
    assign(t_open, staff, assignee=ann, team=team)  # New -> Open
    assign(t_pending, staff, assignee=bob)
    change_status(t_pending, Status.PENDING, staff)
    t_pending.category = billing
    set_tags(t_open, ["vpn"], staff)
    assign(t_closed, staff, assignee=bob)
    change_status(t_closed, Status.CLOSED, staff)
    t_new.resolution_due_at = utcnow() - timedelta(hours=1)  # overdue
    t_closed.resolution_due_at = utcnow() - timedelta(hours=1)  # closed: not overdue
    db.session.commit()
    del system
    return {
        "ann": ann,
        "bob": bob,
        "team": team,
        "billing": billing,
        "new": t_new,
        "open": t_open,
        "pending": t_pending,
        "closed": t_closed,
    }


# --- views and filters (domain) -----------------------------------------------------------


def test_each_view_lists_its_tickets(world: dict[str, Any]) -> None:
    ann = world["ann"]
    n = {k: world[k].number for k in ("new", "open", "pending", "closed")}
    assert set(listed(q("all"), ann)) == set(n.values())
    assert listed(q("new"), ann) == [n["new"]]
    assert listed(q("open"), ann) == [n["open"]]
    assert listed(q("pending"), ann) == [n["pending"]]
    assert listed(q("closed"), ann) == [n["closed"]]
    assert listed(q("resolved"), ann) == []
    assert listed(q("in_progress"), ann) == []
    assert listed(q("dispatcher"), ann) == [n["new"]]  # unassigned and not closed
    # Every factory ticket came from a customer's mail: all are in the inbox.
    assert set(listed(q("inbox"), ann)) == set(n.values())


def test_filters(world: dict[str, Any]) -> None:
    ann, w = world["ann"], world
    assert listed(q(priority="high"), ann) == [w["open"].number]
    assert listed(q(status=["pending", "closed"], sort="number", dir="asc"), ann) == sorted(
        [w["pending"].number, w["closed"].number]
    )
    assert listed(q(category=w["billing"].id), ann) == [w["pending"].number]
    assert listed(q(tag="VPN"), ann) == [w["open"].number]
    assert listed(q(team=w["team"].id), ann) == [w["open"].number]
    assert listed(q(account=w["new"].account_id), ann) == [w["new"].number]
    assert listed(q(overdue=1), ann) == [w["new"].number]


def test_owner_filter(world: dict[str, Any]) -> None:
    ann, bob, w = world["ann"], world["bob"], world
    assert listed(q(owner="me"), ann) == [w["open"].number]
    assert set(listed(q(owner="me"), bob)) == {w["pending"].number, w["closed"].number}
    assert listed(q(owner="none"), ann) == [w["new"].number]
    assert set(listed(q(owner=[ann.id, bob.id]), ann)) == {
        w["open"].number,
        w["pending"].number,
        w["closed"].number,
    }
    assert len(listed(q(owner="all"), ann)) == 4
    assert q(owner=[ann.id]).owner is Owner.CHOSEN


@pytest.mark.parametrize(
    ("column", "key"),
    [
        ("number", lambda t: t.number),
        ("subject", lambda t: t.subject.lower()),
        ("status", lambda t: list(Status).index(Status(t.status))),
        ("priority", lambda t: list(Priority).index(Priority(t.priority))),
        ("owner", lambda t: t.assignee.name.lower() if t.assignee else ""),
        ("customer", lambda t: t.customer_label.lower()),
        ("updated", lambda t: t.updated_at),
    ],
)
def test_sorting_both_directions(world: dict[str, Any], column: str, key: Any) -> None:
    ann = world["ann"]
    tickets = [world[k] for k in ("new", "open", "pending", "closed")]
    for direction in ("asc", "desc"):
        rows = [r.ticket for r in list_tickets(q(sort=column, dir=direction), ann).rows]
        keys = [key(t) for t in rows]
        assert keys == sorted(keys, reverse=direction == "desc"), (column, direction)
        assert len(rows) == len(tickets)


def test_sorting_by_due_puts_tickets_without_a_date_last(world: dict[str, Any]) -> None:
    ann = world["ann"]
    world["open"].resolution_due_at = utcnow() + timedelta(days=1)
    db.session.commit()
    asc = listed(q(sort="due", dir="asc"), ann)
    desc = listed(q(sort="due", dir="desc"), ann)
    dated = {world["new"].number, world["closed"].number, world["open"].number}
    assert set(asc[:3]) == dated and set(desc[:3]) == dated
    assert asc[2] == world["open"].number and desc[0] == world["open"].number


def test_pagination(ctx: None) -> None:
    agent = factories.staff_user(Role.AGENT)
    made = [factories.ticket(f"Ticket {i:02d}") for i in range(7)]
    db.session.commit()
    pages = [
        list_tickets(q(sort="subject", dir="asc", page=p), agent, per_page=3) for p in (1, 2, 3)
    ]
    assert [r.total for r in pages] == [7, 7, 7] and pages[0].pages == 3
    flat = [row.ticket.subject for page in pages for row in page.rows]
    assert flat == sorted(t.subject for t in made)


def test_counts_per_view_in_one_query(world: dict[str, Any]) -> None:
    ann, bob = world["ann"], world["bob"]
    with count_statements() as statements:
        counts = view_counts(ann)
    assert len(statements) == 1
    assert counts["all"] == 4 and counts["inbox"] == 4 and counts["dispatcher"] == 1
    assert counts["new"] == counts["open"] == counts["pending"] == counts["closed"] == 1
    assert counts["resolved"] == counts["in_progress"] == counts["waiting_third_party"] == 0
    assert view_counts(ann, Owner.ME)["all"] == 1
    mine = view_counts(bob, Owner.ME)
    assert mine["all"] == 2 and mine["pending"] == 1 and mine["closed"] == 1
    assert view_counts(ann, Owner.CHOSEN, [bob.id])["all"] == 2
    assert view_counts(ann, Owner.NONE)["dispatcher"] == 1


def test_overdue_flag(world: dict[str, Any]) -> None:
    rows = {r.ticket.number: r for r in list_tickets(q(), world["ann"]).rows}
    assert rows[world["new"].number].overdue
    assert not rows[world["closed"].number].overdue  # past due but closed
    assert not rows[world["open"].number].overdue  # no due date


# --- search --------------------------------------------------------------------------------


def test_search_finds_subject_and_later_stream_text(world: dict[str, Any]) -> None:
    ann, w = world["ann"], world
    assert listed(q(q="printer"), ann) == [w["new"].number]
    assert listed(q(q="print"), ann) == [w["new"].number]  # prefix
    assert listed(q(q="kangaroo"), ann) == []
    add_note(w["pending"], Actor.staff(ann), "The customer's kangaroo ate the invoice.")
    db.session.commit()
    assert listed(q(q="kangaroo"), ann) == [w["pending"].number]
    customer = Actor.customer(name="C", email="c@acme.test")
    add_customer_message(w["open"], customer, "Also my kangaroo printer is broken")
    db.session.commit()
    # Relevance: a subject hit outranks a body hit.
    assert listed(q(q="printer"), ann) == [w["new"].number, w["open"].number]
    assert set(listed(q(q="kangaroo"), ann)) == {w["pending"].number, w["open"].number}
    # Words of both: AND.
    assert listed(q(q="kangaroo printer"), ann) == [w["open"].number]
    # Search combines with filters and views.
    assert listed(q("pending", q="kangaroo"), ann) == [w["pending"].number]
    # A subject change is indexed too; a rollback leaves the index as it was.
    w["closed"].subject = "Wombat in the server room"
    db.session.commit()
    assert listed(q(q="wombat"), ann) == [w["closed"].number]
    assert listed(q(q="fonts"), ann) == []
    w["closed"].subject = "Platypus"
    db.session.flush()
    db.session.rollback()
    assert listed(q(q="platypus"), ann) == []
    assert listed(q(q="wombat"), ann) == [w["closed"].number]


def test_status_sentences_are_not_searched(world: dict[str, Any]) -> None:
    # Every assigned ticket has "Status changed from New to Open." in its stream.
    assert listed(q(q="changed"), world["ann"]) == []


@pytest.mark.parametrize(
    "text",
    [
        '"',
        'printer"',
        "print*",
        "-printer",
        "NEAR",
        "NEAR(printer fire)",
        "a AND OR NOT",
        "^x",
        "col:printer",
        "((",
        "'; drop table ticket; --",
        "*",
        "-",
        "e-mail",
        "ünïcödé",
    ],
)
def test_search_syntax_characters_never_error(world: dict[str, Any], text: str) -> None:
    list_tickets(q(q=text), world["ann"])  # no exception


def test_fts5_terms_are_quoted() -> None:
    assert fts.fts5_match('NEAR "x" -y') == '"NEAR"* "x"* "y"*'
    assert fts.fts5_match("--") is None
    assert fts.tsquery_text("it's a-b") == "'it':* & 's':* & 'a':* & 'b':*"


# --- HTTP ----------------------------------------------------------------------------------


def _build(app: Flask) -> dict[str, Any]:
    """Committed world for HTTP tests; returns plain values (no instances across contexts)."""
    with app.app_context():
        t1 = factories.ticket("Printer on fire")
        t2 = factories.ticket("Mail server down", priority=Priority.URGENT)
        t3 = factories.ticket("Closed already")
        db.session.flush()
        helper = factories.staff_user(Role.AGENT)
        assign(t3, Actor.staff(helper), assignee=helper)
        change_status(t3, Status.CLOSED, Actor.staff(helper))
        db.session.commit()
        return {"t1": (t1.id, t1.number), "t2": (t2.id, t2.number), "t3": (t3.id, t3.number)}


@pytest.fixture
def agent(make_user: Any, client: Any) -> Any:
    person = make_user(Role.AGENT)
    sign_in(client, person)
    return person


def test_list_pages_render_and_filter(app: Flask, client: Any, agent: Any) -> None:
    w = _build(app)
    page = client.get("/agent/list/all")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert set(numbers(html)) == {w["t1"][1], w["t2"][1], w["t3"][1]}
    # The page shows the views at once and fetches their counts right after loading.
    assert 'id="list-nav"' in html and 'hx-trigger="load, every 20s"' in html
    assert 'data-view="all"></span>' in html
    assert f'href="/agent/tickets/{w["t1"][1]}"' in html
    fragment = client.get(
        "/agent/list/all?priority=urgent", headers={"HX-Request": "true"}
    ).get_data(as_text=True)
    assert numbers(fragment) == [w["t2"][1]]
    assert "<html" not in fragment and fragment.lstrip().startswith('<div id="ticket-list"')
    assert numbers(client.get("/agent/list/closed").get_data(as_text=True)) == [w["t3"][1]]
    assert numbers(client.get("/agent/list/all?q=printer").get_data(as_text=True)) == [w["t1"][1]]
    for nasty in ['"', "NEAR(", "-*", "a\"b'c"]:
        assert client.get("/agent/list/all", query_string={"q": nasty}).status_code == 200
    assert client.get("/agent/list/nonsense").status_code == 422


def test_every_view_renders(app: Flask, client: Any, agent: Any) -> None:
    _build(app)
    from app.tickets.listing import VIEWS

    for view in VIEWS:
        for sort in (
            "number",
            "subject",
            "customer",
            "status",
            "priority",
            "owner",
            "updated",
            "due",
        ):
            response = client.get(f"/agent/list/{view}?sort={sort}&dir=asc&owner=me")
            assert response.status_code == 200, (view, sort)


def test_inbox_endpoint_keeps_working(app: Flask, client: Any, agent: Any) -> None:
    w = _build(app)
    with app.app_context():
        me = db.session.get(User, agent.id)
        t1 = db.session.get(Ticket, w["t1"][0])
        assign(t1, Actor.staff(me), assignee=me)
        db.session.commit()
    html = client.get("/agent/").get_data(as_text=True)
    assert set(numbers(html)) == {w["t1"][1], w["t2"][1], w["t3"][1]}
    assert 'class="unread ' in html and "✉" in html
    fragment = client.get("/agent/", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert fragment.lstrip().startswith('<div id="ticket-list"')
    # Reading it clears bold and turns the envelope into a tick.
    with app.app_context():
        db.session.add(TicketRead(ticket_id=w["t1"][0], user_id=agent.id, read_at=utcnow()))
        db.session.commit()
    html = client.get("/agent/").get_data(as_text=True)
    assert 'class="unread ' not in html and "✓" in html


def test_nav_polls_with_etag(app: Flask, client: Any, agent: Any) -> None:
    w = _build(app)
    first = client.get("/agent/nav?view=all", headers={"HX-Request": "true"})
    assert first.status_code == 200 and first.headers["ETag"]
    html = first.get_data(as_text=True)
    assert re.search(r'data-view="all">3<', html) and re.search(r'data-view="closed">1<', html)
    assert 'hx-trigger="every 20s"' in html  # counted: no second load
    etag = first.headers["ETag"]
    again = client.get("/agent/nav?view=all", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.get_data() == b""
    with app.app_context():
        t = db.session.get(Ticket, w["t1"][0])
        change_status(t, Status.IN_PROGRESS, Actor.staff(db.session.get(User, agent.id)))
        db.session.commit()
    changed = client.get("/agent/nav?view=all", headers={"If-None-Match": etag})
    assert changed.status_code == 200
    assert re.search(r'data-view="in_progress">1<', changed.get_data(as_text=True))
    mine = client.get("/agent/nav?view=all&owner=me", headers={"If-None-Match": etag})
    assert mine.status_code == 200  # another filter, another tag


def _bulk(client: Any, data: dict[str, Any], page: str = "/agent/list/all") -> Any:
    token = csrf_from(client.get(page).get_data(as_text=True))
    return client.post("/agent/bulk", data={"csrf_token": token, "next": page, **data})


def test_bulk_assign_status_tag_and_read(app: Flask, client: Any, agent: Any) -> None:
    w = _build(app)
    ids = [w["t1"][0], w["t2"][0]]
    response = _bulk(client, {"action": "assign", "assignee": agent.id, "ticket": ids})
    assert response.status_code == 303 and response.headers["Location"] == "/agent/list/all"
    with app.app_context():
        tickets = [db.session.get(Ticket, i) for i in ids]
        assert all(t.assignee_id == agent.id and t.status == "open" for t in tickets)
    assert (
        _bulk(client, {"action": "status", "status": "in_progress", "ticket": ids}).status_code
        == 303
    )
    assert _bulk(client, {"action": "tag", "tag": "Hardware", "ticket": ids}).status_code == 303
    assert _bulk(client, {"action": "read", "ticket": ids}).status_code == 303
    assert _bulk(client, {"action": "read", "ticket": ids}).status_code == 303  # upsert
    with app.app_context():
        tickets = [db.session.get(Ticket, i) for i in ids]
        assert {t.status for t in tickets} == {"in_progress"}
        assert all([tag.name for tag in t.tags] == ["hardware"] for t in tickets)
        reads = db.session.scalars(select(TicketRead).where(TicketRead.user_id == agent.id)).all()
        assert sorted(r.ticket_id for r in reads) == sorted(ids)
        actions = db.session.scalars(select(AuditLog.action)).all()
        assert actions.count("ticket.assign") >= 2 and actions.count("ticket.tags") == 2
    listing_html = client.get("/agent/list/all?tag=hardware").get_data(as_text=True)
    assert set(numbers(listing_html)) == {w["t1"][1], w["t2"][1]}


def test_bulk_refusal_changes_nothing(app: Flask, client: Any, agent: Any) -> None:
    """All or nothing: Closed cannot go to Pending, so the open ticket stays as it was."""
    w = _build(app)
    with app.app_context():
        entries_before = db.session.scalar(select(db.func.count(StreamEntry.id)))
    response = _bulk(
        client, {"action": "status", "status": "pending", "ticket": [w["t1"][0], w["t3"][0]]}
    )
    assert response.status_code == 422
    body = response.get_data(as_text=True)
    assert w["t3"][1] in body and "cannot go from Closed to Pending" in body
    with app.app_context():
        assert db.session.get(Ticket, w["t1"][0]).status == "new"
        assert db.session.get(Ticket, w["t3"][0]).status == "closed"
        assert db.session.scalar(select(db.func.count(StreamEntry.id))) == entries_before


def test_bulk_skips_tickets_already_as_asked(app: Flask, client: Any, agent: Any) -> None:
    w = _build(app)
    response = _bulk(
        client, {"action": "status", "status": "closed", "ticket": [w["t1"][0], w["t3"][0]]}
    )
    assert response.status_code == 303
    page = client.get("/agent/list/all").get_data(as_text=True)
    assert f"1 already were: {w['t3'][1]}" in page


def test_bulk_needs_csrf_and_staff(app: Flask, client: Any, make_user: Any) -> None:
    w = _build(app)
    agent = make_user(Role.AGENT)
    sign_in(client, agent)
    refused = client.post("/agent/bulk", data={"action": "read", "ticket": [w["t1"][0]]})
    assert refused.status_code == 400
    for role in (Role.CUSTOMER, Role.COMPLIANCE):
        other = app.test_client()
        person = make_user(role)
        sign_in(other, person, portal=role is Role.CUSTOMER)
        home = "/portal/" if role is Role.CUSTOMER else "/compliance/"
        token = csrf_from(other.get(home).get_data(as_text=True))
        response = other.post(
            "/agent/bulk", data={"csrf_token": token, "action": "read", "ticket": [w["t1"][0]]}
        )
        assert response.status_code == 403
        assert other.get("/agent/list/all").status_code == 403
    with app.app_context():
        assert db.session.scalars(select(TicketRead)).all() == []


# --- query counts at 10,000 tickets ----------------------------------------------------------


@contextmanager
def count_statements(engine: Any = None) -> Iterator[list[str]]:
    """Every SQL statement sent on ``engine`` (default: the current app's) while inside."""
    engine = engine if engine is not None else db.engine
    statements: list[str] = []

    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", before)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", before)


def bulk_tickets(n: int, start: int = 0, assignee_id: int | None = None) -> None:
    """Insert ``n`` tickets and one message each with executemany, bypassing the domain."""
    now = utcnow()
    statuses = [s.value for s in Status]
    priorities = [p.value for p in Priority]
    rows = [
        {
            "id": start + i + 1,
            "number": f"B-{start + i + 1:07d}",
            "subject": f"Bulk ticket {start + i} about {'printers' if i % 3 else 'mail'}",
            "status": statuses[i % len(statuses)],
            "priority": priorities[i % len(priorities)],
            "type": "question",
            "channel": "mail",
            "submitter_name": f"Customer {i % 97}",
            "assignee_id": assignee_id if i % 2 else None,
            "waiting_for_dispatch": not i % 2,
            "in_inbox": i % 4 == 0,
            "last_customer_activity_at": now - timedelta(minutes=i),
            "resolution_due_at": now + timedelta(hours=(i % 48) - 24),
            "created_at": now - timedelta(minutes=i),
            "updated_at": now - timedelta(minutes=i),
            "version": 1,
        }
        for i in range(n)
    ]
    db.session.execute(insert(Ticket), rows)
    db.session.execute(
        insert(StreamEntry),
        [
            {
                "ticket_id": r["id"],
                "kind": "mail_in",
                "visibility": "external",
                "body_text": f"Hello, the thing {r['id']} broke.",
                "created_at": now,
            }
            for r in rows
        ],
    )
    fts.reindex(db.session.connection(), [r["id"] for r in rows])
    db.session.commit()


LIST_URLS = [
    "/agent/",
    "/agent/list/inbox",
    "/agent/list/all",
    "/agent/list/open?sort=customer&dir=asc",
    "/agent/list/dispatcher?sort=owner",
    "/agent/list/all?status=open&priority=high&owner=me&sort=due",
    "/agent/list/all?q=printers",
    "/agent/list/all?tag=vpn&category=1&team=1&account=1&overdue=1",
]


def _statements_per_page(app: Flask, client: Any, url: str) -> int:
    with app.app_context():
        engine = db.engine
    with count_statements(engine) as statements:
        assert client.get(url).status_code == 200
    return len(statements)


def test_query_counts_are_constant(app: Flask, client: Any, agent: Any) -> None:
    """Same number of statements at 30 and 10,000 tickets, on page 1 and page 50."""
    with app.app_context():
        bulk_tickets(30, assignee_id=agent.id)
    small = {url: _statements_per_page(app, client, url) for url in LIST_URLS}
    with app.app_context():
        bulk_tickets(10_000 - 30, start=30, assignee_id=agent.id)
    for url in LIST_URLS:
        large = _statements_per_page(app, client, url)
        assert large == small[url], url
        # user, roles, ETag fingerprint (2), search count + ranking when searching, count,
        # rows, staff, categories, teams, tags, the notification bell (ETag and top bar)
        assert large <= 13, (url, large)
    page_50 = _statements_per_page(app, client, "/agent/list/all?page=50")
    assert page_50 == small["/agent/list/all"]
    html = client.get("/agent/list/all?page=50").get_data(as_text=True)
    assert len(numbers(html)) == 50 and "Page 50 of 200" in html
    # The nav: counts in one query; an unchanged desk answers 304 after one cheap query.
    nav = client.get("/agent/nav?view=all")
    assert _statements_per_page(app, client, "/agent/nav?view=all") <= 9  # 8 + the bell
    with app.app_context():
        engine = db.engine
    with count_statements(engine) as statements:
        idle = client.get("/agent/nav?view=all", headers={"If-None-Match": nav.headers["ETag"]})
    assert idle.status_code == 304
    assert len([s for s in statements if "ticket" in s]) == 1


# --- PostgreSQL ----------------------------------------------------------------------------


@pytest.mark.postgres
def test_search_on_postgres(tmp_path: Path, redis_server: Any, postgres_database: str) -> None:
    from flask_migrate import upgrade

    app = create_app(base_config(tmp_path, redis_server.url, postgres_database))
    with app.app_context():
        upgrade()
        agent = factories.staff_user(Role.AGENT)
        printer = factories.ticket("Printer on fire")
        mail = factories.ticket("Mail server down")
        db.session.commit()
        assert listed(q(q="printer"), agent) == [printer.number]
        assert listed(q(q="print"), agent) == [printer.number]
        add_note(mail, Actor.staff(agent), "Also the printer spooler hangs; kangaroo involved.")
        db.session.commit()
        assert listed(q(q="printer"), agent) == [printer.number, mail.number]  # subject first
        assert listed(q(q="kangaroo"), agent) == [mail.number]
        for nasty in ['"', "it's", "a & b | !c", "NEAR(x)", "-*", ":*", "\\"]:
            list_tickets(q(q=nasty), agent)
        counts = view_counts(agent)
        assert counts["all"] == 2 and counts["new"] == 2
        db.session.delete(printer)
        db.session.commit()
        assert listed(q(q="printer"), agent) == [mail.number]
        db.session.remove()
        db.engine.dispose()


def test_very_broad_searches_list_the_newest_matches(
    app: Flask, agent: Any, monkeypatch: Any
) -> None:
    """Past RANK_AT_MOST matches relevance is dropped for speed: newest first instead."""
    from app.tickets import search as search_module

    with app.app_context():
        best = factories.ticket("Printer printer printer printer").number  # oldest, most relevant
        for n in range(4):
            factories.ticket(f"Printer jam {n}")
        db.session.commit()
        viewer = db.session.get(User, agent.id)
        ranked = [
            r.ticket.number
            for r in list_tickets(ListQuery(view="all", text="printer"), viewer).rows
        ]
        assert ranked[0] == best
        monkeypatch.setattr(search_module, "RANK_AT_MOST", 3)
        newest = [
            r.ticket.number
            for r in list_tickets(ListQuery(view="all", text="printer"), viewer).rows
        ]
        ids = {t.number: t.id for t in db.session.scalars(select(Ticket))}
        assert newest == sorted(newest, key=lambda n: ids[n], reverse=True)
        assert newest[-1] == best and len(newest) == 5


def test_list_table_polls_with_etag_until_a_ticket_or_read_state_changes(
    app: Flask, client: Any, agent: Any
) -> None:
    w = _build(app)
    url = "/agent/list/all?priority=urgent"
    first = client.get(url, headers={"HX-Request": "true"})
    html = first.get_data(as_text=True)
    assert first.status_code == 200 and 'data-poll hx-get="/agent/list/all?' in html
    etag = first.headers["ETag"]
    assert client.get(url, headers={"HX-Request": "true", "If-None-Match": etag}).status_code == 304
    with app.app_context():
        t = db.session.get(Ticket, w["t1"][0])
        change_status(t, Status.IN_PROGRESS, Actor.staff(db.session.get(User, agent.id)))
        db.session.commit()
    changed = client.get(url, headers={"HX-Request": "true", "If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["ETag"] != etag
    other = client.get(
        "/agent/list/all?priority=low", headers={"If-None-Match": changed.headers["ETag"]}
    )
    assert other.status_code == 200  # another filter is another tag
