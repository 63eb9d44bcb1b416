"""Data-subject requests: opening one, the legal deadline, verification, status, action log.

Decisions (also in the README, "Data-subject requests"):

- The deadline is 30 days from receipt (GDPR Art. 12(3) says "one month"; 30 days is the
  stricter reading for every month). It can be extended once, by one or two further months
  (counted as 30 days each), with a recorded reason, while the request is open.
- Every change is a ``GdprAction`` row (who, when, what) and an audit row, in the caller's
  transaction.
- A portal user has at most one open request per type: asking again shows the open one.
  A partial unique index enforces it, so two submits racing (a double click) still give one
  record; the loser's savepoint is rolled back and it answers with the winner's request.
- Re-authentication in the portal is the password only. A customer who signed in by emailed
  link and has no password sets one first (the portal's reset page); the form says so.
- Only access requests flag their ticket ``data_subject_request`` (the ticket column's check
  knows no other kind yet); other kinds still link to their ticket from the record.
- Closing a request (done, refused) needs an outcome note; a closed request is final.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app import audit
from app.actor import Actor
from app.errors import Conflict, Forbidden, InvalidInput
from app.extensions import db
from app.models.gdpr import (
    OPEN_STATUSES,
    GdprAction,
    GdprRequest,
    GdprRequestKind,
    GdprRequestStatus,
)
from app.models.people import Contact, User
from app.models.tickets import Channel, Ticket
from app.models.types import utcnow

DEADLINE_DAYS = 30
EXTENSION_MONTH_DAYS = 30
MAX_EXTENSION_MONTHS = 2
SOON_DAYS = 7
OPEN_VALUES = tuple(status.value for status in OPEN_STATUSES)


def deadline_for(received_at: datetime) -> datetime:
    """The legal deadline of a request received at ``received_at``."""
    return received_at + timedelta(days=DEADLINE_DAYS)


def urgency(req: GdprRequest, now: datetime | None = None) -> str:
    """``closed``, ``overdue``, ``soon`` (due within 7 days) or ``fine``: the register's colour."""
    if not req.is_open:
        return "closed"
    now = now or utcnow()
    if req.deadline_at <= now:
        return "overdue"
    if req.deadline_at <= now + timedelta(days=SOON_DAYS):
        return "soon"
    return "fine"


def log(
    actor: Actor, req: GdprRequest, action: str, note: str | None = None, **details: object
) -> None:
    """One entry in the request's action log, and its audit row, in the same transaction."""
    db.session.add(
        GdprAction(
            request=req,
            at=utcnow(),
            actor_id=actor.user_id,
            actor_label=actor.label,
            action=action,
            note=note,
        )
    )
    db.session.flush()
    audit.record(
        actor, f"gdpr.{action}", "gdpr_request", req.id, ticket_id=req.ticket_id, **details
    )


def open_request_for(user: User, kind: GdprRequestKind) -> GdprRequest | None:
    """The portal user's open request of this type, if any."""
    return db.session.scalar(
        select(GdprRequest).where(
            GdprRequest.subject_user_id == user.id,
            GdprRequest.kind == kind.value,
            GdprRequest.status.in_(OPEN_VALUES),
        )
    )


def _kind(value: str) -> GdprRequestKind:
    try:
        return GdprRequestKind(value)
    except ValueError:
        raise InvalidInput(_("Please choose what the request asks for.")) from None


def _new(
    actor: Actor,
    kind: GdprRequestKind,
    *,
    email: str,
    name: str | None,
    channel: str,
    contact: Contact | None = None,
    user: User | None = None,
    ticket: Ticket | None = None,
    received_at: datetime | None = None,
) -> GdprRequest:
    received = received_at or utcnow()
    req = GdprRequest(
        kind=kind.value,
        status=GdprRequestStatus.RECEIVED.value,
        subject_email=email,
        subject_name=name,
        subject_contact=contact,
        subject_user=user,
        ticket=ticket,
        channel=channel,
        received_at=received,
        deadline_at=deadline_for(received),
    )
    db.session.add(req)
    db.session.flush()
    return req


def portal_request(
    user: User, kind_value: str, password: str, *, client_address: str | None
) -> tuple[GdprRequest, bool]:
    """A signed-in customer's request after re-entering the password: (request, created).

    An open request of the same type is returned instead of a second one, also when two
    submits race (the partial unique index decides). A new request gets its ticket as the
    portal's data-copy request always did.
    """
    kind = _kind(kind_value)
    if not user.password_hash:
        raise Forbidden(
            _("Please set a password first (Forgot your password?), then send the request.")
        )
    if not user.check_password(password):
        raise Forbidden(_("The password is not right."))
    contact: Contact | None = user.contact
    if contact is None:
        raise Forbidden(_("Your account is not linked to a customer record."))
    existing = open_request_for(user, kind)
    if existing is not None:
        return existing, False
    actor = Actor.customer(user, client_address=client_address)
    try:
        with db.session.begin_nested():
            req = _new(
                actor, kind, email=user.email, name=user.name, channel="portal",
                contact=contact, user=user,
            )  # fmt: skip
    except IntegrityError:
        existing = open_request_for(user, kind)
        if existing is None:
            raise
        return existing, False
    req.ticket = _portal_ticket(user, contact, kind, actor, client_address)
    req.verification = _("Password re-entered in the portal")
    req.verified_at = utcnow()
    req.verified_by_label = actor.label
    log(actor, req, "received", kind=kind.value, channel="portal")
    log(actor, req, "verified", req.verification, method="password")
    return req, True


def _portal_ticket(
    user: User, contact: Contact, kind: GdprRequestKind, actor: Actor, client_address: str | None
) -> Ticket:
    # Late import: app.accounts.profile imports the ticket domain, which is heavy.
    from app.accounts.profile import request_data_copy
    from app.tickets import create_ticket

    if kind is GdprRequestKind.ACCESS:
        return request_data_copy(user, client_address=client_address)
    return create_ticket(
        Channel.PORTAL,
        actor,
        subject=f"Data-subject request: {kind.value} (GDPR)",
        body_text=f"{user.name} <{user.email}> asks for {kind.value} of their personal data.",
        contact=contact,
        tags=["gdpr"],
    )


def from_ticket(actor: Actor, ticket: Ticket, kind_value: str, note: str = "") -> GdprRequest:
    """Turn a ticket (a request that arrived by mail) into a request record.

    The subject is the ticket's contact, or its submitter's address; received is when the
    ticket was opened, since the deadline runs from when the company received the request.
    A ticket that already has an open request of this type returns that one.
    """
    kind = _kind(kind_value)
    existing = db.session.scalar(
        select(GdprRequest).where(
            GdprRequest.ticket_id == ticket.id,
            GdprRequest.kind == kind.value,
            GdprRequest.status.in_(OPEN_VALUES),
        )
    )
    if existing is not None:
        return existing
    contact = ticket.contact
    email = contact.email if contact is not None else ticket.submitter_email
    if not email:
        raise InvalidInput(_("This ticket has no customer address to make a request for."))
    name = contact.name if contact is not None else ticket.submitter_name
    user = contact.user if contact is not None else None
    req = _new(
        actor, kind, email=email, name=name, channel=ticket.channel, contact=contact,
        ticket=ticket, received_at=ticket.created_at, user=None,
    )  # fmt: skip
    del user  # a mailed request is not the portal user's own: no open-request limit applies
    log(actor, req, "received", note.strip() or None, kind=kind.value, ticket=ticket.number)
    return req


def _require_open(req: GdprRequest) -> None:
    if not req.is_open:
        raise Conflict(_("This request is closed."))


def record_verification(actor: Actor, req: GdprRequest, how: str) -> None:
    """Write down how the subject's identity was checked, and by whom."""
    _require_open(req)
    how = how.strip()
    if not how:
        raise InvalidInput(_("Please say how the identity was verified."))
    req.verification = how[:2000]
    req.verified_at = utcnow()
    req.verified_by_id = actor.user_id
    req.verified_by_label = actor.label
    log(actor, req, "verified", req.verification)


def extend(actor: Actor, req: GdprRequest, months: int, reason: str) -> None:
    """Extend the deadline once, by one or two months, with a reason (Art. 12(3))."""
    _require_open(req)
    if req.extended_at is not None:
        raise Conflict(_("The deadline was extended already; it can be extended only once."))
    if months not in range(1, MAX_EXTENSION_MONTHS + 1):
        raise InvalidInput(_("The deadline can be extended by one or two months."))
    reason = reason.strip()
    if not reason:
        raise InvalidInput(_("Please give the reason for the extension."))
    old = req.deadline_at
    req.deadline_at = old + timedelta(days=EXTENSION_MONTH_DAYS * months)
    req.extended_at = utcnow()
    req.extension_reason = reason[:2000]
    log(
        actor, req, "extended", req.extension_reason, months=months,
        deadline=req.deadline_at.isoformat(), previous=old.isoformat(),
    )  # fmt: skip


def set_status(actor: Actor, req: GdprRequest, status_value: str, note: str = "") -> None:
    """Move a request along; done and refused close it and need an outcome note."""
    _require_open(req)
    try:
        status = GdprRequestStatus(status_value)
    except ValueError:
        raise InvalidInput(_("Please choose a status.")) from None
    note = note.strip()
    if status not in OPEN_STATUSES:
        if not note:
            raise InvalidInput(_("Please write down the outcome before closing the request."))
        req.outcome_note = note[:4000]
        req.closed_at = utcnow()
    old = req.status
    req.status = status.value
    log(actor, req, "status", note or None, old=old, new=status.value)
