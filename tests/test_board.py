"""The supervisor's board: figures against counts made here, links, who may see it, polling."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from sqlalchemy import select

from app.actor import Actor
from app.extensions import db
from app.models.people import Role, Team, User
from app.models.sla import Absence
from app.models.tickets import Status, Ticket
from app.models.types import utcnow
from app.sla import board as board_rules
from app.tickets import assign, change_status
from tests import factories
from tests.test_lists import listed, q

ZONE = "America/New_York"  # the viewer's zone: "today" is theirs, not the server's

FIGURES = board_rules.FIGURES


def expected(tickets: list[Ticket], viewer_zone: str, now: datetime) -> dict[str, set[str]]:
    """Each figure's tickets, worked out here in plain Python, ticket by ticket."""
    zone = ZoneInfo(viewer_zone)
    today = now.astimezone(zone).date()
    out: dict[str, set[str]] = {f: set() for f in FIGURES}
    for t in tickets:
        if t.status in ("resolved", "closed"):
            continue
        out["open"].add(t.number)
        targets = []
        if t.first_responded_at is None and t.first_response_due_at is not None:
            targets.append(t.first_response_due_at)
        if t.resolution_due_at is not None:
            targets.append(t.resolution_due_at)
        due = min(targets) if targets else None
        if due is not None:
            if due.astimezone(zone).date() == today:
                out["due_today"].add(t.number)
            if now <= due < now + timedelta(minutes=60):
                out["near"].add(t.number)
            if due < now:
                out["breached"].add(t.number)
        if (
            t.status == "pending"
            and t.pending_until is not None
            and t.pending_until.astimezone(zone).date() == today
        ):
            out["pending_today"].add(t.number)
    return out


def build(now: datetime) -> dict[str, Any]:
    """Two teams, agents in each, tickets with due times around ``now``."""
    network, billing = Team(name="Network"), Team(name="Billing")
    db.session.add_all([network, billing])
    boss = factories.staff_user(Role.SUPERVISOR, Role.AGENT)
    boss.name, boss.team, boss.timezone = "Boss", network, ZONE
    ann, bob, cid = (factories.staff_user(Role.AGENT) for _ in range(3))
    ann.name, ann.team = "Ann", network
    bob.name, bob.team = "Bob", network
    cid.name, cid.team = "Cid", billing
    db.session.flush()
    staff = Actor.staff(boss)
    specs = [
        # (assignee, team, first response due, resolution due, answered, status, pending until)
        (ann, network, now - timedelta(hours=2), now + timedelta(days=2), False, None, None),
        (ann, network, None, now + timedelta(minutes=30), False, None, None),
        (ann, network, now + timedelta(minutes=10), now - timedelta(hours=1), True, None, None),
        (bob, network, None, now + timedelta(days=3), False, "pending", now + timedelta(hours=1)),
        (bob, network, None, now - timedelta(days=1), False, "closed", None),
        (None, network, now + timedelta(minutes=50), None, False, None, None),
        (cid, billing, None, now - timedelta(minutes=5), False, None, None),
        (cid, None, None, now + timedelta(hours=5), False, None, None),
        (None, None, None, None, False, None, None),
    ]
    tickets = []
    for n, (who, team, first, resolution, answered, status, pending) in enumerate(specs):
        t = factories.ticket(f"Board ticket {n}")
        db.session.flush()
        if who is not None or team is not None:
            assign(t, staff, assignee=who, team=team)
        if status == "pending":
            change_status(t, Status.PENDING, staff)
            t.pending_until = pending
        elif status == "closed":
            change_status(t, Status.CLOSED, staff)
        t.first_response_due_at = first
        t.resolution_due_at = resolution
        t.first_responded_at = now - timedelta(minutes=1) if answered else None
        tickets.append(t)
    db.session.flush()
    return {
        "boss": boss,
        "ann": ann,
        "bob": bob,
        "cid": cid,
        "tickets": tickets,
        "network": network,
        "billing": billing,
    }


def by_number(tickets: list[Ticket], numbers: set[str]) -> list[Ticket]:
    return [t for t in tickets if t.number in numbers]


def test_figures_match_counts_made_independently(ctx: None) -> None:
    now = utcnow()
    w = build(now)
    tickets: list[Ticket] = w["tickets"]
    result = board_rules.board(w["boss"], now)
    blocks = {b.team.name if b.team else None: b for b in result.teams}
    assert [b.team.name if b.team else None for b in result.teams][0] == "Network"  # own first

    def check(figures: board_rules.Figures, subset: list[Ticket]) -> None:
        want = expected(subset, ZONE, now)
        assert {f: getattr(figures, f) for f in FIGURES} == {f: len(want[f]) for f in FIGURES}

    for name, team in (("Network", w["network"]), ("Billing", w["billing"]), (None, None)):
        block = blocks[name]
        team_id = team.id if team else None
        check(block.figures, [t for t in tickets if t.team_id == team_id])
        check(block.unassigned, [t for t in tickets if t.team_id == team_id and not t.assignee_id])
    for line in (line for b in result.teams for line in b.agents):
        check(line.figures, [t for t in tickets if t.assignee_id == line.user.id])
    # A sanity check of the data itself, so the comparison is not of two empty sets.
    whole = expected(tickets, ZONE, now)
    assert len(whole["open"]) == 8 and len(whole["breached"]) == 3
    assert len(whole["near"]) >= 2 and len(whole["pending_today"]) in (0, 1)


def test_each_list_behind_a_figure_lists_exactly_those_tickets(ctx: None) -> None:
    now = utcnow()
    w = build(now)
    tickets, boss = w["tickets"], w["boss"]
    cases = {
        "open": {"open": 1},
        "due_today": {"due": "today"},
        "near": {"due": "near"},
        "breached": {"due": "breached"},
        "pending_today": {"pending_today": 1},
    }
    scopes = [
        ({"team": w["network"].id}, lambda t: t.team_id == w["network"].id),
        ({"team": "none"}, lambda t: t.team_id is None),
        (
            {"team": w["network"].id, "owner": "none"},
            lambda t: t.team_id == w["network"].id and t.assignee_id is None,
        ),
        ({"owner": w["ann"].id}, lambda t: t.assignee_id == w["ann"].id),
        ({"owner": w["cid"].id}, lambda t: t.assignee_id == w["cid"].id),
    ]
    for scope_args, belongs in scopes:
        want = expected([t for t in tickets if belongs(t)], ZONE, now)
        for figure, args in cases.items():
            got = listed(q("all", **scope_args, **args), boss, now=now)
            assert set(got) == want[figure], (scope_args, figure)


def test_absent_agents_with_open_tickets_are_named(ctx: None) -> None:
    now = utcnow()
    w = build(now)
    db.session.add(
        Absence(
            user_id=w["ann"].id,
            starts_at=now - timedelta(hours=1),
            ends_at=now + timedelta(hours=1),
        )
    )
    db.session.flush()
    result = board_rules.board(w["boss"], now)
    network = next(b for b in result.teams if b.team and b.team.name == "Network")
    away = {line.user.name for line in network.away_with_open}
    assert "Ann" in away
    ann_line = next(line for line in network.agents if line.user.name == "Ann")
    assert ann_line.absent_today and ann_line.away


# --- over HTTP ----------------------------------------------------------------------------

LINK = re.compile(r'<a href="([^"]+)" data-figure="([a-z_]+)">(\d+)</a>')
NUMBER = re.compile(r'data-number="([^"]+)"')


@pytest.fixture
def desk(app: Flask, make_user: Any) -> dict[str, Any]:
    supervisor = make_user(Role.SUPERVISOR, Role.AGENT)
    with app.app_context():
        boss = db.session.get(User, supervisor.id)
        w = build(utcnow())
        # The board's owner is the supervisor made through the sign-in fixture.
        boss.team, boss.timezone = w["network"], ZONE
        db.session.commit()
    return {"supervisor": supervisor}


def test_every_number_on_the_page_opens_the_list_of_exactly_that_many(
    app: Flask, client: Any, login: Any, desk: dict[str, Any]
) -> None:
    login(desk["supervisor"])
    page = client.get("/agent/board")
    assert page.status_code == 200
    body = page.get_data(as_text=True)
    links = LINK.findall(body)
    assert len(links) >= 15
    figures_seen = {figure for _href, figure, _n in links}
    assert {"open", "near", "breached"} <= figures_seen
    for href, figure, n in links:
        listing = client.get(html.unescape(href)).get_data(as_text=True)
        assert len(NUMBER.findall(listing)) == int(n), (href, figure)


def test_only_supervisors_see_the_board(
    app: Flask, client: Any, login: Any, make_user: Any
) -> None:
    assert client.get("/agent/board").status_code == 302  # anonymous: to the sign-in page
    for roles in ((Role.AGENT,), (Role.ADMIN,), (Role.COMPLIANCE,)):
        person = make_user(*roles)
        login(person)
        assert client.get("/agent/board").status_code == 403, roles
        htmx = client.get("/agent/board", headers={"HX-Request": "true"})
        assert htmx.status_code == 403 and "<html" not in htmx.get_data(as_text=True).lower()
        client.post("/logout")
        client.delete_cookie("session")
    customer = make_user(Role.CUSTOMER)
    login(customer, portal=True)
    assert client.get("/agent/board").status_code == 403
    agent = make_user(Role.AGENT)
    client.delete_cookie("session")
    login(agent)
    assert "Supervisor&#39;s board" not in client.get("/agent/list/all").get_data(as_text=True)


def test_the_board_polls_with_an_etag(
    app: Flask, client: Any, login: Any, desk: dict[str, Any]
) -> None:
    login(desk["supervisor"])
    first = client.get("/agent/board", headers={"HX-Request": "true"})
    assert first.status_code == 200
    fragment = first.get_data(as_text=True)
    assert fragment.lstrip().startswith('<div id="board"') and "<html" not in fragment
    etag = first.headers["ETag"]
    again = client.get("/agent/board", headers={"HX-Request": "true", "If-None-Match": etag})
    assert again.status_code in (304, 200)  # 200 only if the minute turned in between
    if again.status_code == 304:
        with app.app_context():
            ticket = db.session.scalar(select(Ticket).where(Ticket.status == "open").limit(1))
            ticket.resolution_due_at = datetime.now(UTC) - timedelta(minutes=1)
            from app.tickets.stream import touch

            touch(ticket)
            db.session.commit()
        changed = client.get("/agent/board", headers={"HX-Request": "true", "If-None-Match": etag})
        assert changed.status_code == 200
    page = client.get("/agent/list/all").get_data(as_text=True)
    assert "/agent/board" in page  # the link in the views navigation
