"""SLA policies and the tickets' clocks (``app.sla.policies``, ``app.sla.targets``).

Targets are business minutes; without a stored calendar the company default applies
(Mon–Fri 09:00–17:00 Europe/Berlin, German public holidays). Instants are written in
Berlin time and compared in UTC.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from app.actor import Actor
from app.extensions import db
from app.mail import autoresponse
from app.models import Role
from app.models.audit import AuditLog
from app.models.mail import OutboxMessage, SenderIdentity
from app.models.people import Account, User
from app.models.sla import SlaPolicy
from app.models.tickets import Category, Priority, Status, Ticket
from app.sla import calendars, policies
from app.sla.policies import PolicyInput
from app.sla.targets import (
    ClockState,
    expectation_text,
    expected_answer,
    first_response_clock,
    recompute_due,
    resolution_clock,
)
from app.tickets import assign, change_priority, change_status
from app.tickets.replies import answer
from tests import factories

BERLIN = ZoneInfo("Europe/Berlin")
ADMIN = Actor.system()


def berlin(*args: int) -> datetime:
    return datetime(*args, tzinfo=BERLIN).astimezone(UTC)


def policy(
    priority: str = "normal",
    first: int = 120,
    resolution: int = 480,
    *,
    name: str | None = None,
    account: Account | None = None,
    category: Category | None = None,
    pause: bool = True,
    warn_percent: int | None = 80,
    warn_minutes: int | None = None,
    active: bool = True,
) -> SlaPolicy:
    return policies.save_policy(
        ADMIN,
        None,
        PolicyInput(
            name=name or f"{priority} {account and account.name} {category and category.name}",
            priority=priority,
            account_id=account.id if account else None,
            category_id=category.id if category else None,
            first_response_minutes=first,
            resolution_minutes=resolution,
            pause_when_waiting=pause,
            notify_at_once=False,
            warn_percent=warn_percent,
            warn_minutes=warn_minutes,
            active=active,
        ),
    )


def opened_at(when: datetime, **kwargs) -> Ticket:  # type: ignore[no-untyped-def]
    """A ticket as if created at ``when`` (due times recomputed for that instant)."""
    ticket = factories.ticket(**kwargs)
    ticket.created_at = when
    recompute_due(ticket, when)
    return ticket


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Callable[[datetime], None]:
    """Set the instant the change functions believe it is."""

    def set_now(when: datetime) -> None:
        for module in (
            "app.tickets.changes",
            "app.tickets.assignment",
            "app.tickets.replies",
            "app.tickets.stream",
        ):
            monkeypatch.setattr(f"{module}.utcnow", lambda: when)

    return set_now


def test_the_most_specific_active_policy_wins(ctx: None) -> None:
    vip = Account(name="VIP AG")
    other = Account(name="Other AG")
    billing = Category(name="Billing")
    db.session.add_all([vip, other, billing])
    db.session.flush()
    general = policy("normal", name="Normal")
    by_category = policy("normal", name="Normal billing", category=billing)
    by_account = policy("normal", name="Normal VIP", account=vip)
    both = policy("normal", name="Normal VIP billing", account=vip, category=billing)
    policy("normal", name="Retired other", account=other, active=False)
    policy("high", name="High")

    def winner(account: Account | None, category: Category | None) -> str | None:
        ticket = factories.ticket(priority=Priority.NORMAL, account=account, category=category)
        found = policies.policy_for(ticket)
        return found.name if found else None

    assert winner(vip, billing) == both.name
    assert winner(vip, None) == by_account.name
    assert winner(other, billing) == by_category.name  # the other account's one is inactive
    assert winner(other, None) == general.name
    assert winner(None, None) == general.name
    low = factories.ticket(priority=Priority.LOW)
    assert policies.policy_for(low) is None and low.first_response_due_at is None


def test_a_second_policy_for_the_same_facts_is_refused_and_edits_are_audited(ctx: None) -> None:
    first = policy("urgent", 30, 240, name="Urgent")
    with pytest.raises(Exception, match="covers the same priority"):
        policy("urgent", 60, 480, name="Urgent again")
    with pytest.raises(Exception, match="cannot be shorter"):
        policies.save_policy(
            ADMIN,
            first,
            PolicyInput("Urgent", "urgent", None, None, 300, 240, True, True, 80, None),
        )
    db.session.rollback()
    first = db.session.scalar(select(SlaPolicy).where(SlaPolicy.name == "Urgent"))
    if first is None:  # the rollback took the unsaved creation along
        first = policy("urgent", 30, 240, name="Urgent")
    policies.save_policy(
        ADMIN, first, PolicyInput("Urgent", "urgent", None, None, 15, 240, True, True, 80, None)
    )
    actions = [
        row.action
        for row in db.session.scalars(select(AuditLog).where(AuditLog.object_type == "sla_policy"))
    ]
    assert "sla_policy.created" in actions and "sla_policy.changed" in actions


def test_due_times_skip_the_weekend(ctx: None) -> None:
    policy("normal", first=120, resolution=480)
    ticket = opened_at(berlin(2026, 11, 27, 16, 0))  # Friday, one hour before closing
    assert ticket.first_response_due_at == berlin(2026, 11, 30, 10, 0)  # Monday
    assert ticket.resolution_due_at == berlin(2026, 11, 30, 16, 0)
    # Near breach at 80%: 96 minutes of the two hours, 384 of the eight.
    assert ticket.first_response_warn_at == berlin(2026, 11, 30, 9, 36)
    assert ticket.resolution_warn_at == berlin(2026, 11, 30, 14, 24)


def test_due_times_skip_christmas(ctx: None) -> None:
    policy("normal", first=60, resolution=480, warn_minutes=30)
    ticket = opened_at(berlin(2026, 12, 24, 16, 30))  # Thursday; Fri 25 and Sat 26 are holidays
    assert ticket.first_response_due_at == berlin(2026, 12, 28, 9, 30)
    assert ticket.resolution_due_at == berlin(2026, 12, 28, 16, 30)
    # "30 minutes before" instead of a percentage: the warning is Christmas Eve's last half hour.
    assert ticket.first_response_warn_at == berlin(2026, 12, 24, 17, 0)
    assert ticket.resolution_warn_at == berlin(2026, 12, 28, 16, 0)


def test_the_assignees_calendar_counts_and_the_teams_without_one(ctx: None) -> None:
    policy("normal", first=60, resolution=480)
    new_york = calendars.save_calendar(
        ADMIN,
        None,
        name="New York office",
        zone="America/New_York",
        country="US",
        subdivision="NY",
        shifts=[(d, time(9), time(17)) for d in range(5)],
        is_default=False,
    )
    agent = factories.staff_user(Role.AGENT)
    calendars.assign(ADMIN, new_york, user=agent)
    ticket = opened_at(berlin(2026, 11, 30, 16, 0))  # Monday 16:00 in Berlin, 10:00 in New York
    assert ticket.first_response_due_at == berlin(2026, 11, 30, 17, 0)  # the desk's default
    assign(ticket, Actor.system(), assignee=agent)
    # Now measured in New York hours from creation: 10:00 + 1 h = 11:00 EST = 17:00 Berlin;
    # the resolution (8 h: 7 on Monday, 1 on Tuesday) at 10:00 New York time, 16:00 Berlin.
    assert ticket.first_response_due_at == berlin(2026, 11, 30, 17, 0)
    assert ticket.resolution_due_at == berlin(2026, 12, 1, 16, 0)


def test_a_priority_change_recomputes_the_due_times(
    ctx: None, clock: Callable[[datetime], None]
) -> None:
    policy("normal", first=480, resolution=2400)
    policy("urgent", first=30, resolution=240)
    ticket = opened_at(berlin(2026, 11, 30, 9, 0), priority=Priority.NORMAL)
    assert ticket.first_response_due_at == berlin(2026, 11, 30, 17, 0)
    clock(berlin(2026, 11, 30, 9, 10))
    change_priority(ticket, Priority.URGENT, Actor.system())
    assert ticket.first_response_due_at == berlin(2026, 11, 30, 9, 30)
    assert ticket.resolution_due_at == berlin(2026, 11, 30, 13, 0)
    db.session.flush()
    audited = select(AuditLog).where(
        AuditLog.action == "ticket.priority", AuditLog.ticket_id == ticket.id
    )
    assert db.session.scalar(audited) is not None


def test_pending_pauses_the_resolution_clock_and_resuming_shifts_it(
    ctx: None, clock: Callable[[datetime], None]
) -> None:
    policy("normal", first=60, resolution=480, pause=True)
    ticket = opened_at(berlin(2026, 11, 30, 9, 0))  # Monday 09:00: resolution due 17:00
    clock(berlin(2026, 11, 30, 9, 30))
    change_status(ticket, Status.OPEN, staff())
    assert ticket.resolution_due_at == berlin(2026, 11, 30, 17, 0)

    ticket.first_responded_at = berlin(2026, 11, 30, 10, 55)  # asked the customer something
    clock(berlin(2026, 11, 30, 11, 0))  # two hours in, six left: waiting on the customer
    change_status(ticket, Status.PENDING, staff())
    assert ticket.resolution_due_at is None and ticket.sla_paused_at == berlin(2026, 11, 30, 11)
    state = resolution_clock(ticket, berlin(2026, 11, 30, 18, 0))
    assert state is not None and state.state is ClockState.PAUSED
    from app.tickets.listing import overdue_condition

    db.session.flush()
    late = db.session.scalar(
        select(Ticket.id).where(Ticket.id == ticket.id, overdue_condition(berlin(2026, 12, 1, 10)))
    )
    assert late is None  # paused: not overdue, though 17:00 has passed

    clock(berlin(2026, 12, 1, 11, 0))  # Tuesday 11:00: the customer answered
    change_status(ticket, Status.OPEN, staff())
    assert ticket.sla_paused_at is None
    assert ticket.sla_paused_minutes == 6 * 60 + 2 * 60  # Mon 11–17, Tue 9–11
    assert ticket.resolution_due_at == berlin(2026, 12, 1, 17, 0)  # six hours left, from 11:00

    # A second pause adds up.
    clock(berlin(2026, 12, 1, 12, 0))
    change_status(ticket, Status.WAITING_THIRD_PARTY, staff())
    clock(berlin(2026, 12, 1, 13, 0))
    change_status(ticket, Status.IN_PROGRESS, staff())
    assert ticket.sla_paused_minutes == 9 * 60
    assert ticket.resolution_due_at == berlin(2026, 12, 2, 10, 0)  # 17:00 + 1 h, overnight


def test_without_the_pause_rule_pending_keeps_the_clock_running(
    ctx: None, clock: Callable[[datetime], None]
) -> None:
    policy("normal", first=60, resolution=480, pause=False)
    ticket = opened_at(berlin(2026, 11, 30, 9, 0))
    clock(berlin(2026, 11, 30, 11, 0))
    change_status(ticket, Status.PENDING, staff())
    assert ticket.resolution_due_at == berlin(2026, 11, 30, 17, 0)
    assert ticket.sla_paused_at is None


def staff() -> Actor:
    return Actor.staff(factories.staff_user(Role.AGENT))


def identity() -> SenderIdentity:
    found = SenderIdentity(address="support@desk.test", name="Support", is_default=True)
    db.session.add(found)
    db.session.flush()
    return found


def test_a_public_reply_stops_the_first_response_clock_an_internal_note_does_not(
    ctx: None, clock: Callable[[datetime], None]
) -> None:
    policy("normal", first=60, resolution=480)
    agent = factories.staff_user(Role.AGENT)
    desk = identity()
    noted = opened_at(berlin(2026, 11, 30, 9, 0))
    replied = opened_at(berlin(2026, 11, 30, 9, 0))
    clock(berlin(2026, 11, 30, 9, 40))
    answer(noted, Actor.staff(agent), "Checking with the printer team.", internal=True)
    answer(replied, Actor.staff(agent), "We are on it.", internal=False, identity=desk)

    later = berlin(2026, 11, 30, 10, 30)
    assert noted.first_responded_at is None
    still = first_response_clock(noted, later)
    assert still is not None and still.state is ClockState.BREACHED
    assert still.left == "overdue by 30 min"
    assert replied.first_responded_at is not None
    stopped = first_response_clock(replied, later)
    assert stopped is not None and stopped.state is ClockState.MET
    # The first response is answered; the resolution runs on.
    running = resolution_clock(replied, later)
    assert running is not None and running.state is ClockState.RUNNING
    assert running.left == "6 h 30 min left"


def test_the_autoresponse_names_the_expected_answer_in_english_and_german(ctx: None) -> None:
    policy("normal", first=120, resolution=960)
    identity()
    german = SenderIdentity(address="kontakt@desk.test", name="Kontakt", language="de")
    db.session.add(german)
    agent = factories.staff_user(Role.AGENT)
    agent.name = "Anna Agent"
    # Friday 22 November 2030, 16:00 in Berlin: two business hours end Monday 10:00.
    # (Far ahead, so "now" is before it and the promise is still honest.)
    ticket = factories.ticket(subject="Printer on fire", assignee=agent)
    ticket.created_at = berlin(2030, 11, 22, 16, 0)
    recompute_due(ticket, ticket.created_at)
    target = autoresponse.decide(ticket)
    assert isinstance(target, autoresponse.Target)
    message = autoresponse.queue(ticket, target)
    assert "You will hear from Anna on Monday, 25 November, before 10:00" in message.body_text

    in_german = autoresponse.Target(target.address, target.name, german, "de", None)
    mail = autoresponse.queue(ticket, in_german, autoresponse.REOPEN)
    assert mail.language == "de"
    # The reopen notice has no such line; the autoresponse in German has it, with German dates.
    assert "Montag" not in mail.body_text
    german_text = autoresponse.values_for(ticket, in_german)["expected_answer"]
    assert "Montag, 25. November" in german_text and "10:00" in german_text
    rendered = autoresponse.system_mail.render(
        autoresponse.system_mail.Kind.AUTORESPONSE,
        german,
        "de",
        autoresponse.values_for(ticket, in_german),
    )
    assert "Wir haben Ihre Anfrage erhalten" in rendered.subject
    assert "Montag, 25. November" in rendered.text


def test_without_a_working_assignee_the_team_is_promised_and_the_zone_is_the_readers(
    ctx: None,
) -> None:
    policy("normal", first=120, resolution=960)
    agent = factories.staff_user(Role.AGENT)
    agent.name = "Anna Agent"
    ticket = factories.ticket(assignee=agent)
    ticket.created_at = berlin(2030, 11, 22, 16, 0)
    recompute_due(ticket, ticket.created_at)
    now = berlin(2030, 11, 22, 16, 30)
    assert expected_answer(ticket, now).agent is not None  # type: ignore[union-attr]
    calendars_absence(agent, berlin(2030, 11, 22, 16, 0), berlin(2030, 12, 1, 0, 0))
    expectation = expected_answer(ticket, now)
    assert expectation is not None and expectation.agent is None
    text = expectation_text(expectation, "en", ZoneInfo("America/New_York"))
    assert text.startswith("You will hear from our team on Monday, 25 November, before 4:00")
    assert "AM" in text  # 10:00 in Berlin is 04:00 in New York
    # Unassigned or with no policy: the team, or no promise at all.
    db.session.execute(select(SlaPolicy)).scalars().first().active = False
    recompute_due(ticket, now)
    assert expected_answer(ticket, now) is None


def calendars_absence(user: User, start: datetime, end: datetime) -> None:
    from app.models.sla import Absence

    db.session.add(Absence(user_id=user.id, starts_at=start, ends_at=end))
    db.session.flush()


def test_an_answered_ticket_promises_nothing(ctx: None) -> None:
    policy("normal", first=120, resolution=960)
    ticket = factories.ticket()
    ticket.created_at = berlin(2030, 11, 22, 16, 0)
    recompute_due(ticket, ticket.created_at)
    ticket.first_responded_at = berlin(2030, 11, 22, 16, 5)
    assert expected_answer(ticket, berlin(2030, 11, 22, 16, 10)) is None
    assert db.session.scalar(select(OutboxMessage)) is None
