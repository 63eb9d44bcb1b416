"""Decisions on held mail: review (unsafe threading), quarantine, and ignored robot mail.

Nothing is dropped silently, so every held message waits for a person: it can be run
through the pipeline again (``retry``, e.g. after a fix or once a throttle has passed),
filed on a ticket an agent chose (``file_on``), made a ticket of its own (``new_ticket``),
or discarded with a reason (``discard``). Each works from the original in the vault,
so the decision files exactly what arrived, attachments included.

Each decision sets ``decision``/``decided_by``/``decided_at`` and writes an audit row; like
the rest of the domain none of them commits (the view does). A message decided once is
not decided again (``AlreadyDecided``): two agents clicking at once file it once, because
the second finds the decision on the row it reloads under the first one's commit.
"""

from __future__ import annotations

from collections.abc import Callable

from flask_babel import gettext as _
from sqlalchemy import select, update

from app import audit
from app.actor import Actor
from app.errors import InvalidInput, NotFound
from app.extensions import db
from app.files.store import get_vault
from app.mail import ingest
from app.mail.ingest import Context, Filed
from app.mail.parsing import MailUnreadable, ParsedMail, parse_message
from app.models.inbound import InboundMail, MailDecision, MailOutcome, MailSource
from app.models.tickets import Ticket
from app.models.types import utcnow

HELD = (MailOutcome.REVIEW.value, MailOutcome.QUARANTINED.value, MailOutcome.IGNORED.value)
MAX_REASON = 2000


class AlreadyDecided(InvalidInput):
    """Someone already decided on this message (or it was never held)."""


def original_bytes(inbound: InboundMail) -> bytes:
    """The message exactly as it arrived, decrypted from the vault."""
    file = inbound.raw_file
    if file is None or file.erased_at is not None:
        raise NotFound(_("The original of this message is no longer kept."))
    with get_vault().open(file.blob_id) as reader:
        return reader.read()


def _check_open(inbound: InboundMail) -> None:
    """Take the message for this decision, or raise ``AlreadyDecided``.

    One conditional UPDATE, not a read then a write: it takes the row lock (PostgreSQL)
    or the write lock (SQLite) at once, so of two agents deciding at the same moment the
    second waits for the first's commit and then finds the row decided.
    """
    taken = db.session.execute(
        update(InboundMail)
        .where(
            InboundMail.id == inbound.id,
            InboundMail.decision.is_(None),
            InboundMail.decided_at.is_(None),
            InboundMail.outcome.in_(HELD),
        )
        .values(decided_at=utcnow())
        .execution_options(synchronize_session=False)
    ).rowcount
    db.session.expire(inbound)
    if taken != 1:
        raise AlreadyDecided(_("This message has already been dealt with."))


def _parsed(inbound: InboundMail) -> ParsedMail:
    try:
        return parse_message(original_bytes(inbound))
    except MailUnreadable:
        raise InvalidInput(
            _("This message cannot be read; it can only be discarded or kept.")
        ) from None


def _decide(
    inbound: InboundMail,
    actor: Actor,
    decision: MailDecision,
    action: str,
    filed: Filed | None = None,
    reason: str | None = None,
) -> None:
    inbound.decision = decision.value
    inbound.decision_reason = reason
    inbound.decided_by_id = actor.user_id
    inbound.decided_at = utcnow()
    ticket_id = None
    if filed is not None and filed.ticket_number:
        ticket_id = db.session.execute(
            select(Ticket.id).where(Ticket.number == filed.ticket_number)
        ).scalar_one_or_none()
    audit.record(
        actor,
        action,
        "inbound_mail",
        inbound.id,
        ticket_id=ticket_id,
        outcome=filed.outcome.value if filed else None,
        reason=reason,
    )


def _run(inbound: InboundMail, decide: Callable[[ParsedMail, Context], ingest.Result]) -> Filed:
    parsed = _parsed(inbound)
    context = Context.load(MailSource(inbound.source), inbound.mailbox)
    result = decide(parsed, context)
    return ingest.finish(inbound.id, parsed, result, raw_file_id=inbound.raw_file_id)


def retry(inbound: InboundMail, actor: Actor) -> Filed:
    """Run the pipeline again on the original (no sender throttle: a person asked)."""
    _check_open(inbound)
    try:
        parsed = parse_message(original_bytes(inbound))
    except MailUnreadable as error:
        result = ingest.Result(MailOutcome.QUARANTINED, f"unreadable: {error}")
        filed = ingest.finish(inbound.id, None, result, raw_file_id=inbound.raw_file_id)
    else:
        context = Context.load(MailSource(inbound.source), inbound.mailbox)
        result = ingest.attempt(
            lambda: ingest.route(parsed, context, inbound.id, throttle=False), str(inbound.id)
        )
        filed = ingest.finish(inbound.id, parsed, result, raw_file_id=inbound.raw_file_id)
    db.session.refresh(inbound)
    if filed.outcome.value in HELD:
        # Still held: the row stays open for another decision, but the retry is recorded.
        inbound.decided_at = None
        audit.record(actor, "mail.retry", "inbound_mail", inbound.id, outcome=filed.outcome.value)
        return filed
    _decide(inbound, actor, MailDecision.RETRIED, "mail.retry", filed)
    return filed


def file_on(inbound: InboundMail, ticket: Ticket, actor: Actor) -> Filed:
    """An agent says the message belongs on ``ticket`` (the customer-writes rule applies)."""
    _check_open(inbound)
    filed = _run(inbound, lambda parsed, context: ingest.file_customer(parsed, ticket, context))
    db.session.refresh(inbound)
    _decide(inbound, actor, MailDecision.ATTACHED, "mail.file_on", filed)
    return filed


def file_on_number(inbound: InboundMail, number: str, actor: Actor) -> Filed:
    """``file_on`` for the ticket number a person typed (review queue and mail log)."""
    from app.tickets.lookup import ticket_by_number

    cleaned = (number or "").strip()
    if not cleaned:
        raise InvalidInput(_("Enter the number of the ticket to file the message on."))
    return file_on(inbound, ticket_by_number(cleaned), actor)


def new_ticket(inbound: InboundMail, actor: Actor) -> Filed:
    """An agent makes the message a ticket of its own."""
    _check_open(inbound)
    filed = _run(inbound, lambda parsed, context: ingest.file_customer(parsed, None, context))
    db.session.refresh(inbound)
    _decide(inbound, actor, MailDecision.NEW_TICKET, "mail.new_ticket", filed)
    return filed


def discard(inbound: InboundMail, actor: Actor, reason: str) -> None:
    """Close the matter without filing; the reason is required and kept with the row."""
    cleaned = " ".join((reason or "").split())
    if not cleaned:
        raise InvalidInput(_("Say why the message is discarded."))
    _check_open(inbound)
    _decide(inbound, actor, MailDecision.DISCARDED, "mail.discard", reason=cleaned[:MAX_REASON])
