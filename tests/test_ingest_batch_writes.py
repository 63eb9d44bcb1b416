"""What batching ingestion's writes must not change (``bench/mail_ingest.py``).

A batch writes its audit rows in one INSERT and its search-index rows in one reindex
before the commit, and answers threading from lookups made up front (``BatchTickets``).
What people notice must be what single messages give: every change has its audit row,
tickets are found by search, replies land where they did, and a message whose savepoint
rolled back (quarantine) or a batch that failed leaves none of its rows behind.
"""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from app import audit
from app.actor import Actor
from app.extensions import db
from app.mail import ingest
from app.mail.ingest import file_batch
from app.models import Role
from app.models.audit import AuditLog
from app.models.inbound import InboundMail, Mailbox, MailOutcome, MailSource
from app.models.mail import OutboxMessage
from app.models.tickets import StreamEntry, Ticket
from app.tickets import search
from tests import factories
from tests.test_ingest_perf import desk  # noqa: F401 -- the fixture
from tests.test_mail_ingest import mail


def _found(word: str) -> set[int]:
    query = search.matches(db.engine.dialect.name, word)
    assert query is not None
    return {row.ticket_id for row in db.session.execute(query)}


def _actions(action: str) -> list[AuditLog]:
    return list(db.session.scalars(select(AuditLog).where(AuditLog.action == action)))


def _ticket(number: str | None) -> Ticket:
    return db.session.execute(select(Ticket).where(Ticket.number == number)).scalar_one()


def test_a_batch_records_every_change_and_indexes_every_ticket(desk: Mailbox) -> None:  # noqa: F811
    items = [(mail(f"c{i}@customer.test", f"Zebra crossing {i}", "stripes"), None)
             for i in range(3)]  # fmt: skip
    results = file_batch(items, source=MailSource.IMPORT, mailbox=desk)
    assert [r.outcome for r in results] == [MailOutcome.CREATED] * 3
    tickets = [_ticket(r.ticket_number) for r in results]
    created = {row.ticket_id for row in _actions("ticket.create")}
    assert created == {t.id for t in tickets}
    assert len(_actions("file.upload")) == 3  # the three originals
    assert _found("zebra") == {t.id for t in tickets}
    # A reply in the next batch: its words are found, its audit row is there.
    reply = mail("c0@customer.test", f"Re: [#{tickets[0].number}] Zebra", "giraffe now")
    (filed,) = file_batch([(reply, None)], source=MailSource.IMPORT, mailbox=desk)
    assert filed.outcome is MailOutcome.APPENDED
    assert _found("giraffe") == {tickets[0].id}
    assert [r.ticket_id for r in _actions("ticket.customer_message")] == [tickets[0].id]


def test_a_quarantined_message_leaves_no_audit_row_nor_index_row(
    desk: Mailbox,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The ticket was made in the savepoint, then filing failed: nothing of it stays."""
    real = ingest.add_cc_recipients

    def fail_for_boom(ticket: Ticket, *args: object, **kwargs: object) -> None:
        if "Boom" in ticket.subject:
            raise RuntimeError("strange input")
        real(ticket, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(ingest, "add_cc_recipients", fail_for_boom)
    items = [
        (mail("a@customer.test", "Walrus one"), None),
        (mail("b@customer.test", "Walrus Boom"), None),
        (mail("c@customer.test", "Walrus three"), None),
    ]
    results = file_batch(items, source=MailSource.IMPORT, mailbox=desk)
    assert [r.outcome for r in results] == [
        MailOutcome.CREATED,
        MailOutcome.QUARANTINED,
        MailOutcome.CREATED,
    ]
    assert db.session.scalar(select(func.count(Ticket.id))) == 2
    numbers = {r.ticket_number for r in results if r.ticket_number}
    assert {row.object_id for row in _actions("ticket.create")} == numbers
    assert len(_actions("file.upload")) == 3  # the quarantined original is kept
    assert _found("walrus") == {_ticket(n).id for n in numbers}


def test_a_failed_batch_leaves_no_audit_rows_and_no_index_rows(
    desk: Mailbox,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = {"n": 0}
    real = ingest.finish

    def lose_the_database_on_the_third(*args: object, **kwargs: object) -> object:
        calls["n"] += 1
        if calls["n"] == 3:
            raise ingest.OperationalError("UPDATE", {}, Exception("database is gone"))
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(ingest, "finish", lose_the_database_on_the_third)
    with pytest.raises(ingest.OperationalError):
        file_batch([(mail(subject=f"Okapi {i}"), None) for i in range(4)],
                   source=MailSource.IMPORT, mailbox=desk)  # fmt: skip
    assert db.session.scalar(select(func.count(AuditLog.id))) == 0
    assert _found("okapi") == set()
    # The next batch starts clean: nothing of the failed one is written with it.
    monkeypatch.setattr(ingest, "finish", real)
    (filed,) = file_batch([(mail(subject="Okapi again"), None)], source=MailSource.IMPORT,
                          mailbox=desk)  # fmt: skip
    assert filed.outcome is MailOutcome.CREATED
    assert len(_actions("ticket.create")) == 1 and len(_actions("file.upload")) == 1
    assert _found("okapi") == {_ticket(filed.ticket_number).id}


def test_threading_in_a_batch_answers_as_single_messages_do(desk: Mailbox) -> None:  # noqa: F811
    agent = factories.staff_user(Role.AGENT)
    (first,) = file_batch([(mail(subject="Printer on fire"), None)], source=MailSource.IMPORT,
                          mailbox=desk)  # fmt: skip
    worked = _ticket(first.ticket_number)
    worked.assignee = agent
    db.session.commit()
    opener_id = "<opener@customer.test>"
    items = [
        # Passed on to the manager, as a single message would be.
        (mail(subject=f"Re: [#{worked.number}] Printer", body="Still burning."), None),
        # A stranger naming the number: review, not the ticket.
        (mail("mallory@elsewhere.test", f"Re: [#{worked.number}] Printer"), None),
        # A new ticket, and a reply to it later in the same batch (by its Message-ID).
        (mail("bob@customer.test", "Scanner jammed", message_id=opener_id), None),
        (mail("carol@customer.test", "Re: Scanner jammed", in_reply_to=opener_id), None),
        # Citing a Message-ID nobody knows: a new ticket.
        (mail("dan@customer.test", "Re: something", in_reply_to="<nobody@x.test>"), None),
    ]
    results = file_batch(items, source=MailSource.IMPORT, mailbox=desk)
    assert [r.outcome for r in results] == [
        MailOutcome.APPENDED,
        MailOutcome.REVIEW,
        MailOutcome.CREATED,
        MailOutcome.APPENDED,
        MailOutcome.CREATED,
    ]
    assert results[0].ticket_number == worked.number
    assert results[1].ticket_number is None
    assert results[3].ticket_number == results[2].ticket_number
    copies = db.session.scalars(select(OutboxMessage).where(OutboxMessage.ticket_id == worked.id))
    assert [c.recipients["to"] for c in copies] == [[agent.email.lower()]]
    # Every filed message's row names its entry, and the entry is the message's.
    for result in results:
        row = db.session.get(InboundMail, result.inbound_id)
        assert row is not None
        if result.outcome in (MailOutcome.CREATED, MailOutcome.APPENDED):
            entry = db.session.get(StreamEntry, row.entry_id)
            assert entry is not None and entry.ticket_id == row.ticket_id
            assert entry.data["from"] == row.from_address


def test_a_commit_inside_a_deferred_block_carries_its_audit_rows(ctx: None) -> None:
    """Rows are never left behind a commit: the session writes them before committing."""
    with audit.deferred():
        audit.record_now(Actor.system("Test"), "test.one", "thing", 1)
        audit.record(Actor.system("Test"), "test.two", "thing", 2)
        db.session.commit()
        db.session.rollback()
    assert {row.action for row in db.session.scalars(select(AuditLog))} == {
        "test.one",
        "test.two",
    }
