"""Reading held mail for the two screens that decide on it.

* The agents' **review queue** (``/agent/mail/review``): messages whose threading was not
  safe (a ticket number from someone who is no participant of that ticket), waiting for
  an agent to attach them, make a ticket of them or discard them. Agents see only these:
  quarantine can hold anything (unparseable mail, throttled floods, attack payloads), so
  it is for admins.
* The admins' **mail log** (``/admin/mail``): everything held or set aside -- quarantined,
  ignored robot mail, review -- open or already decided, with the reason, filterable by
  outcome and state.

The decisions themselves are ``app.mail.held`` (they audit and set the decision); this
module only lists, finds and previews, and never writes.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from flask_babel import gettext as _
from sqlalchemy import Select, or_, select
from sqlalchemy.orm import joinedload

from app.errors import NotFound
from app.extensions import db
from app.mail.held import original_bytes
from app.mail.parsing import MailUnreadable, parse_message
from app.models.inbound import InboundMail, MailOutcome
from app.pagination import Page, paginate

PER_PAGE = 50
PREVIEW_CHARS = 4000

# What the admin log shows: every outcome that did not simply land on a ticket.
LOG_OUTCOMES = (MailOutcome.QUARANTINED, MailOutcome.IGNORED, MailOutcome.REVIEW)
# What may still be decided on: held mail, and ignored robot mail an admin wants filed.
DECIDABLE_OUTCOMES = (MailOutcome.REVIEW, MailOutcome.QUARANTINED, MailOutcome.IGNORED)


class HeldState(enum.StrEnum):
    """Open (nobody decided yet) or decided; the log's second filter."""

    OPEN = "open"
    DECIDED = "decided"
    ALL = "all"


@dataclass(frozen=True)
class LogFilter:
    """The mail log's filters as the URL carries them; unknown values fall back."""

    outcome: MailOutcome | None = None  # None: every outcome of LOG_OUTCOMES
    state: HeldState = HeldState.OPEN

    @classmethod
    def from_args(cls, args: Any) -> LogFilter:
        """Lenient like the other list filters: a made-up value shows the default list."""
        outcome: MailOutcome | None
        try:
            outcome = MailOutcome(args.get("outcome") or "")
        except ValueError:
            outcome = None
        if outcome not in LOG_OUTCOMES:
            outcome = None
        try:
            state = HeldState(args.get("state") or HeldState.OPEN.value)
        except ValueError:
            state = HeldState.OPEN
        return cls(outcome, state)

    def args(self) -> dict[str, str]:
        """The filter as query arguments (for the pager and the filter form)."""
        values = {"state": self.state.value}
        if self.outcome is not None:
            values["outcome"] = self.outcome.value
        return values


def _newest_first(stmt: Select[tuple[InboundMail]]) -> Select[tuple[InboundMail]]:
    return stmt.options(
        joinedload(InboundMail.decided_by), joinedload(InboundMail.ticket)
    ).order_by(InboundMail.received_at.desc(), InboundMail.id.desc())


def review_queue(page: int, per_page: int = PER_PAGE) -> Page[InboundMail]:
    """Open review mail, newest first: what agents still have to decide on."""
    stmt = select(InboundMail).where(
        InboundMail.outcome == MailOutcome.REVIEW.value, InboundMail.decision.is_(None)
    )
    return paginate(_newest_first(stmt), page, per_page)


def mail_log(filters: LogFilter, page: int, per_page: int = PER_PAGE) -> Page[InboundMail]:
    """The admin log: held, ignored and decided mail by outcome and state, newest first.

    A decision that filed the message gives it the filing's outcome (appended, created),
    so "decided" means any row with a decision, whatever its outcome now.
    """
    outcomes = [o.value for o in ([filters.outcome] if filters.outcome else LOG_OUTCOMES)]
    held = InboundMail.outcome.in_(outcomes)
    decided = InboundMail.decision.is_not(None)
    stmt = select(InboundMail)
    if filters.state is HeldState.OPEN:
        stmt = stmt.where(held, InboundMail.decision.is_(None))
    elif filters.state is HeldState.DECIDED:
        stmt = stmt.where(decided, held) if filters.outcome else stmt.where(decided)
    else:
        stmt = stmt.where(held) if filters.outcome else stmt.where(or_(held, decided))
    return paginate(_newest_first(stmt), page, per_page)


def review_mail(inbound_id: int) -> InboundMail:
    """A message held for review; anything else is absent for agents.

    A quarantined message's id typed into an agent's URL must not show it: to an agent it
    does not exist (404, not 403, so ids do not tell what is in quarantine). Once decided,
    the pipeline gives the row the outcome of the filing (appended, created), so it has
    left the queue too; a discarded one keeps ``review`` and shows its decision.
    """
    inbound = db.session.get(InboundMail, inbound_id)
    if inbound is None or inbound.outcome != MailOutcome.REVIEW.value:
        raise NotFound(_("There is no such message in the review queue."))
    return inbound


def logged_mail(inbound_id: int) -> InboundMail:
    """Any received message, for admins (the log links filed ones to their ticket too)."""
    inbound = db.session.get(InboundMail, inbound_id)
    if inbound is None:
        raise NotFound(_("There is no such message."))
    return inbound


def decidable(inbound: InboundMail) -> bool:
    """Not decided yet, and held or set aside (a filed or duplicate message is done)."""
    return inbound.decision is None and inbound.outcome in {o.value for o in DECIDABLE_OUTCOMES}


@dataclass(frozen=True)
class Preview:
    """What a person deciding sees of the message: its text, never its HTML."""

    text: str
    truncated: bool
    unreadable: str | None  # why there is no text (unparseable, raw file gone)


def preview(inbound: InboundMail) -> Preview:
    """The message's plain text, cut to a screenful.

    Text only, on purpose: held mail is exactly the mail nobody vouched for (a stranger
    quoting a ticket number, a message that broke the parser), so its HTML is not
    rendered even sanitised; the page escapes the text like any other.
    """
    if inbound.raw_file_id is None:
        return Preview("", False, _("The original message is no longer stored."))
    try:
        parsed = parse_message(original_bytes(inbound))
    except NotFound as gone:
        return Preview("", False, gone.message)
    except MailUnreadable as error:
        return Preview("", False, _("The message cannot be read: %(why)s", why=str(error)))
    text = parsed.text.strip()
    return Preview(text[:PREVIEW_CHARS], len(text) > PREVIEW_CHARS, None)


def details_of(inbound: InboundMail) -> dict[str, Any]:
    """The row's details JSON as a dict (older or hand-made rows may have none)."""
    return inbound.details if isinstance(inbound.details, dict) else {}
