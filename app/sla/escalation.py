"""Escalation: tell someone, once per level, about tickets whose SLA target passes unmet.

Two halves, both run by ``app.jobs.sla`` (a periodic sweep, then a delivery job):

``sweep(now)`` *finds* what to escalate and writes one ``Escalation`` row per ticket,
target and level. It reads only what is due: an index range on each due column over the
tickets whose clock runs (partial indexes ``ix_ticket_sla_*_open``), and the level-1 rows
whose ``next_level_at`` passed. Rows are inserted with "on conflict do nothing" against the
unique (ticket, target, level): that is the idempotence and the safety with several
workers (two sweeps at once insert each row once), and a missed run catches up because
the condition is "due and no row yet", not "became due since the last run". The sweep
writes rows only (bulk, Core); the notices are queued in them with their ``notify_at``.

``deliver(escalation_id, now)`` *tells*, when ``notify_at`` has come: each row is claimed
by a conditional UPDATE (pending -> sent) in the transaction that writes the in-app
notification, the mail from the ``escalation`` system template (outbox, sent by the
relay), the internal system entry on the ticket and the audit row (system actor). A
second worker's claim of the same row finds it taken and does nothing.

Decisions:

- **Targets**: first response (due ``first_response_due_at``, met by
  ``first_responded_at``, which a public reply sets) and resolution (due
  ``resolution_due_at``, met by Resolved/Closed). Neither escalates on a solved ticket.
  The due columns are the SLA policies' business; a paused clock (Pending) is whatever
  they write there.
- **Levels**: 0 warns the assignee ``SLA_ESCALATION_WARNING_MINUTES`` before the due time
  (unassigned: no warning; a warning that cannot reach the assignee within their working
  time before the due time is recorded as skipped); 1 tells of the breach; 2 goes one level
  up if the target is still unmet ``SLA_ESCALATION_LEVEL2_MINUTES`` working minutes (of
  the level-1 recipient's calendar) after level 1 was told. 0 turns a level off.
- **Who**: level 1 goes to the assignee's supervisor (``User.supervisor_id``); if there is
  none, or the ticket is unassigned, to a supervisor of the ticket's team (the one whose
  working time comes first, so the one on duty); else to ``SLA_ESCALATION_ADDRESS``; else
  nobody: the row is ``unrouted``, said on the ticket and in the audit log, so the gap
  shows. Level 2 goes to the level-1 person's supervisor, else the address (when level 1
  went to a person), else there is no level 2. Inactive people are skipped.
- **When**: at the recipient's next working moment (``next_working_moment`` of
  ``calendar_for_user``; the address follows the company calendar): a breach at 02:00 on a
  Sunday is told on Monday at the start of the supervisor's day. Priorities in
  ``SLA_NOTIFY_AT_ONCE_PRIORITIES``, and tickets whose SLA policy is marked "notify at
  once" (``app.sla.policies``), are told at once; the priorities of the setting also count
  their level 2 in wall-clock minutes.
- **Changed meanwhile**: a notice whose target was met (answered, solved) or whose due
  time moved into the future before it went out is deleted unsent: it leaves no trace and
  does not use up its level, so a later breach of the new due time is told.
- **How**: in-app and mail as the recipient chose for the notification kind
  ``sla_escalation`` (default both); the mail in the recipient's language, from the
  default sender identity (no identity: in-app only). The address gets the mail only.
- Once per level means once: a ticket reopened after its resolution was escalated is not
  escalated again at the levels already told.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask import current_app
from flask_babel import force_locale
from flask_babel import gettext as _
from sqlalchemy import select, text, update

from app import audit
from app.actor import Actor
from app.extensions import db
from app.mail import system_mail
from app.models.mail import OutboxMessage, OutboxRecipient
from app.models.notifications import Notification, NotificationKind
from app.models.people import Role, User, UserRole
from app.models.sla import (
    FIRST_RESPONSE_OPEN_SQL,
    TICKET_OPEN_SQL,
    Escalation,
    EscalationStatus,
    EscalationTarget,
    SlaPolicy,
)
from app.models.tickets import EntryKind, Priority, RecipientKind, Ticket
from app.models.types import utcnow
from app.notifications.preferences import choices_for
from app.notifications.texts import sla_target
from app.sla.business_time import (
    ALWAYS,
    Calendar,
    NoWorkingTime,
    add_business_minutes,
    next_working_moment,
)
from app.sla.calendars import calendar_for_user, company_calendar
from app.tickets.stream import add_entry
from app.urls import public_url

log = logging.getLogger(__name__)

WARNING, SUPERVISOR, ABOVE = 0, 1, 2
NOTICE = "sla_escalation"  # StreamEntry.data["notice"] of the entries written here
SOLVED = ("resolved", "closed")
_CHUNK = 500  # ids per IN (...) list, well under every backend's parameter limit


@dataclass(frozen=True)
class Settings:
    warning: timedelta
    level2_minutes: int
    address: str | None
    at_once: frozenset[str]  # priorities told at once (setting SLA_NOTIFY_AT_ONCE_PRIORITIES)
    at_once_policies: frozenset[int] = frozenset()  # SLA policies marked "notify at once"


def settings() -> Settings:
    """The escalation settings of the running app (``app.config``)."""
    config = current_app.config
    raw = config.get("SLA_NOTIFY_AT_ONCE_PRIORITIES") or ""
    return Settings(
        warning=timedelta(minutes=max(0, int(config.get("SLA_ESCALATION_WARNING_MINUTES") or 0))),
        level2_minutes=max(0, int(config.get("SLA_ESCALATION_LEVEL2_MINUTES") or 0)),
        address=(config.get("SLA_ESCALATION_ADDRESS") or "").strip().lower() or None,
        at_once=frozenset(p.strip().lower() for p in raw.split(",") if p.strip()),
        at_once_policies=frozenset(
            db.session.scalars(select(SlaPolicy.id).where(SlaPolicy.notify_at_once.is_(True)))
        ),
    )


# --- who and when --------------------------------------------------------------------------


@dataclass(frozen=True)
class Person:
    id: int
    supervisor_id: int | None
    team_id: int | None
    is_supervisor: bool


@dataclass(frozen=True)
class Recipient:
    user_id: int | None = None
    address: str | None = None


@dataclass
class Directory:
    """Active staff and their calendars, loaded once per sweep (a few queries, not per ticket)."""

    settings: Settings
    now: datetime
    people: dict[int, Person] = field(default_factory=dict)
    team_supervisors: dict[int, list[int]] = field(default_factory=dict)
    _calendars: dict[int | None, Calendar] = field(default_factory=dict)
    _moments: dict[int | None, datetime] = field(default_factory=dict)

    @classmethod
    def load(cls, config: Settings, now: datetime) -> Directory:
        directory = cls(config, now)
        staff_roles = [r.value for r in Role if r is not Role.CUSTOMER]
        roles: dict[int, set[str]] = {}
        for user_id, role in db.session.execute(
            select(UserRole.user_id, UserRole.role).where(UserRole.role.in_(staff_roles))
        ):
            roles.setdefault(user_id, set()).add(role)
        for user_id, supervisor_id, team_id in db.session.execute(
            select(User.id, User.supervisor_id, User.team_id).where(
                User.active.is_(True), User.id.in_(list(roles))
            )
        ):
            person = Person(
                user_id, supervisor_id, team_id, Role.SUPERVISOR.value in roles[user_id]
            )
            directory.people[user_id] = person
            if person.is_supervisor and team_id is not None:
                directory.team_supervisors.setdefault(team_id, []).append(user_id)
        return directory

    def calendar(self, user_id: int | None) -> Calendar:
        """The person's calendar (``None``: the company's, for the configured address)."""
        if user_id not in self._calendars:
            user = db.session.get(User, user_id) if user_id is not None else None
            self._calendars[user_id] = (
                calendar_for_user(user) if user is not None else company_calendar()
            )
        return self._calendars[user_id]

    def working_from(self, user_id: int | None) -> datetime:
        """When the person (``None``: the company) next works, from ``now`` on."""
        if user_id not in self._moments:
            try:
                moment = next_working_moment(self.calendar(user_id), self.now)
            except NoWorkingTime:
                moment = self.now  # a notice must go out some time: no calendar, no wait
            self._moments[user_id] = moment
        return self._moments[user_id]

    def notify_at(self, recipient: Recipient, at_once: bool) -> datetime:
        if at_once:
            return self.now
        return self.working_from(recipient.user_id)

    def supervisor_of(self, user_id: int | None) -> int | None:
        person = self.people.get(user_id) if user_id is not None else None
        if person is None or person.supervisor_id not in self.people:
            return None
        return person.supervisor_id

    def level1(self, assignee_id: int | None, team_id: int | None) -> Recipient | None:
        """The assignee's supervisor, a supervisor of the team on duty first, the address."""
        boss = self.supervisor_of(assignee_id)
        if boss is not None:
            return Recipient(user_id=boss)
        candidates = [s for s in self.team_supervisors.get(team_id or -1, []) if s != assignee_id]
        if candidates:
            best = min(candidates, key=lambda s: (self.working_from(s), s))
            return Recipient(user_id=best)
        if self.settings.address:
            return Recipient(address=self.settings.address)
        return None

    def level2(self, first: Recipient) -> Recipient | None:
        """One level above the level-1 recipient: their supervisor, else the address."""
        if first.user_id is None:
            return None
        boss = self.supervisor_of(first.user_id)
        if boss is not None:
            return Recipient(user_id=boss)
        if self.settings.address:
            return Recipient(address=self.settings.address)
        return None


# --- finding (the sweep) ----------------------------------------------------------------------


@dataclass
class SweepResult:
    """What one sweep wrote: new rows per level, and the tickets escalated (level 1)."""

    created: dict[int, int] = field(default_factory=lambda: {WARNING: 0, SUPERVISOR: 0, ABOVE: 0})
    tickets_escalated: int = 0

    @property
    def total(self) -> int:
        return sum(self.created.values())


_DUE = {
    EscalationTarget.FIRST_RESPONSE: (Ticket.first_response_due_at, FIRST_RESPONSE_OPEN_SQL),
    EscalationTarget.RESOLUTION: (Ticket.resolution_due_at, TICKET_OPEN_SQL),
}


def _chunks(values: list[int]) -> Iterable[list[int]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start : start + _CHUNK]


def due_query(target: EscalationTarget, horizon: datetime) -> Any:
    """Tickets whose ``target`` is due by ``horizon`` and unmet: one range of a partial index.

    The condition is the index's own text (``app.models.sla``): SQLite uses a partial index
    only when the query repeats it.
    """
    column, condition = _DUE[target]
    return (
        select(
            Ticket.id,
            Ticket.priority,
            Ticket.assignee_id,
            Ticket.team_id,
            column,
            Ticket.sla_policy_id,
        )
        .where(text(condition), column <= horizon)
        .order_by(column)
    )


def _existing_levels(target: EscalationTarget, ticket_ids: list[int]) -> dict[int, set[int]]:
    found: dict[int, set[int]] = {}
    for chunk in _chunks(ticket_ids):
        for ticket_id, level in db.session.execute(
            select(Escalation.ticket_id, Escalation.level).where(
                Escalation.target == target.value, Escalation.ticket_id.in_(chunk)
            )
        ):
            found.setdefault(ticket_id, set()).add(level)
    return found


def _row(
    ticket_id: int,
    target: EscalationTarget,
    level: int,
    due_at: datetime,
    now: datetime,
    recipient: Recipient | None,
    notify_at: datetime,
    at_once: bool,
    status: EscalationStatus = EscalationStatus.PENDING,
) -> dict[str, Any]:
    return {
        "ticket_id": ticket_id,
        "target": target.value,
        "level": level,
        "due_at": due_at,
        "detected_at": now,
        "notify_at": notify_at,
        "at_once": at_once,
        "recipient_id": recipient.user_id if recipient else None,
        "recipient_address": recipient.address if recipient else None,
        "status": status.value,
    }


def _plan_target(target: EscalationTarget, directory: Directory) -> list[dict[str, Any]]:
    config, now = directory.settings, directory.now
    candidates = db.session.execute(due_query(target, now + config.warning)).all()
    if not candidates:
        return []
    existing = _existing_levels(target, [c[0] for c in candidates])
    rows: list[dict[str, Any]] = []
    for ticket_id, priority, assignee_id, team_id, due_at, policy_id in candidates:
        levels = existing.get(ticket_id, set())
        # Told at once: the priority is listed in the setting, or the ticket's SLA policy says so.
        at_once = priority in config.at_once or policy_id in config.at_once_policies
        if due_at <= now:
            if SUPERVISOR in levels:
                continue
            recipient = directory.level1(assignee_id, team_id)
            notify_at = directory.notify_at(recipient, at_once) if recipient else now
            rows.append(
                _row(ticket_id, target, SUPERVISOR, due_at, now, recipient, notify_at, at_once)
            )
        elif config.warning and not levels and assignee_id in directory.people:
            recipient = Recipient(user_id=assignee_id)
            notify_at = directory.notify_at(recipient, at_once)
            status = EscalationStatus.PENDING if notify_at < due_at else EscalationStatus.SKIPPED
            rows.append(
                _row(ticket_id, target, WARNING, due_at, now, recipient, notify_at, at_once, status)
            )
    return rows


def _plan_level2(directory: Directory) -> tuple[list[dict[str, Any]], list[int]]:
    """Level-1 rows whose further period passed and whose target is still unmet."""
    now = directory.now
    firsts = db.session.execute(
        select(
            Escalation.id,
            Escalation.ticket_id,
            Escalation.target,
            Escalation.due_at,
            Escalation.recipient_id,
            Escalation.recipient_address,
            Escalation.at_once,
            Ticket.status,
            Ticket.first_responded_at,
        )
        .join(Ticket, Ticket.id == Escalation.ticket_id)
        .where(Escalation.next_level_at <= now)
    ).all()
    rows: list[dict[str, Any]] = []
    done: list[int] = []
    for row in firsts:
        done.append(row.id)
        target = EscalationTarget(row.target)
        if row.status in SOLVED or (
            target is EscalationTarget.FIRST_RESPONSE and row.first_responded_at is not None
        ):
            continue
        up = directory.level2(Recipient(row.recipient_id, row.recipient_address))
        if up is None:
            continue
        notify_at = directory.notify_at(up, row.at_once)
        rows.append(_row(row.ticket_id, target, ABOVE, row.due_at, now, up, notify_at, row.at_once))
    return rows, done


def _insert_or_skip(rows: list[dict[str, Any]]) -> list[tuple[int, int]]:
    """Insert rows that do not exist yet; returns (ticket_id, level) of those inserted.

    "ON CONFLICT DO NOTHING" on the unique (ticket, target, level), in the dialect at hand
    (SQLite and PostgreSQL both have it): a row another sweep inserted first is skipped
    without an error and without aborting this transaction.
    """
    if not rows:
        return []
    if db.engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    table = Escalation.__table__
    statement = (
        dialect_insert(table)
        .on_conflict_do_nothing(index_elements=["ticket_id", "target", "level"])
        .returning(table.c.ticket_id, table.c.level)
    )
    # Core "insertmanyvalues": one compiled statement, sent in batches with RETURNING.
    connection = db.session.connection()
    inserted: list[tuple[int, int]] = []
    for start in range(0, len(rows), _CHUNK):
        result = connection.execute(statement, rows[start : start + _CHUNK])
        inserted.extend((t, lv) for t, lv in result)
    return inserted


def sweep(now: datetime | None = None) -> SweepResult:
    """Find every escalation that is due and record it (never commits, never tells)."""
    now = now or utcnow()
    config = settings()
    directory = Directory.load(config, now)
    result = SweepResult()
    rows: list[dict[str, Any]] = []
    for target in EscalationTarget:
        rows.extend(_plan_target(target, directory))
    level2, done = ([], []) if not config.level2_minutes else _plan_level2(directory)
    rows.extend(level2)
    inserted = _insert_or_skip(rows)
    for chunk in _chunks(done):
        db.session.execute(
            update(Escalation)
            .where(Escalation.id.in_(chunk), Escalation.level == SUPERVISOR)
            .values(next_level_at=None)
            .execution_options(synchronize_session=False)
        )
    escalated: set[int] = set()
    for ticket_id, level in inserted:
        result.created[level] += 1
        if level == SUPERVISOR:
            escalated.add(ticket_id)
    result.tickets_escalated = len(escalated)
    return result


# --- telling (the delivery) ----------------------------------------------------------------


def due_notices(now: datetime | None = None, limit: int = 1000) -> list[int]:
    """Ids of the notices whose time has come, oldest first."""
    now = now or utcnow()
    return list(
        db.session.scalars(
            select(Escalation.id)
            .where(Escalation.status == EscalationStatus.PENDING.value, Escalation.notify_at <= now)
            .order_by(Escalation.notify_at, Escalation.id)
            .limit(limit)
        )
    )


def _current_due(ticket: Ticket, target: EscalationTarget) -> datetime | None:
    if target is EscalationTarget.FIRST_RESPONSE:
        return ticket.first_response_due_at
    return ticket.resolution_due_at


def still_applies(escalation: Escalation, ticket: Ticket, now: datetime) -> bool:
    """Is the target still unmet, and (from level 1 on) still past its due time?"""
    target = EscalationTarget(escalation.target)
    if ticket.status in SOLVED:
        return False
    if target is EscalationTarget.FIRST_RESPONSE and ticket.first_responded_at is not None:
        return False
    due = _current_due(ticket, target)
    if due is None:
        return False
    return escalation.level == WARNING or due <= now


def deliver(escalation_id: int, now: datetime | None = None) -> str:
    """Tell the recipient of one due notice, once; returns what happened (never commits).

    The conditional UPDATE is the claim: it takes the row only while it is pending, so a
    second worker delivering the same row at the same time gets nothing to do.
    """
    now = now or utcnow()
    claimed = db.session.execute(
        update(Escalation)
        .where(
            Escalation.id == escalation_id,
            Escalation.status == EscalationStatus.PENDING.value,
        )
        .values(status=EscalationStatus.SENT.value, done_at=now)
        .execution_options(synchronize_session=False)
    )
    if not claimed.rowcount:  # type: ignore[attr-defined]
        return "taken"
    escalation = db.session.execute(
        select(Escalation)
        .where(Escalation.id == escalation_id)
        .execution_options(populate_existing=True)
    ).scalar_one()
    ticket = escalation.ticket
    if not still_applies(escalation, ticket, now):
        db.session.delete(escalation)
        return "cancelled"
    recipient = escalation.recipient
    if recipient is not None and not recipient.active:
        recipient = None
    address = escalation.recipient_address
    if recipient is None and address is None:
        escalation.status = EscalationStatus.UNROUTED.value
        _record(escalation, ticket, None)
        return "unrouted"
    told = _tell(escalation, ticket, recipient, address)
    if escalation.level == SUPERVISOR:
        escalation.next_level_at = _next_level_at(escalation, now)
    _record(escalation, ticket, told)
    return "sent"


def _next_level_at(escalation: Escalation, now: datetime) -> datetime | None:
    config = settings()
    if not config.level2_minutes:
        return None
    if escalation.at_once:
        return now + timedelta(minutes=config.level2_minutes)
    directory = Directory(config, now)
    try:
        return add_business_minutes(
            directory.calendar(escalation.recipient_id), now, config.level2_minutes
        )
    except NoWorkingTime:
        return add_business_minutes(ALWAYS, now, config.level2_minutes)


def _due_text(due: datetime, zone: str | None) -> str:
    try:
        tz = ZoneInfo(zone or current_app.config.get("TIMEZONE") or "UTC")
    except (KeyError, ValueError):
        tz = ZoneInfo("UTC")
    local = due.astimezone(tz)
    return f"{local:%Y-%m-%d %H:%M} ({local.tzname()})"


def _priority_label(value: str) -> str:
    try:
        return _(Priority(value).label)
    except ValueError:
        return value


def _tell(
    escalation: Escalation, ticket: Ticket, recipient: User | None, address: str | None
) -> str:
    """In-app and mail as the recipient chose; returns whom, for the record."""
    target = EscalationTarget(escalation.target)
    if recipient is not None:
        choice = choices_for([recipient], NotificationKind.SLA_ESCALATION)[recipient.id]
        if choice.in_app:
            db.session.add(
                Notification(
                    user_id=recipient.id,
                    kind=NotificationKind.SLA_ESCALATION.value,
                    ticket_id=ticket.id,
                    actor_name=None,
                    params={
                        "level": escalation.level,
                        "target": target.value,
                        "due_at": escalation.due_at.strftime("%Y-%m-%d %H:%M"),
                        "subject": ticket.subject,
                    },
                    created_at=utcnow(),
                )
            )
        if choice.by_mail:
            _mail(
                escalation,
                ticket,
                recipient.email,
                recipient.name,
                recipient.language,
                recipient.timezone,
            )
        return recipient.name
    if address is not None:
        _mail(escalation, ticket, address, None, None, None)
    return address or ""


def _mail(
    escalation: Escalation,
    ticket: Ticket,
    address: str,
    name: str | None,
    language: str | None,
    zone: str | None,
) -> OutboxMessage | None:
    """The ``escalation`` system mail to one person, through the outbox and the relay."""
    from app.mail.outbound import _enqueue, _new_message

    identity = system_mail.default_identity()
    if identity is None:
        log.warning("no sender identity: escalation %s told in the app only", escalation.id)
        return None
    language = language or identity.language or "en"
    assignee = ticket.assignee
    with force_locale(system_mail.language_of(language)):
        values: dict[str, Any] = {
            "ticket_number": ticket.number,
            "ticket_subject": ticket.subject,
            "ticket_url": public_url("agent.ticket", number=ticket.number),
            "recipient_name": name or address,
            "assignee_name": assignee.name if assignee is not None else "",
            "priority": _priority_label(ticket.priority),
            "target": sla_target(escalation.target),
            "due_at": _due_text(escalation.due_at, zone),
            "level": escalation.level,
            "identity_name": identity.name,
        }
    rendered = system_mail.render(system_mail.Kind.ESCALATION, identity, language, values)
    message = _new_message(ticket, identity, from_name=identity.name, body_text=rendered.text)
    subject = rendered.subject
    if f"[#{ticket.number}]" not in subject:
        subject = f"[#{ticket.number}] {subject}"
    message.subject = subject[:400]
    message.body_html = rendered.html
    message.signature = None
    message.language = rendered.language
    message.system_kind = system_mail.Kind.ESCALATION.value
    message.auto_submitted = "auto-generated"
    message.recipients = {rk.value: [] for rk in RecipientKind}
    message.recipients[RecipientKind.TO.value] = [address]
    message.deliveries.append(
        OutboxRecipient(kind=RecipientKind.TO.value, address=address, name=name)
    )
    db.session.add(message)
    _enqueue(message)
    return message


def _record(escalation: Escalation, ticket: Ticket, told: str | None) -> None:
    """The internal system entry on the ticket and the audit row, in this transaction."""
    target = sla_target(escalation.target)
    if told is None:
        said = _(
            "SLA: %(target)s is overdue and there is nobody to escalate to. Set the "
            "assignee's supervisor or an escalation address.",
            target=target,
        )
    elif escalation.level == WARNING:
        said = _("SLA: %(who)s was warned that %(target)s is due soon.", who=told, target=target)
    else:
        said = _(
            "SLA: %(target)s is overdue; escalated to %(who)s (level %(level)s).",
            target=target,
            who=told,
            level=escalation.level,
        )
    add_entry(
        ticket,
        EntryKind.SYSTEM,
        Actor.system(),
        body_text=said,
        internal=True,
        data={
            "notice": NOTICE,
            "escalation": escalation.id,
            "target": escalation.target,
            "level": escalation.level,
        },
    )
    audit.record(
        Actor.system(),
        "sla.escalation_unrouted" if told is None else "sla.escalated",
        "sla_escalation",
        escalation.id,
        ticket_id=ticket.id,
        target=escalation.target,
        level=escalation.level,
        due_at=escalation.due_at.isoformat(),
        recipient_id=escalation.recipient_id,
        recipient_address=escalation.recipient_address,
        at_once=escalation.at_once,
    )


__all__ = [
    "Directory",
    "Settings",
    "SweepResult",
    "deliver",
    "due_notices",
    "due_query",
    "settings",
    "still_applies",
    "sweep",
]
