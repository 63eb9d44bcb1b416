"""Which ticket a received message belongs to, and whether it may be put there.

Order (as the issue and the common help desks have it): the ticket number in the subject
(``[#T-104233]``, whatever ``Re:``/``AW:``/``Fwd:``/``WG:``/``SV:`` and spacing surround
it), then ``In-Reply-To``/``References`` against the Message-IDs we know, then nothing
(a new ticket).

Decisions, where the well-known desks guess and we do not:

- **A subject number is a claim, not proof.** Anyone can type ``[#T-104233]``. It is
  honoured only when the sender is a participant of that ticket: its contact or
  submitter address, one of its recipients (To/Cc/Bcc), an active staff user, or a contact
  of the ticket's account who sees all of the account's tickets. Otherwise the message
  goes to review (``suspected_ticket``) and an agent decides.
- **A header match is proof.** Message-IDs of our outgoing mail are random, and those of
  mails filed on a ticket reached only the people on that thread: a reply that cites one
  comes from someone the thread was shown to (a Cc'd customer, a colleague the customer
  forwarded it to), so it is threaded whoever sent it. When a subject number and the
  headers agree, the headers vouch for the sender too.
- **Where Message-IDs are looked up:** ``InboundMail`` (its unique ``dedupe_key`` is
  ``"mid:" + Message-ID``, and ``ticket_id`` says where the mail was filed) and
  ``OutboxMessage.message_id`` (unique). Both are indexed, unlike the JSON ``data`` of
  stream entries, which holds the same ids for display; every entry with a Message-ID has
  one of the two rows behind it, so nothing is missed by not scanning entries.
- A number that names no ticket (another system's tag) is ignored and the headers decide.

Nothing here writes; ``ingest`` acts on the ``Threading`` it gets back.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Protocol

from flask import current_app
from sqlalchemy import select

from app.extensions import db
from app.models.inbound import InboundMail
from app.models.mail import OutboxMessage
from app.models.people import STAFF_ROLES, Contact, User, UserRole
from app.models.tickets import Ticket, TicketRecipient

# "Re", "AW" (German), "Fwd"/"Fw", "WG" (German forward), "SV"/"VS" (Nordic), "Antw" (Dutch),
# "TR" (French forward), "RIF"/"R" (Italian), "Odp" (Polish), "YNT" (Turkish), "Ref"/"Réf",
# each optionally counted ("Re[2]:") and with a full-width colon from Asian clients.
_PREFIX = re.compile(
    r"^\s*(?:(?:re|aw|fwd?|wg|sv|vs|antw|antwort|tr|rif|r|odp|ynt|ref|réf|доб|отв)"
    r"\s*(?:\[\d+\]|\(\d+\))?\s*[:：]\s*)+",
    re.IGNORECASE,
)


MAX_KEY = 300  # InboundMail.dedupe_key


def key_for_message_id(message_id: str) -> str:
    """The dedupe key of a Message-ID: ingest stores it, ``ticket_by_headers`` looks it up."""
    key = f"mid:{message_id}"
    if len(key) > MAX_KEY:
        key = "midh:" + hashlib.sha256(message_id.encode("utf-8", "replace")).hexdigest()
    return key


def _number_pattern() -> re.Pattern[str]:
    prefix = re.escape(current_app.config["TICKET_PREFIX"])
    return re.compile(rf"\[\s*#?\s*({prefix})\s*-?\s*(\d{{6,12}})\s*\]", re.IGNORECASE)


def subject_numbers(subject: str) -> list[str]:
    """Ticket numbers tagged in a subject, leftmost first, in the stored spelling."""
    prefix = current_app.config["TICKET_PREFIX"]
    found: list[str] = []
    for match in _number_pattern().finditer(subject or ""):
        number = f"{prefix}-{match.group(2)}"
        if number not in found:
            found.append(number)
    return found


def normalise_subject(subject: str) -> str:
    """The subject as the ticket shows it: no stacked reply prefixes or ticket tags.

    ``"Re: AW: [#T-104233] Re: Drucker"`` becomes ``"Drucker"``.
    """
    text = " ".join((subject or "").split())
    pattern = _number_pattern()
    previous = None
    while previous != text:
        previous = text
        text = pattern.sub(" ", text)
        text = _PREFIX.sub("", text)
        text = " ".join(text.split())
    return text


@dataclass(frozen=True)
class Threading:
    """Where a message goes.

    ``ticket`` set: append there. ``suspected`` set (ticket None): review, the sender named
    a ticket they are not a participant of. Neither: a new ticket.
    """

    ticket: Ticket | None
    via: str | None  # "subject" or "headers"
    suspected: Ticket | None = None

    @property
    def needs_review(self) -> bool:
        return self.suspected is not None


def referenced_ids(in_reply_to: Sequence[str], references: Sequence[str]) -> list[str]:
    """Message-IDs cited, the most direct first: In-Reply-To, then References newest first."""
    out: list[str] = []
    for item in [*in_reply_to, *reversed(references)]:
        if item and item not in out:
            out.append(item)
    return out[:50]  # a reference chain longer than this adds nothing but query size


def ticket_by_headers(ids: Sequence[str]) -> Ticket | None:
    """The ticket of the most direct cited message we know (received or sent)."""
    if not ids:
        return None
    rank = {mid: i for i, mid in enumerate(ids)}
    key_rank = {key_for_message_id(mid): i for i, mid in enumerate(ids)}
    found: list[tuple[int, int]] = []
    rows = db.session.execute(
        select(InboundMail.dedupe_key, InboundMail.ticket_id).where(
            InboundMail.dedupe_key.in_(list(key_rank)),
            InboundMail.ticket_id.is_not(None),
        )
    )
    for key, ticket_id in rows:
        found.append((key_rank[key], ticket_id))
    rows = db.session.execute(
        select(OutboxMessage.message_id, OutboxMessage.ticket_id).where(
            OutboxMessage.message_id.in_([f"<{m}>" for m in ids] + list(ids)),
            OutboxMessage.ticket_id.is_not(None),
        )
    )
    for mid, ticket_id in rows:
        found.append((rank.get(mid.strip("<>"), len(ids)), ticket_id))
    if not found:
        return None
    found.sort()
    return db.session.get(Ticket, found[0][1])


def ticket_by_number(number: str) -> Ticket | None:
    return db.session.execute(select(Ticket).where(Ticket.number == number)).scalar_one_or_none()


def staff_user(address: str | None) -> User | None:
    """The active staff user with this address (an agent writing by mail), if any."""
    if not address:
        return None
    return db.session.execute(
        select(User)
        .join(UserRole, UserRole.user_id == User.id)
        .where(
            User.email == address,
            User.active.is_(True),
            UserRole.role.in_([r.value for r in STAFF_ROLES]),
        )
        .limit(1)
    ).scalar_one_or_none()


def is_participant(ticket: Ticket, address: str | None) -> bool:
    """Whether ``address`` may write on ``ticket`` by naming its number (see the module)."""
    if not address:
        return False
    address = address.lower()
    contact = ticket.contact
    if contact is not None and contact.email.lower() == address:
        return True
    if (ticket.submitter_email or "").lower() == address:
        return True
    listed = db.session.execute(
        select(TicketRecipient.id).where(
            TicketRecipient.ticket_id == ticket.id, TicketRecipient.address == address
        )
    ).first()
    if listed is not None:
        return True
    if staff_user(address) is not None:
        return True
    if ticket.account_id is not None:
        account_wide = db.session.execute(
            select(Contact.id).where(
                Contact.account_id == ticket.account_id,
                Contact.email == address,
                Contact.sees_account_tickets.is_(True),
            )
        ).first()
        if account_wide is not None:
            return True
    return False


class TicketLookup(Protocol):
    """Answers ``ticket_by_headers``/``ticket_by_number`` would give, from elsewhere.

    Mail ingestion answers them for a whole batch from a few queries made up front
    (``ingest.BatchTickets``); the rules below stay the same.
    """

    def by_headers(self, ids: Sequence[str]) -> Ticket | None: ...

    def by_number(self, number: str) -> Ticket | None: ...


def find_thread(
    subject: str,
    sender: str | None,
    in_reply_to: Sequence[str] = (),
    references: Sequence[str] = (),
    *,
    numbers: Collection[str] | None = None,
    lookup: TicketLookup | None = None,
) -> Threading:
    """Decide where a message goes (see the module docstring for the rules)."""
    ids = referenced_ids(in_reply_to, references)
    by_headers = lookup.by_headers(ids) if lookup is not None else ticket_by_headers(ids)
    for number in numbers if numbers is not None else subject_numbers(subject):
        ticket = lookup.by_number(number) if lookup is not None else ticket_by_number(number)
        if ticket is None:
            continue  # another system's tag: let the headers decide
        if by_headers is not None and by_headers.id == ticket.id:
            return Threading(ticket, "headers")
        if is_participant(ticket, sender):
            return Threading(ticket, "subject")
        return Threading(None, None, suspected=ticket)
    if by_headers is not None:
        return Threading(by_headers, "headers")
    return Threading(None, None)
