"""What the faster paths of mail ingestion must not change (``bench/mail_ingest.py``).

A customer's reply on a ticket with nothing pending is written as two statements
(``stream.insert_customer_entry``) instead of a unit of work, and a batch asks once which
staff a new ticket concerns (``notifications.batch``). What people notice must be what
the unit of work and the per-ticket questions gave.
"""

from __future__ import annotations

from sqlalchemy import select

from app.actor import Actor
from app.extensions import db
from app.mail.ingest import file_batch
from app.models import Role
from app.models.audit import AuditLog
from app.models.inbound import Mailbox, MailOutcome, MailSource
from app.models.notifications import Notification
from app.models.people import User
from app.models.tickets import Channel, EntryKind, Status, StreamEntry, Ticket
from app.tickets import search
from app.tickets.customer_writes import customer_writes
from app.tickets.inbox import is_unread, mark_read
from tests import factories
from tests.test_ingest_perf import desk  # noqa: F401 -- the fixture
from tests.test_mail_ingest import mail


def _ticket(number: str | None) -> Ticket:
    return db.session.execute(select(Ticket).where(Ticket.number == number)).scalar_one()


def _told(user: User) -> list[int]:
    return list(
        db.session.scalars(
            select(Notification.ticket_id)
            .where(Notification.user_id == user.id, Notification.kind == "new_ticket")
            .order_by(Notification.id)
        )
    )


def test_a_reply_lands_as_the_unit_of_work_wrote_it(desk: Mailbox) -> None:  # noqa: F811
    agent = factories.staff_user(Role.AGENT)
    (opened,) = file_batch([(mail("ann@customer.test", "Printer jam"), None)],
                           source=MailSource.IMPORT, mailbox=desk)  # fmt: skip
    ticket = _ticket(opened.ticket_number)
    ticket.status, ticket.in_inbox = Status.OPEN.value, False
    mark_read(ticket, agent)
    db.session.commit()
    version, updated = ticket.version, ticket.updated_at
    reply = mail("ann@customer.test", f"Re: [#{ticket.number}] Printer jam", "Walrus paper",
                 html="<p>Walrus <b>paper</b><script>x()</script></p>")  # fmt: skip
    (filed,) = file_batch([(reply, None)], source=MailSource.IMPORT, mailbox=desk)
    assert filed.outcome is MailOutcome.APPENDED and filed.ticket_number == ticket.number
    db.session.expire_all()
    ticket = _ticket(ticket.number)
    entry = ticket.entries[-1]
    assert entry.kind == EntryKind.MAIL_IN.value and "Walrus paper" in entry.body_text
    assert entry.data["from"] == "ann@customer.test" and entry.data["subject"].startswith("Re:")
    assert "<b>paper</b>" in entry.body_html and "script" not in entry.body_html
    assert ticket.version == version + 1 and ticket.updated_at > updated
    assert ticket.in_inbox and ticket.last_customer_activity_at == entry.created_at
    assert is_unread(ticket, agent)
    query = search.matches(db.engine.dialect.name, "walrus")
    assert query is not None
    assert {row.ticket_id for row in db.session.execute(query)} == {ticket.id}
    audited = db.session.scalars(
        select(AuditLog.ticket_id).where(AuditLog.action == "ticket.customer_message")
    ).all()
    assert audited == [ticket.id]


def test_a_reply_on_a_ticket_with_pending_changes_keeps_them(ctx: None) -> None:
    """A ticket changed in the session (not flushed) goes through the unit of work."""
    ticket = factories.ticket()
    db.session.commit()
    version = ticket.version
    ticket.subject = "Renamed before the reply"
    writer = Actor.customer(name="Ann", email=ticket.contact.email)
    first = customer_writes(ticket, writer, Channel.MAIL, body_text="One")  # unit of work
    db.session.flush()
    assert [e.body_text for e in ticket.entries][-1:] == ["One"]  # the collection, loaded
    second = customer_writes(ticket, writer, Channel.MAIL, body_text="Two")  # statements
    assert [e.body_text for e in ticket.entries][-2:] == ["One", "Two"]
    db.session.commit()
    db.session.expire_all()
    assert ticket.subject == "Renamed before the reply"
    assert [e.body_text for e in ticket.entries][-2:] == ["One", "Two"]
    assert first.entry.id < second.entry.id and second.entry.ticket is ticket
    assert ticket.version == version + 2  # one per message


def test_a_reply_by_someone_who_is_not_the_customer_is_refused_by_the_fast_path(
    ctx: None,
) -> None:
    from app.tickets.stream import insert_customer_entry

    ticket = factories.ticket()
    db.session.commit()
    agent = factories.staff_user(Role.AGENT)
    try:
        insert_customer_entry(ticket, EntryKind.MAIL_IN, Actor.staff(agent), body_text="x")
    except ValueError:
        pass
    else:  # pragma: no cover
        raise AssertionError("staff words were written as a customer's")
    db.session.rollback()
    assert db.session.scalar(select(StreamEntry.id).where(StreamEntry.body_text == "x")) is None


def test_who_is_told_of_new_tickets_is_asked_again_for_the_next_batch(
    desk: Mailbox,  # noqa: F811
) -> None:
    ada = factories.staff_user(Role.AGENT)
    items = [(mail(f"c{i}@customer.test", f"Broken {i}"), None) for i in range(3)]
    first = file_batch(items, source=MailSource.IMPORT, mailbox=desk)
    tickets = [_ticket(r.ticket_number).id for r in first]
    assert _told(ada) == tickets  # every ticket of the batch, from one answer
    # Between batches Ada leaves and Bea joins: the next batch knows.
    ada.active = False
    bea = factories.staff_user(Role.AGENT)
    db.session.commit()
    (later,) = file_batch([(mail("d@customer.test", "Broken again"), None)],
                          source=MailSource.IMPORT, mailbox=desk)  # fmt: skip
    assert _told(ada) == tickets
    assert _told(bea) == [_ticket(later.ticket_number).id]
