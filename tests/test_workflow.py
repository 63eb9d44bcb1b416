"""The status machine and every ticket change: entries, audit rows, refusals."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from app.actor import Actor, ActorKind
from app.extensions import db
from app.models import AuditLog, EntryKind, Priority, Status, StreamEntry, Ticket, Visibility
from app.models.tickets import Category, LinkKind
from app.tickets import (
    TRANSITIONS,
    InvalidTicketChange,
    TransitionNotAllowed,
    add_customer_message,
    add_note,
    allowed_targets,
    assign,
    change_category,
    change_priority,
    change_status,
    link_tickets,
    linked_tickets,
    set_tags,
    unlink_tickets,
)
from tests import factories

pytestmark = pytest.mark.usefixtures("ctx")

ALL_PAIRS = [(a, b) for a in Status for b in Status if a != b]


def count(model, **where) -> int:  # type: ignore[no-untyped-def]
    stmt = select(func.count()).select_from(model)
    for key, value in where.items():
        stmt = stmt.where(getattr(model, key) == value)
    return db.session.scalar(stmt)


def put_in(ticket: Ticket, status: Status) -> None:
    ticket.status = status.value
    db.session.commit()


@pytest.mark.parametrize(("current", "target"), ALL_PAIRS)
def test_every_pair_follows_the_table_for_staff(current: Status, target: Status) -> None:
    ticket = factories.ticket()
    put_in(ticket, current)
    agent = factories.staff_user()
    allowed = ActorKind.STAFF in TRANSITIONS.get((current, target), frozenset())
    audits_before = count(AuditLog, action="ticket.status")
    if allowed:
        change_status(ticket, target, Actor.staff(agent))
        db.session.commit()
        assert db.session.get(Ticket, ticket.id).status == target.value
        assert count(AuditLog, action="ticket.status") == audits_before + 1
    else:
        with pytest.raises(TransitionNotAllowed) as refused:
            change_status(ticket, target, Actor.staff(agent))
        assert current.label in refused.value.message and target.label in refused.value.message
        db.session.rollback()
        assert db.session.get(Ticket, ticket.id).status == current.value
        assert count(AuditLog, action="ticket.status") == audits_before


def test_nobody_moves_a_ticket_back_to_new() -> None:
    for status in Status:
        for kind in ActorKind:
            assert Status.NEW not in allowed_targets(status, kind)


@pytest.mark.parametrize("closed", [Status.RESOLVED, Status.CLOSED, Status.PENDING])
def test_customer_reply_reopens(closed: Status) -> None:
    ticket = factories.ticket()
    put_in(ticket, closed)
    customer = Actor.customer(name="Ann", email=ticket.contact.email)
    add_customer_message(ticket, customer, "It broke again.")
    db.session.commit()
    assert ticket.status == Status.OPEN.value
    assert ticket.in_inbox is True
    kinds = [e.kind for e in ticket.entries]
    assert kinds[-2:] == [EntryKind.STATUS_CHANGE.value, EntryKind.PORTAL_MESSAGE.value]
    assert ticket.resolved_at is None and ticket.closed_at is None


def test_customer_cannot_make_agent_moves() -> None:
    ticket = factories.ticket()
    put_in(ticket, Status.OPEN)
    customer = Actor.customer(name="Ann", email="ann@acme.test")
    with pytest.raises(TransitionNotAllowed, match="customer cannot"):
        change_status(ticket, Status.IN_PROGRESS, customer)
    with pytest.raises(TransitionNotAllowed):
        change_status(ticket, Status.RESOLVED, customer)
    # ...but may close their own ticket.
    change_status(ticket, Status.CLOSED, customer)
    assert ticket.closed_at is not None


def test_pending_keeps_follow_up_date_and_leaving_clears_it() -> None:
    from datetime import UTC, datetime

    ticket = factories.ticket()
    put_in(ticket, Status.OPEN)
    agent = Actor.staff(factories.staff_user())
    follow_up = datetime(2030, 1, 2, 9, 0, tzinfo=UTC)
    change_status(ticket, Status.PENDING, agent, pending_until=follow_up)
    db.session.commit()
    db.session.expire_all()
    assert db.session.get(Ticket, ticket.id).pending_until == follow_up
    change_status(ticket, Status.OPEN, agent)
    assert ticket.pending_until is None


def test_creation_writes_number_entry_recipients_and_audit() -> None:
    account_manager = factories.staff_user()
    all_mail = factories.staff_user()
    all_mail.receives_all_mail = True
    person = factories.contact()
    person.account.account_manager = account_manager
    ticket = factories.ticket(contact=person, tags=["VPN ", "vpn", "Billing"])
    db.session.commit()
    assert ticket.number.startswith("T-") and ticket.number[2:].isdigit()
    assert ticket.status == Status.NEW.value and ticket.waiting_for_dispatch
    assert [e.kind for e in ticket.entries] == [EntryKind.MAIL_IN.value]
    assert ticket.entries[0].visibility == Visibility.EXTERNAL.value
    assert ticket.in_inbox and ticket.last_customer_activity_at is not None
    assert [t.name for t in ticket.tags] == ["billing", "vpn"]
    assert [(r.kind, r.address) for r in ticket.recipients] == [("to", person.email)]
    assert {u.id for u in ticket.subscribers} == {account_manager.id, all_mail.id}
    row = db.session.scalar(select(AuditLog).where(AuditLog.action == "ticket.create"))
    assert row.ticket_id == ticket.id and row.object_id == ticket.number


def test_creation_subscribes_each_person_once_and_sees_unflushed_changes() -> None:
    from app.models.people import Account, Contact, Team
    from app.models.tickets import Channel
    from app.tickets import create_ticket

    manager = factories.staff_user()
    manager.receives_all_mail = True  # account manager and all mail: subscribed once
    assignee = factories.staff_user()
    assignee.team = Team(name="First level")
    gone = factories.staff_user()
    gone.receives_all_mail, gone.active = True, False
    account = Account(name="Beta AG", account_manager=manager)
    person = Contact(name="Bea Beta", email="Bea@Beta.test", account=account)
    db.session.add(person)  # none of this is flushed yet
    ticket = create_ticket(
        Channel.AGENT,
        Actor.staff(assignee),
        subject=" Two   words ",
        contact=person,
        assignee=assignee,
    )

    def check() -> None:
        assert ticket.subject == "Two words" and ticket.version == 2
        assert ticket.account is account and ticket.team is assignee.team
        assert ticket.created_by is assignee and not ticket.waiting_for_dispatch
        assert not ticket.in_inbox and ticket.last_customer_activity_at is None
        assert sorted(u.id for u in ticket.subscribers) == sorted([manager.id, assignee.id])
        assert [(r.kind, r.address, r.name) for r in ticket.recipients] == [
            ("to", "bea@beta.test", "Bea Beta")
        ]
        assert [(e.kind, e.author_id, e.data) for e in ticket.entries] == [
            (EntryKind.MESSAGE.value, assignee.id, {"channel": "agent"})
        ]
        assert ticket.entries[0].created_at == ticket.created_at == ticket.updated_at

    check()  # before the commit the object already shows the rows
    db.session.commit()
    db.session.expire_all()
    check()


def test_created_ticket_is_found_at_once_and_gone_after_rollback() -> None:
    from app.tickets import search

    ticket = factories.ticket(subject="Quokka sighting", tags=["zoo"])

    def found() -> list[int]:
        return [row.ticket_id for row in db.session.execute(search.matches("sqlite", "quokka"))]

    assert found() == [ticket.id]
    assert [t.name for t in ticket.tags] == ["zoo"]
    db.session.rollback()
    assert found() == []
    assert count(Ticket) == 0 and count(StreamEntry) == 0
    assert count(AuditLog, action="ticket.create") == 0


def test_ticket_without_contact_needs_an_address() -> None:
    from app.models.tickets import Channel
    from app.tickets import create_ticket

    with pytest.raises(InvalidTicketChange, match="address"):
        create_ticket(Channel.API, Actor.system(), subject="Hello")
    with pytest.raises(InvalidTicketChange, match="subject"):
        create_ticket(Channel.API, Actor.system(), subject="   ", submitter_email="a@b.test")


def test_assignment_subscribes_manager_and_opens() -> None:
    from app.models.people import Team

    team = Team(name="Second level")
    agent = factories.staff_user()
    agent.team = team
    ticket = factories.ticket()
    assign(ticket, Actor.staff(factories.staff_user()), assignee=agent, note="Knows the VPN")
    db.session.commit()
    assert ticket.assignee_id == agent.id and ticket.team.name == "Second level"
    assert not ticket.waiting_for_dispatch
    assert agent in ticket.subscribers
    assert ticket.status == Status.OPEN.value
    assignment = next(e for e in ticket.entries if e.kind == EntryKind.ASSIGNMENT.value)
    assert "Knows the VPN" in assignment.body_text and assignment.is_internal
    assign(ticket, Actor.staff(agent), assignee=None)
    assert ticket.waiting_for_dispatch and ticket.assignee is None


def test_assignment_refuses_customers_and_non_staff_assignees() -> None:
    from app.models.people import Role

    ticket = factories.ticket()
    customer_user = factories.staff_user(Role.CUSTOMER)
    with pytest.raises(InvalidTicketChange, match="not a member of staff"):
        assign(ticket, Actor.staff(factories.staff_user()), assignee=customer_user)
    with pytest.raises(TransitionNotAllowed):
        assign(ticket, Actor.customer(name="x", email="x@y.test"), assignee=None)


def test_priority_category_tags_each_leave_a_trace() -> None:
    ticket = factories.ticket()
    agent = Actor.staff(factories.staff_user())
    change_priority(ticket, Priority.URGENT, agent)
    with pytest.raises(InvalidTicketChange):
        change_priority(ticket, Priority.URGENT, agent)
    with pytest.raises(InvalidTicketChange):
        change_priority(ticket, "extreme", agent)  # type: ignore[arg-type]
    billing = Category(name="Billing")
    change_category(ticket, billing, agent)
    assert set_tags(ticket, ["gdpr"], agent) is not None
    assert set_tags(ticket, ["GDPR"], agent) is None  # unchanged: no entry
    db.session.commit()
    kinds = [e.kind for e in ticket.entries]
    assert kinds.count(EntryKind.PRIORITY_CHANGE.value) == 1
    assert kinds.count(EntryKind.CATEGORY_CHANGE.value) == 1
    assert kinds.count(EntryKind.TAGS.value) == 1
    actions = set(
        db.session.scalars(select(AuditLog.action).where(AuditLog.ticket_id == ticket.id))
    )
    assert {"ticket.priority", "ticket.category", "ticket.tags"} <= actions


def test_links_work_from_both_ends_and_refuse_self_and_duplicates() -> None:
    a, b = factories.ticket("A"), factories.ticket("B")
    agent = Actor.staff(factories.staff_user())
    link_tickets(a, b, agent, LinkKind.RELATED)
    db.session.commit()
    assert [t.number for _, t in linked_tickets(a)] == [b.number]
    assert [t.number for _, t in linked_tickets(b)] == [a.number]
    with pytest.raises(InvalidTicketChange, match="already linked"):
        link_tickets(b, a, agent)
    with pytest.raises(InvalidTicketChange, match="itself"):
        link_tickets(a, a, agent)
    unlink_tickets(b, a, agent)
    db.session.commit()
    assert linked_tickets(a) == []
    assert count(StreamEntry, ticket_id=a.id, kind=EntryKind.LINK.value) == 2


def test_notes_are_internal_and_staff_only() -> None:
    ticket = factories.ticket()
    entry = add_note(ticket, Actor.staff(factories.staff_user()), "Customer is a VIP")
    assert entry.is_internal
    with pytest.raises(TransitionNotAllowed):
        add_note(ticket, Actor.customer(name="c", email="c@d.test"), "sneaky")


def test_html_bodies_are_sanitised_before_storage() -> None:
    ticket = factories.ticket()
    entry = add_note(
        ticket,
        Actor.staff(factories.staff_user()),
        "x",
        body_html='<p onclick="steal()">Hi<script>alert(1)</script>'
        '<a href="javascript:x">l</a></p>',
    )
    db.session.commit()
    stored = db.session.get(StreamEntry, entry.id).body_html
    assert "script" not in stored and "onclick" not in stored and "javascript" not in stored
    assert "<p>Hi" in stored


def test_audit_rows_cannot_be_changed_or_deleted() -> None:
    from sqlalchemy import text
    from sqlalchemy.exc import DatabaseError

    from app.models import AuditLogIsAppendOnly

    factories.ticket()
    db.session.commit()
    row = db.session.scalar(select(AuditLog))
    row.action = "forged"
    with pytest.raises(AuditLogIsAppendOnly):
        db.session.commit()
    db.session.rollback()
    db.session.delete(db.session.scalar(select(AuditLog)))
    with pytest.raises(AuditLogIsAppendOnly):
        db.session.commit()
    db.session.rollback()
    # Around the ORM, the database triggers refuse too.
    for statement in ("UPDATE audit_log SET action = 'forged'", "DELETE FROM audit_log"):
        with pytest.raises(DatabaseError, match="append-only"):
            db.session.execute(text(statement))
        db.session.rollback()
