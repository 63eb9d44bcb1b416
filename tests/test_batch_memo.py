"""Answers kept for a batch of mail must be the answers each ticket would get alone.

Filing a batch asks which SLA policy applies and whether an assignment rule takes the
ticket once per set of facts (``app.batch_memo``). Tickets of a batch with different
accounts must still run under their own policies, and outside a batch an admin's edit
is seen by the very next ticket.
"""

from __future__ import annotations

from sqlalchemy import select

from app import batch_memo
from app.extensions import db
from app.mail.ingest import file_batch
from app.models.inbound import Mailbox, MailOutcome, MailSource
from app.models.people import Account, Contact
from app.models.sla import SlaPolicy
from app.models.tickets import Priority, Ticket
from app.sla import policies
from tests.test_ingest_perf import desk  # noqa: F401 -- the fixture
from tests.test_mail_ingest import mail


def _policy(name: str, account: Account | None = None) -> SlaPolicy:
    policy = SlaPolicy(
        name=name,
        priority=Priority.NORMAL.value,
        account_id=account.id if account else None,
        first_response_minutes=60,
        resolution_minutes=600,
    )
    db.session.add(policy)
    return policy


def test_each_ticket_of_a_batch_runs_under_its_own_policy(desk: Mailbox) -> None:  # noqa: F811
    gold = Account(name="Gold Kunde AG")
    db.session.add(gold)
    db.session.flush()
    db.session.add(Contact(email="vip@gold.test", name="Vera", account_id=gold.id))
    general, special = _policy("Everyone"), _policy("Gold", gold)
    db.session.commit()
    items = [
        (mail("someone@else.test", "Printer one"), None),
        (mail("vip@gold.test", "Printer two"), None),
        (mail("other@else.test", "Printer three"), None),
        (mail("vip@gold.test", "Printer four"), None),
    ]
    results = file_batch(items, source=MailSource.IMPORT, mailbox=desk)
    assert [r.outcome for r in results] == [MailOutcome.CREATED] * 4
    by_subject = {
        t.subject: t.sla_policy_id for t in db.session.scalars(select(Ticket))
    }
    assert by_subject == {
        "Printer one": general.id,
        "Printer two": special.id,
        "Printer three": general.id,
        "Printer four": special.id,
    }


def test_outside_a_batch_an_edit_is_seen_at_once(desk: Mailbox) -> None:  # noqa: F811
    first = _policy("Everyone")
    db.session.commit()
    assert [p.id for p in policies.candidates(Priority.NORMAL.value, None, None)] == [first.id]
    first.active = False
    db.session.commit()
    assert policies.candidates(Priority.NORMAL.value, None, None) == []


def test_inside_a_batch_the_question_is_asked_once() -> None:
    asked: list[int] = []

    def compute() -> int:
        asked.append(1)
        return len(asked)

    with batch_memo.batch():
        assert batch_memo.remembered("k", compute) == 1
        assert batch_memo.remembered("k", compute) == 1
        with batch_memo.batch():  # nested: same memo
            assert batch_memo.remembered("k", compute) == 1
        assert batch_memo.remembered("other", compute) == 2
    assert batch_memo.remembered("k", compute) == 3  # the batch is over
