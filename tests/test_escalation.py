"""SLA escalation over a simulated week: who is told what, when, and only once.

Time is frozen and stepped with ``time_machine``; the sweep and the delivery run as the
periodic job runs them (``sweep`` + commit, then ``deliver_due``). The company calendar
applies to everyone (Mon–Fri 09:00–17:00 Europe/Berlin); the week of 30 November 2026
has no public holiday. Mails are read from the outbox, where the relay would pick them up.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from flask import Flask
from sqlalchemy import select, text

from app.actor import Actor
from app.extensions import db
from app.jobs.sla import deliver_due
from app.models.audit import AuditLog
from app.models.mail import OutboxMessage, OutboxRecipient, SenderIdentity
from app.models.notifications import Notification
from app.models.people import Role, Team, User
from app.models.sla import Escalation, EscalationStatus, EscalationTarget
from app.models.tickets import EntryKind, Priority, StreamEntry, Ticket
from app.sla import escalation
from app.tickets.replies import answer
from tests import factories

BERLIN = ZoneInfo("Europe/Berlin")
UTC = ZoneInfo("UTC")


def berlin(day: int, hour: int, minute: int = 0) -> datetime:
    """An instant given in Berlin wall-clock time, 2026-11-<day> or 2026-12-<day - 30>."""
    month, d = (11, day) if day <= 30 else (12, day - 30)
    return datetime(2026, month, d, hour, minute, tzinfo=BERLIN).astimezone(UTC)


MON, TUE, WED, SAT, SUN, NEXT_MON = 30, 31, 32, 35, 36, 37


@pytest.fixture
def desk(app: Flask) -> Iterator[dict[str, int]]:
    """Sam supervises Ada and Bob and the team; Bea supervises Sam; an identity to mail from."""
    with app.app_context():
        team = Team(name="Second level")
        db.session.add(team)
        db.session.add(
            SenderIdentity(address="support@desk.test", name="Desk Support", is_default=True)
        )
        bea = factories.staff_user(Role.SUPERVISOR)
        sam = factories.staff_user(Role.SUPERVISOR)
        ada = factories.staff_user(Role.AGENT)
        bob = factories.staff_user(Role.AGENT)
        sam.supervisor, sam.team, sam.language = bea, team, "de"
        ada.supervisor, ada.team = sam, team
        bob.supervisor, bob.team = sam, team
        bea.name, sam.name, ada.name, bob.name = "Bea Boss", "Sam Supervisor", "Ada", "Bob"
        db.session.commit()
        yield {
            "team": team.id,
            "bea": bea.id,
            "sam": sam.id,
            "ada": ada.id,
            "bob": bob.id,
        }


def _ticket(
    subject: str,
    priority: Priority,
    *,
    assignee: int | None = None,
    team: int | None = None,
    first_response_due: datetime | None = None,
    resolution_due: datetime | None = None,
) -> int:
    ticket = factories.ticket(
        subject,
        priority=priority,
        assignee=db.session.get(User, assignee) if assignee else None,
        team=db.session.get(Team, team) if team else None,
    )
    ticket.first_response_due_at = first_response_due
    ticket.resolution_due_at = resolution_due
    db.session.commit()
    return ticket.id


def _reply(ticket_id: int, user_id: int) -> None:
    ticket = db.session.get(Ticket, ticket_id)
    identity = db.session.scalar(select(SenderIdentity))
    answer(
        ticket,
        Actor.staff(db.session.get(User, user_id)),
        "Looking into it.",
        internal=False,
        identity=identity,
    )
    db.session.commit()


def _run_sweep() -> None:
    escalation.sweep()
    db.session.commit()
    deliver_due()


def _escalation_mails() -> list[tuple[str, str, datetime, str]]:
    """(ticket subject, address, Berlin time queued, mail subject) of every escalation mail."""
    rows = db.session.execute(
        select(
            Ticket.subject, OutboxRecipient.address, OutboxMessage.created_at, OutboxMessage.subject
        )
        .join(OutboxMessage, OutboxMessage.ticket_id == Ticket.id)
        .join(OutboxRecipient, OutboxRecipient.message_id == OutboxMessage.id)
        .where(OutboxMessage.system_kind == "escalation")
        .order_by(OutboxMessage.created_at, OutboxMessage.id)
    )
    return [(s, a, c.astimezone(BERLIN).replace(tzinfo=None), subj) for s, a, c, subj in rows]


def _email(user_id: int) -> str:
    return db.session.get(User, user_id).email


def test_a_simulated_week_tells_exactly_the_expected_escalations_once(
    app: Flask, desk: dict[str, int]
) -> None:
    with app.app_context(), time_machine.travel(berlin(MON, 8), tick=False) as clock:
        # Urgent, nobody answers: warned, told at once, then one level up 4 hours later.
        urgent = _ticket(
            "Urgent unanswered",
            Priority.URGENT,
            assignee=desk["ada"],
            first_response_due=berlin(MON, 10),
        )
        # High, answered an hour before its due time: nobody hears anything.
        _ticket(
            "High answered", Priority.HIGH, assignee=desk["ada"], first_response_due=berlin(MON, 12)
        )
        # Normal, answered after the warning but in time: a warning only.
        warned = _ticket(
            "Normal warned",
            Priority.NORMAL,
            assignee=desk["bob"],
            first_response_due=berlin(MON, 15),
        )
        # Low, unassigned, resolution overdue on Tuesday: the team's supervisor, then Bea.
        _ticket("Low unassigned", Priority.LOW, team=desk["team"], resolution_due=berlin(TUE, 16))
        # Normal, breached at 02:00 on Sunday: Sam hears on Monday at 09:00.
        _ticket(
            "Sunday breach",
            Priority.NORMAL,
            assignee=desk["bob"],
            first_response_due=berlin(SUN, 2),
        )
        # Urgent, breached on Sunday: told at once (notify-at-once priority).
        _ticket(
            "Sunday urgent",
            Priority.URGENT,
            assignee=desk["bob"],
            first_response_due=berlin(SUN, 3),
        )
        # Breached on Saturday, answered on Monday before Sam's day starts: nobody is told.
        early = _ticket(
            "Answered Monday early",
            Priority.NORMAL,
            assignee=desk["ada"],
            first_response_due=berlin(SAT, 10),
        )
        replies = {
            berlin(MON, 11): ("High answered", desk["ada"]),
            berlin(MON, 14, 45): ("Normal warned", desk["bob"]),
            berlin(NEXT_MON, 8, 30): ("Answered Monday early", desk["ada"]),
        }
        now = berlin(MON, 8)
        while now <= berlin(NEXT_MON, 18):
            clock.move_to(now)
            if now in replies:
                subject, who = replies[now]
                _reply(db.session.scalar(select(Ticket.id).where(Ticket.subject == subject)), who)
            _run_sweep()
            now += timedelta(minutes=15)

        ada, bob, sam, bea = (_email(desk[n]) for n in ("ada", "bob", "sam", "bea"))
        told = [(s, a, at) for s, a, at, _subject in _escalation_mails()]
        assert told == [
            ("Urgent unanswered", ada, datetime(2026, 11, 30, 9, 30)),
            ("Urgent unanswered", sam, datetime(2026, 11, 30, 10, 0)),
            ("Urgent unanswered", bea, datetime(2026, 11, 30, 14, 0)),
            ("Normal warned", bob, datetime(2026, 11, 30, 14, 30)),
            ("Low unassigned", sam, datetime(2026, 12, 1, 16, 0)),
            ("Low unassigned", bea, datetime(2026, 12, 2, 12, 0)),
            ("Sunday urgent", bob, datetime(2026, 12, 6, 2, 30)),
            ("Sunday urgent", sam, datetime(2026, 12, 6, 3, 0)),
            ("Sunday urgent", bea, datetime(2026, 12, 6, 7, 0)),
            ("Sunday breach", sam, datetime(2026, 12, 7, 9, 0)),
            ("Sunday breach", bea, datetime(2026, 12, 7, 13, 0)),
        ]

        # Sam reads German (Eskaliert / Anfrage); the others English.
        subjects = {(s, a): subj for s, a, _at, subj in _escalation_mails()}
        assert "Eskaliert" in subjects[("Urgent unanswered", sam)]
        assert "Escalated" in subjects[("Urgent unanswered", bea)]
        assert "Due soon" in subjects[("Urgent unanswered", ada)]
        body = db.session.scalar(
            select(OutboxMessage.body_text)
            .join(OutboxRecipient)
            .where(OutboxMessage.ticket_id == urgent, OutboxRecipient.address == sam)
        )
        assert "die Anfrage" in body and "Sam Supervisor" in body

        # In the app too: Sam's bell has the escalations, with the ticket.
        bell = db.session.scalars(
            select(Notification).where(
                Notification.user_id == desk["sam"], Notification.kind == "sla_escalation"
            )
        ).all()
        assert len(bell) == 4

        # The warned ticket and the early-answered one have no breach on record.
        levels = {
            (t, lv) for t, lv in db.session.execute(select(Escalation.ticket_id, Escalation.level))
        }
        assert (warned, 1) not in levels
        assert (early, 1) not in levels  # the unsent notice was withdrawn

        # Each told escalation is in the ticket's stream (internal) and in the audit log.
        entries = db.session.scalars(
            select(StreamEntry).where(
                StreamEntry.ticket_id == urgent, StreamEntry.kind == EntryKind.SYSTEM.value
            )
        ).all()
        notes = [e for e in entries if (e.data or {}).get("notice") == "sla_escalation"]
        assert len(notes) == 3 and all(e.visibility == "internal" for e in notes)
        assert any("Sam Supervisor" in e.body_text for e in notes)
        audited = db.session.scalars(
            select(AuditLog).where(AuditLog.action == "sla.escalated", AuditLog.ticket_id == urgent)
        ).all()
        assert len(audited) == 3 and all(a.actor_id is None for a in audited)

        # Sweeping again changes nothing: every level happened once.
        before = len(_escalation_mails())
        _run_sweep()
        clock.shift(timedelta(days=3))
        _run_sweep()
        assert len(_escalation_mails()) == before


def test_a_missed_weekend_of_sweeps_catches_up_once(app: Flask, desk: dict[str, int]) -> None:
    with app.app_context(), time_machine.travel(berlin(SAT - 1, 12), tick=False) as clock:
        ticket = _ticket(
            "Nobody swept", Priority.HIGH, assignee=desk["ada"], first_response_due=berlin(SAT, 2)
        )
        # Workers down from Friday noon to Monday 10:00: one sweep then.
        clock.move_to(berlin(NEXT_MON, 10))
        _run_sweep()
        _run_sweep()
        sam = _email(desk["sam"])
        assert [(a, at) for _s, a, at, _ in _escalation_mails()] == [
            (sam, datetime(2026, 12, 7, 10, 0))
        ]
        # The warning that could not arrive in time is on record as skipped, never sent.
        warning = db.session.scalar(
            select(Escalation).where(Escalation.ticket_id == ticket, Escalation.level == 0)
        )
        assert warning is None  # found only after the due time: no warning at all


def test_nobody_to_tell_is_said_on_the_ticket_and_the_address_gets_it_when_set(
    app: Flask, desk: dict[str, int]
) -> None:
    with app.app_context(), time_machine.travel(berlin(MON, 10), tick=False) as clock:
        loner = factories.staff_user(Role.AGENT)  # no supervisor, no team
        db.session.commit()
        orphan = _ticket(
            "No boss", Priority.URGENT, assignee=loner.id, first_response_due=berlin(MON, 10, 5)
        )
        clock.move_to(berlin(MON, 10, 10))
        _run_sweep()
        assert _escalation_mails() == []
        row = db.session.scalar(
            select(Escalation).where(Escalation.ticket_id == orphan, Escalation.level == 1)
        )
        assert row.status == EscalationStatus.UNROUTED.value
        note = db.session.scalar(
            select(StreamEntry.body_text).where(
                StreamEntry.ticket_id == orphan,
                StreamEntry.data["level"].as_integer() == 1,
            )
        )
        assert "nobody to escalate to" in note
        assert db.session.scalar(
            select(AuditLog.id).where(AuditLog.action == "sla.escalation_unrouted")
        )

        app.config["SLA_ESCALATION_ADDRESS"] = "duty@desk.test"
        other = _ticket(
            "No boss either",
            Priority.URGENT,
            assignee=loner.id,
            first_response_due=berlin(MON, 10, 15),
        )
        clock.move_to(berlin(MON, 10, 20))
        _run_sweep()
        assert [(s, a) for s, a, _at, _ in _escalation_mails()] == [
            ("No boss either", "duty@desk.test")
        ]
        assert other


def test_an_inactive_supervisor_is_passed_over(app: Flask, desk: dict[str, int]) -> None:
    with app.app_context(), time_machine.travel(berlin(MON, 10), tick=False) as clock:
        db.session.get(User, desk["sam"]).active = False
        db.session.commit()
        _ticket(
            "Sam left", Priority.URGENT, assignee=desk["ada"], first_response_due=berlin(MON, 10, 5)
        )
        clock.move_to(berlin(MON, 10, 10))
        _run_sweep()
        # Ada's supervisor is gone and the team has no other supervisor: nobody, on record.
        assert _escalation_mails() == []
        assert db.session.scalar(select(Escalation.status)) == EscalationStatus.UNROUTED.value


def test_two_workers_sweeping_at_once_send_nothing_twice(app: Flask, desk: dict[str, int]) -> None:
    with app.app_context(), time_machine.travel(berlin(MON, 10), tick=False):
        for n in range(40):
            _ticket(
                f"Breached {n}",
                Priority.URGENT if n % 2 else Priority.HIGH,
                assignee=desk["ada"] if n % 3 else desk["bob"],
                first_response_due=berlin(MON, 9, 30) - timedelta(minutes=n),
                resolution_due=berlin(MON, 9, 50) - timedelta(minutes=n),
            )

        barrier = threading.Barrier(2)
        errors: list[BaseException] = []

        def worker() -> None:
            try:
                with app.app_context():
                    barrier.wait()
                    for _ in range(3):
                        escalation.sweep()
                        db.session.commit()
                        deliver_due(batch=7)
                    db.session.remove()
            except BaseException as error:  # noqa: BLE001 - reported below
                errors.append(error)

        threads = [threading.Thread(target=worker) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        assert not errors, errors

        mails = _escalation_mails()
        # 40 tickets, two targets each, all breached: Sam is told of each target once.
        assert len(mails) == 80
        assert len({(s, subject) for s, _a, _at, subject in mails}) == 80
        assert db.session.scalar(select(text("count(*)")).select_from(Escalation)) == 80
        bell = db.session.scalar(
            select(text("count(*)"))
            .select_from(Notification)
            .where(Notification.kind == "sla_escalation")
        )
        assert bell == 80


def test_the_sweep_reads_an_index_range_of_what_is_due(app: Flask) -> None:
    with app.app_context():
        for target, index in (
            (EscalationTarget.FIRST_RESPONSE, "ix_ticket_sla_first_response_open"),
            (EscalationTarget.RESOLUTION, "ix_ticket_sla_resolution_open"),
        ):
            query = escalation.due_query(target, berlin(MON, 10))
            compiled = query.compile(db.engine, compile_kwargs={"literal_binds": True})
            plan = db.session.execute(text(f"EXPLAIN QUERY PLAN {compiled}")).all()
            detail = " ".join(str(row[-1]) for row in plan)
            assert f"USING INDEX {index}" in detail, detail
            assert "<?" in detail, detail  # a range, not a scan of the index


def test_a_policy_marked_notify_at_once_is_told_on_a_saturday(
    app: Flask, desk: dict[str, int]
) -> None:
    """Not in the at-once setting, but its SLA policy says "notify at once": no waiting."""
    from app.models.sla import SlaPolicy

    with app.app_context(), time_machine.travel(berlin(SAT, 12), tick=False) as clock:
        policy = SlaPolicy(
            name="Hotline customers",
            priority=Priority.NORMAL.value,
            first_response_minutes=60,
            resolution_minutes=600,
            notify_at_once=True,
        )
        db.session.add(policy)
        db.session.commit()
        told_now = _ticket("Hotline down", Priority.NORMAL, assignee=desk["ada"])
        waits = _ticket("Nice to have", Priority.LOW, assignee=desk["bob"])
        for ticket_id, policy_id in ((told_now, policy.id), (waits, None)):
            ticket = db.session.get(Ticket, ticket_id)
            ticket.sla_policy_id = policy_id
            ticket.first_response_due_at = berlin(SAT, 13)
        db.session.commit()
        clock.move_to(berlin(SAT, 13, 5))
        _run_sweep()
        sam = _email(desk["sam"])
        assert [(s, a, at) for s, a, at, _ in _escalation_mails()] == [
            ("Hotline down", sam, datetime(2026, 12, 5, 13, 5))
        ]
