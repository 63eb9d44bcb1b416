"""SLA policies: which targets a ticket runs under, and the admin's edits of them.

A policy names a priority and, optionally, one account and/or one category; it sets a first
response target and a resolution target in business minutes (``app.sla.business_time``),
whether the resolution clock pauses while the ticket is Pending or Waiting on Third Party,
the "notify at once" flag the escalation reads, and the near-breach threshold.

Precedence (decided here, shown on the admin page): among the *active* policies of the
ticket's priority, the most specific one wins:

1. account and category both match,
2. the account matches (any category),
3. the category matches (any account),
4. the policy for the priority alone.

An account outranks a category because contracts are made with customers: a customer's
agreed "4 hours for High" must not be undercut by a category's general target. At most one
policy exists per (priority, account, category); a ticket no policy matches has no due
times. Every edit writes its audit row in the session; the view commits.

Editing a policy does not rewrite open tickets at once (on a large desk that would be a
long transaction in a web request): each ticket takes the new targets at its next change
(priority, assignee, category, status, reply).
"""

from __future__ import annotations

from dataclasses import dataclass

from flask_babel import gettext as _
from sqlalchemy import or_, select

from app import audit, batch_memo
from app.actor import Actor
from app.errors import Conflict, InvalidInput
from app.extensions import db
from app.models.people import Account
from app.models.sla import SlaPolicy
from app.models.tickets import Category, Priority, Ticket
from app.models.types import utcnow

NAME_LIMIT = 120
#: A target longer than a year of business minutes is a typing error.
MAX_MINUTES = 366 * 24 * 60
DEFAULT_WARN_PERCENT = 80


def specificity(policy: SlaPolicy) -> int:
    """3: account and category, 2: account, 1: category, 0: priority alone."""
    return (2 if policy.account_id is not None else 0) + (
        1 if policy.category_id is not None else 0
    )


def candidates(priority: str, account_id: int | None, category_id: int | None) -> list[SlaPolicy]:
    """Active policies that apply to these facts, most specific first (one query).

    Inside ``batch_memo.batch()`` (filing a batch of mail) the ids are asked once per set
    of facts and the objects come from the session's identity map.
    """

    def ids() -> tuple[int, ...]:
        rows = db.session.scalars(
            select(SlaPolicy).where(
                SlaPolicy.priority == priority,
                SlaPolicy.active.is_(True),
                or_(SlaPolicy.account_id.is_(None), SlaPolicy.account_id == account_id),
                or_(SlaPolicy.category_id.is_(None), SlaPolicy.category_id == category_id),
            )
        )
        return tuple(p.id for p in sorted(rows, key=lambda p: (-specificity(p), p.id)))

    found = batch_memo.remembered(("sla_candidates", priority, account_id, category_id), ids)
    return [policy for i in found if (policy := db.session.get(SlaPolicy, i)) is not None]


def policy_for(ticket: Ticket) -> SlaPolicy | None:
    """The policy the ticket runs under now (see the precedence above), or None."""
    found = candidates(ticket.priority, ticket.account_id, ticket.category_id)
    return found[0] if found else None


def notify_at_once(ticket: Ticket) -> bool:
    """Whether escalations of this ticket are told at once (the policy's flag).

    For ``app.sla.escalation``: the policy that set the ticket's due times, else the one
    that matches now; no policy: False (told at the start of the next working day).
    """
    policy = db.session.get(SlaPolicy, ticket.sla_policy_id) if ticket.sla_policy_id else None
    policy = policy or policy_for(ticket)
    return bool(policy is not None and policy.notify_at_once)


def list_policies() -> list[SlaPolicy]:
    """Every policy, by priority (urgent first), then from general to specific."""
    order = {p.value: i for i, p in enumerate(reversed(list(Priority)))}
    rows = list(db.session.scalars(select(SlaPolicy)))
    return sorted(rows, key=lambda p: (order[p.priority], specificity(p), p.name.lower()))


@dataclass(frozen=True)
class PolicyInput:
    """What the admin typed, already parsed to numbers (``None``: left blank)."""

    name: str
    priority: str
    account_id: int | None
    category_id: int | None
    first_response_minutes: int | None
    resolution_minutes: int | None
    pause_when_waiting: bool
    notify_at_once: bool
    warn_percent: int | None
    warn_minutes: int | None
    active: bool = True


def _minutes(value: int | None, what: str) -> int:
    if value is None or value < 0 or value > MAX_MINUTES:
        raise InvalidInput(
            _("%(what)s: enter business minutes between 0 and %(max)s.", what=what, max=MAX_MINUTES)
        )
    return value


def _clean(data: PolicyInput, policy: SlaPolicy | None) -> dict[str, object]:
    name = " ".join(data.name.split())
    if not name or len(name) > NAME_LIMIT:
        raise InvalidInput(_("A policy needs a name (up to 120 characters)."))
    if data.priority not in {p.value for p in Priority}:
        raise InvalidInput(_("Choose a priority."))
    if data.account_id is not None and db.session.get(Account, data.account_id) is None:
        raise InvalidInput(_("There is no such account."))
    if data.category_id is not None and db.session.get(Category, data.category_id) is None:
        raise InvalidInput(_("There is no such category."))
    first = _minutes(data.first_response_minutes, _("First response target"))
    resolution = _minutes(data.resolution_minutes, _("Resolution target"))
    if resolution < first:
        raise InvalidInput(_("The resolution target cannot be shorter than the first response."))
    percent = DEFAULT_WARN_PERCENT if data.warn_percent is None else data.warn_percent
    if not 1 <= percent <= 99:
        raise InvalidInput(_("The warning threshold is a percentage between 1 and 99."))
    if data.warn_minutes is not None:
        _minutes(data.warn_minutes, _("Warning before the target"))
    clash = db.session.scalar(
        select(SlaPolicy).where(
            SlaPolicy.priority == data.priority,
            SlaPolicy.account_id.is_(None)
            if data.account_id is None
            else SlaPolicy.account_id == data.account_id,
            SlaPolicy.category_id.is_(None)
            if data.category_id is None
            else SlaPolicy.category_id == data.category_id,
        )
    )
    if clash is not None and clash is not policy:
        raise Conflict(
            _(
                "The policy %(name)s covers the same priority, account and category.",
                name=clash.name,
            )
        )
    return {
        "name": name,
        "priority": data.priority,
        "account_id": data.account_id,
        "category_id": data.category_id,
        "first_response_minutes": first,
        "resolution_minutes": resolution,
        "pause_when_waiting": data.pause_when_waiting,
        "notify_at_once": data.notify_at_once,
        "warn_percent": percent,
        "warn_minutes": data.warn_minutes,
        "active": data.active,
    }


def save_policy(actor: Actor, policy: SlaPolicy | None, data: PolicyInput) -> SlaPolicy:
    """Create (``policy`` None) or change a policy; refuses duplicates and bad numbers."""
    values = _clean(data, policy)
    created = policy is None
    before = None if policy is None else describe(policy)
    if policy is None:
        policy = SlaPolicy()
        db.session.add(policy)
    for key, value in values.items():
        setattr(policy, key, value)
    if not created:
        policy.updated_at = utcnow()
    db.session.flush()
    after = describe(policy)
    if created:
        audit.record(actor, "sla_policy.created", "sla_policy", policy.id, **after)
    elif after != before:
        audit.record(
            actor, "sla_policy.changed", "sla_policy", policy.id, before=before, after=after
        )
    return policy


def delete_policy(actor: Actor, policy: SlaPolicy) -> None:
    """Remove a policy; tickets under it fall to the next match at their next change."""
    audit.record(actor, "sla_policy.deleted", "sla_policy", policy.id, **describe(policy))
    db.session.delete(policy)


def describe(policy: SlaPolicy) -> dict[str, object]:
    """The policy as the audit log keeps it."""
    return {
        "name": policy.name,
        "priority": policy.priority,
        "account_id": policy.account_id,
        "category_id": policy.category_id,
        "first_response_minutes": policy.first_response_minutes,
        "resolution_minutes": policy.resolution_minutes,
        "pause_when_waiting": policy.pause_when_waiting,
        "notify_at_once": policy.notify_at_once,
        "warn_percent": policy.warn_percent,
        "warn_minutes": policy.warn_minutes,
        "active": policy.active,
    }


def choices() -> tuple[list[Account], list[Category]]:
    """Accounts and categories the form offers."""
    accounts = list(db.session.scalars(select(Account).order_by(Account.name)))
    categories = list(db.session.scalars(select(Category).order_by(Category.name)))
    return accounts, categories


__all__ = [
    "PolicyInput",
    "candidates",
    "delete_policy",
    "list_policies",
    "notify_at_once",
    "policy_for",
    "save_policy",
]
