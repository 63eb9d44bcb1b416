"""Assignment rules: round robin, least busy, skills, account manager, unplaced, the job."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, time, timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from app.actor import Actor
from app.extensions import db
from app.models.audit import AuditLog
from app.models.people import Role, Team, User
from app.models.sla import (
    Absence,
    AgentSkill,
    AssignmentMode,
    AssignmentRule,
    UnplacedReason,
    UnplacedTicket,
    WorkCalendar,
    WorkShift,
)
from app.models.tickets import Category, EntryKind, Status, StreamEntry, Ticket
from app.sla import assignment_rules as rules
from app.tickets import assign, change_status
from app.tickets.listing import list_tickets
from tests import factories
from tests.conftest import csrf_from, run_jobs
from tests.test_lists import q
from tests.test_relay_workers import two_workers_at_once

# A Wednesday, 10:00 in Berlin: inside the built-in Mon–Fri 09–17 calendar.
NOW = datetime(2026, 11, 11, 9, 0, tzinfo=UTC)


def agent(name: str, team: Team | None, *roles: Role) -> User:
    user = factories.staff_user(*(roles or (Role.AGENT,)))
    user.name, user.team = name, team
    return user


def away(user: User) -> None:
    db.session.add(
        Absence(user_id=user.id, starts_at=NOW - timedelta(days=1), ends_at=NOW + timedelta(days=1))
    )


def team_with_rule(name: str = "Network", **rule: Any) -> Team:
    team = Team(name=name)
    db.session.add(team)
    db.session.flush()
    rules.save_rule(
        Actor.system(),
        team,
        mode=rule.get("mode", AssignmentMode.ROUND_ROBIN.value),
        match_skills=rule.get("match_skills", False),
        prefer_account_manager=rule.get("prefer_account_manager", True),
        takes_unteamed=rule.get("takes_unteamed", False),
    )
    return team


def new_ticket(team: Team | None, **kwargs: Any) -> Ticket:
    ticket = factories.ticket(team=team, **kwargs)
    db.session.flush()
    return ticket


def placed(team: Team | None, n: int = 1, **kwargs: Any) -> list[str]:
    names = []
    for _ in range(n):
        ticket = new_ticket(team, **kwargs)
        result = rules.place(ticket, NOW)
        assert result is not None
        names.append(result.assignee.name if result.assignee else str(result.reason))
    return names


def test_round_robin_skips_the_absent_agent_and_survives_a_restart(ctx: None) -> None:
    team = team_with_rule()
    agent("Ann", team), agent("Bob", team)
    cid = agent("Cid", team)
    away(cid)
    db.session.flush()
    assert placed(team, 4) == ["Ann", "Bob", "Ann", "Bob"]
    team_id, cid_id = team.id, cid.id
    db.session.commit()
    # A new process: nothing in memory, the turns are in the database.
    db.session.expunge_all()
    team = db.session.get(Team, team_id)
    assert placed(team, 2) == ["Ann", "Bob"]
    ticket = db.session.scalars(select(Ticket).order_by(Ticket.id.desc())).first()
    assert ticket.status == Status.OPEN.value and not ticket.waiting_for_dispatch
    kinds = [e.kind for e in ticket.entries]
    assert EntryKind.ASSIGNMENT.value in kinds
    actions = set(
        db.session.scalars(select(AuditLog.action).where(AuditLog.ticket_id == ticket.id))
    )
    assert {"ticket.assign", "assignment_rule.placed"} <= actions
    assert cid_id not in {t.assignee_id for t in db.session.scalars(select(Ticket))}


def test_a_supervisor_who_is_no_agent_is_not_dealt_tickets(ctx: None) -> None:
    team = team_with_rule()
    agent("Ann", team)
    agent("Lead", team, Role.SUPERVISOR)
    db.session.flush()
    assert placed(team, 2) == ["Ann", "Ann"]


def test_least_busy_gets_the_ticket(ctx: None) -> None:
    team = team_with_rule(mode=AssignmentMode.LEAST_BUSY.value)
    ann, bob, cid = agent("Ann", team), agent("Bob", team), agent("Cid", team)
    db.session.flush()
    staff = Actor.staff(ann)
    for person, n in ((ann, 2), (bob, 1), (cid, 0)):
        for _ in range(n):
            assign(new_ticket(None), staff, assignee=person)
    closed = new_ticket(None)
    assign(closed, staff, assignee=cid)
    change_status(closed, Status.CLOSED, staff)  # closed tickets are no load
    db.session.flush()
    assert placed(team) == ["Cid"]  # 2, 1, 0
    assert placed(team) == ["Bob"]  # 2, 1, 1: a tie, Bob's turn is older than Cid's
    assert placed(team) == ["Cid"]  # 2, 2, 1


def test_skills_limit_who_qualifies(ctx: None) -> None:
    team = team_with_rule(match_skills=True)
    ann, bob = agent("Ann", team), agent("Bob", team)
    billing = Category(name="Billing")
    db.session.add(billing)
    db.session.flush()
    rules.set_skills(Actor.system(), ann, ["VPN"], [])
    rules.set_skills(Actor.system(), bob, [], [billing.id])
    assert placed(team, tags=["vpn"]) == ["Ann"]
    assert placed(team, tags=["vpn", "printer"]) == ["Ann"]
    assert placed(team, category=billing) == ["Bob"]
    assert placed(team, tags=["printer"]) == [str(UnplacedReason.NO_SKILLS)]
    # Nothing to match on: everyone working qualifies.
    assert placed(team, 2) == ["Ann", "Bob"]
    away(ann)
    db.session.flush()
    assert placed(team, tags=["vpn"]) == [str(UnplacedReason.NO_SKILLS)]


def test_the_account_manager_comes_first_when_working(ctx: None) -> None:
    team = team_with_rule()
    agent("Ann", team)
    other = Team(name="Key accounts")
    manager = agent("Mia", other)
    db.session.flush()
    customer = factories.contact("Big Customer AG")
    customer.account.account_manager = manager
    db.session.flush()
    ticket = new_ticket(team, contact=customer)
    result = rules.place(ticket, NOW)
    assert result.assignee is manager and result.how == "account_manager"
    assert ticket.team_id == team.id  # stays with the rule's team
    away(manager)
    db.session.flush()
    assert placed(team, contact=customer) == ["Ann"]
    # Turned off: the rule deals as usual even while she works.
    db.session.execute(AssignmentRule.__table__.update().values(prefer_account_manager=False))
    db.session.query(Absence).delete()
    db.session.flush()
    db.session.expire_all()
    assert placed(team, contact=customer) == ["Ann"]


def test_nobody_working_leaves_the_ticket_unplaced_with_its_reason(ctx: None) -> None:
    team = team_with_rule()
    ann = agent("Ann", team)
    away(ann)
    db.session.flush()
    ticket = new_ticket(team)
    result = rules.place(ticket, NOW)
    assert result.assignee is None and result.reason is UnplacedReason.NOBODY_WORKING
    assert ticket.assignee_id is None and ticket.waiting_for_dispatch
    row = db.session.get(UnplacedTicket, ticket.id)
    assert row.reason == "nobody_working" and row.team_id == team.id
    note = ticket.entries[-1]
    assert note.kind == EntryKind.SYSTEM.value and note.visibility == "internal"
    assert "nobody in the team was working" in note.body_text
    assert db.session.scalar(
        select(AuditLog).where(
            AuditLog.action == "assignment_rule.unplaced", AuditLog.ticket_id == ticket.id
        )
    )
    # The dispatcher's filter lists it, with the reason; once dispatched it is gone.
    page = list_tickets(q("dispatcher", unplaced=1), ann)
    assert [(r.ticket.number, r.unplaced_reason) for r in page.rows] == [
        (ticket.number, "nobody_working")
    ]
    assign(ticket, Actor.staff(ann), assignee=ann)
    db.session.flush()
    assert list_tickets(q("dispatcher", unplaced=1), ann).rows == []


def test_a_team_without_agents_is_a_reason_too(ctx: None) -> None:
    team = team_with_rule()
    assert placed(team) == [str(UnplacedReason.NO_MEMBERS)]


def test_tickets_of_no_team_go_to_the_rule_that_takes_them(ctx: None) -> None:
    team = team_with_rule(takes_unteamed=True)
    agent("Ann", team)
    db.session.flush()
    ticket = new_ticket(None)
    assert rules.place(ticket, NOW).assignee.name == "Ann"
    assert ticket.team_id == team.id
    # Only one rule takes them: setting it on another team takes it from the first.
    second = team_with_rule("Billing", takes_unteamed=True)
    assert not rules.rule_of(team).takes_unteamed and rules.rule_of(second).takes_unteamed


def test_a_rule_that_is_off_or_a_managed_ticket_is_left_alone(ctx: None) -> None:
    team = team_with_rule(mode=AssignmentMode.OFF.value)
    ann = agent("Ann", team)
    db.session.flush()
    assert rules.place(new_ticket(team), NOW) is None
    team2 = team_with_rule("Second")
    ticket = new_ticket(team2, assignee=ann)
    assert rules.place(ticket, NOW) is None and ticket.assignee_id == ann.id


# --- the hook, the job, several workers ----------------------------------------------------


def always_open(team: Team) -> None:
    """A default calendar with 24-hour shifts every day, so 'working now' holds whenever
    the test runs (the job asks the clock, not NOW)."""
    db.session.add(
        WorkCalendar(
            name="Always",
            zone="UTC",
            is_default=True,
            shifts=[WorkShift(weekday=d, starts=time(0), ends=time(0)) for d in range(7)],
        )
    )


def test_a_new_ticket_is_placed_by_the_job_after_commit(app: Flask) -> None:
    with app.app_context():
        team = team_with_rule(takes_unteamed=True)
        agent("Ann", team)
        always_open(team)
        db.session.commit()
        number = factories.ticket("Mail from a customer").number  # mail: no team
        db.session.commit()
    run_jobs(app)
    with app.app_context():
        ticket = db.session.scalar(select(Ticket).where(Ticket.number == number))
        assert ticket.assignee.name == "Ann" and ticket.team.name == "Network"
        assert ticket.status == Status.OPEN.value


def test_a_rolled_back_ticket_enqueues_nothing(app: Flask) -> None:
    with app.app_context():
        team = team_with_rule(takes_unteamed=True)
        agent("Ann", team)
        db.session.commit()
        factories.ticket("Never committed")
        db.session.rollback()
    from app.jobs import queue

    with app.app_context():
        assert queue("default").count == 0


def test_two_workers_deal_round_robin_turns_once_each(app: Flask) -> None:
    with app.app_context():
        team = team_with_rule()
        for name in ("Ann", "Bob", "Cid"):
            agent(name, team)
        always_open(team)
        db.session.commit()
        for n in range(9):
            factories.ticket(f"Ticket {n}", team=team)
        db.session.commit()
    two_workers_at_once(app)
    with app.app_context():
        owners = Counter(t.assignee.name for t in db.session.scalars(select(Ticket)) if t.assignee)
        assert owners == {"Ann": 3, "Bob": 3, "Cid": 3}
        assert db.session.scalar(select(AssignmentRule.turn)) == 9


# --- the admin's form ----------------------------------------------------------------------


@pytest.fixture
def admin_and_team(app: Flask, make_user: Any) -> tuple[Any, int, int, int]:
    admin = make_user(Role.ADMIN)
    ann = make_user(Role.AGENT)
    with app.app_context():
        team = Team(name="Network")
        db.session.add_all([team, Category(name="Billing")])
        db.session.flush()
        db.session.get(User, ann.id).team = team
        db.session.commit()
        category_id = db.session.scalar(select(Category.id))
        return admin, team.id, ann.id, category_id


def test_the_admin_sets_the_rule_and_skills_on_the_team_page(
    app: Flask, client: Any, login: Any, admin_and_team: Any
) -> None:
    admin, team_id, ann_id, category_id = admin_and_team
    login(admin)
    page = client.get(f"/admin/teams/{team_id}").get_data(as_text=True)
    assert "Assignment rule" in page and "Skills" in page
    token = csrf_from(page)
    response = client.post(
        f"/admin/teams/{team_id}/assignment",
        data={"csrf_token": token, "mode": "least_busy", "match_skills": "1"},
    )
    assert response.status_code == 303
    response = client.post(
        f"/admin/teams/{team_id}/skills",
        data={
            "csrf_token": token,
            f"tags-{ann_id}": "VPN, printer",
            f"categories-{ann_id}": str(category_id),
        },
    )
    assert response.status_code == 303
    page = client.get(f"/admin/teams/{team_id}").get_data(as_text=True)
    assert 'value="printer, vpn"' in page
    with app.app_context():
        rule = db.session.scalar(select(AssignmentRule))
        assert (rule.mode, rule.match_skills, rule.prefer_account_manager) == (
            "least_busy",
            True,
            False,
        )
        assert db.session.query(AgentSkill).count() == 3
        actions = set(db.session.scalars(select(AuditLog.action)))
        assert {"assignment_rule.changed", "agent.skills"} <= actions
    bad = client.post(
        f"/admin/teams/{team_id}/assignment", data={"csrf_token": token, "mode": "lottery"}
    )
    assert bad.status_code == 422


def test_only_admins_change_rules(
    app: Flask, client: Any, login: Any, make_user: Any, admin_and_team: Any
) -> None:
    _admin, team_id, _ann, _cat = admin_and_team
    supervisor = make_user(Role.SUPERVISOR, Role.AGENT)
    login(supervisor)
    token = csrf_from(client.get("/agent/board").get_data(as_text=True))
    response = client.post(
        f"/admin/teams/{team_id}/assignment", data={"csrf_token": token, "mode": "round_robin"}
    )
    assert response.status_code == 403
    with app.app_context():
        assert db.session.scalar(select(AssignmentRule)) is None


def test_a_stream_entry_reads_in_the_ticket(ctx: None) -> None:
    team = team_with_rule()
    ticket = new_ticket(team)
    rules.place(ticket, NOW)
    texts = [e.body_text for e in db.session.scalars(select(StreamEntry))]
    assert any("the team has no active agents" in t for t in texts)
