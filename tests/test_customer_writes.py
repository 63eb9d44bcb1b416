"""One rule for a customer writing on a ticket, whatever the channel."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from flask import Flask

from app.actor import Actor
from app.errors import InvalidInput
from app.extensions import db
from app.files.store import store_upload
from app.models import Role
from app.models.tickets import Channel, EntryKind, LinkKind, Status
from app.models.types import utcnow
from app.tickets import assign
from app.tickets.changes import linked_tickets
from app.tickets.customer_writes import customer_writes
from app.tickets.inbox import is_unread, mark_read
from tests import factories


@pytest.mark.parametrize(
    ("channel", "kind"),
    [(Channel.MAIL, EntryKind.MAIL_IN), (Channel.PORTAL, EntryKind.PORTAL_MESSAGE)],
)
def test_a_message_on_a_pending_ticket_reopens_it_and_reaches_the_manager(
    ctx: None, channel: Channel, kind: EntryKind
) -> None:
    agent = factories.staff_user(Role.AGENT)
    ticket = factories.ticket()
    assign(ticket, Actor.staff(agent), assignee=agent)
    ticket.status, ticket.in_inbox = Status.PENDING.value, False
    mark_read(ticket, agent)
    db.session.commit()
    writer = Actor.customer(name="Ann", email=ticket.contact.email)
    file = store_upload(io.BytesIO(b"log"), "log.txt", writer)
    result = customer_writes(
        ticket, writer, channel, body_text="Still broken.", files=[file], data={"mid": "<a@b>"}
    )
    db.session.commit()
    assert not result.new_ticket and result.ticket is ticket
    assert ticket.status == Status.OPEN.value and ticket.in_inbox
    assert result.entry.kind == kind.value and result.entry.data["mid"] == "<a@b>"
    assert file.entry is result.entry and file.ticket is ticket
    assert is_unread(ticket, agent)


def test_a_message_long_after_closing_opens_a_linked_ticket(ctx: None, app: Flask) -> None:
    ticket = factories.ticket(subject="Invoice 2025-11 wrong")
    ticket.status = Status.CLOSED.value
    ticket.closed_at = utcnow() - timedelta(days=app.config["REOPEN_DAYS"] + 1)
    db.session.commit()
    writer = Actor.customer(name="Ann", email=ticket.contact.email)
    result = customer_writes(ticket, writer, Channel.MAIL, body_text="Wrong again this month.")
    db.session.commit()
    assert result.new_ticket and result.ticket is not ticket
    follow_up = result.ticket
    assert ticket.status == Status.CLOSED.value  # history stays as it was
    assert follow_up.subject == "Invoice 2025-11 wrong" and follow_up.contact is ticket.contact
    assert follow_up.channel == Channel.MAIL.value and follow_up.in_inbox
    assert result.entry.kind == EntryKind.MAIL_IN.value
    ((link, other),) = linked_tickets(follow_up)
    assert other is ticket and link.kind == LinkKind.RELATED.value


def test_a_stranger_writing_on_an_old_ticket_gets_a_ticket_under_their_address(
    ctx: None, app: Flask
) -> None:
    """No contact known for the writer: the new ticket carries their address."""
    ticket = factories.ticket()
    ticket.contact = None
    ticket.submitter_email = "old@example.test"
    ticket.status = Status.RESOLVED.value
    ticket.resolved_at = utcnow() - timedelta(days=app.config["REOPEN_DAYS"] + 5)
    db.session.commit()
    writer = Actor.customer(name="Bea", email="bea@example.test")
    result = customer_writes(ticket, writer, Channel.MAIL, body_text="Hello?")
    assert result.new_ticket
    assert result.ticket.submitter_email == "bea@example.test"
    assert [r.address for r in result.ticket.recipients] == ["bea@example.test"]


def test_an_empty_message_is_refused(ctx: None) -> None:
    ticket = factories.ticket()
    with pytest.raises(InvalidInput):
        customer_writes(ticket, Actor.customer(email="a@b.test"), Channel.PORTAL, body_text="  ")
