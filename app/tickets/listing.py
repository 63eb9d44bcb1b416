"""Ticket lists for agents: views, filters, sorting, search, counts and bulk actions.

Every list (the inbox included) is one ``ListQuery`` turned into two statements: a count and
one page of rows with contact, account and manager joined in and the read state of the viewer
and of the ticket's manager computed by the same SELECT. The number of statements does not
depend on the page or on the size of the desk.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    case,
    func,
    literal,
    not_,
    or_,
    select,
    union_all,
)
from sqlalchemy.orm import aliased, joinedload, lazyload

from app.actor import Actor
from app.errors import InvalidInput
from app.extensions import db
from app.models.people import STAFF_ROLES, Team, User, UserRole
from app.models.people import Contact as ContactModel
from app.models.sla import UnplacedTicket
from app.models.tickets import (
    Category,
    Priority,
    Status,
    Tag,
    Ticket,
    TicketRead,
    ticket_tags,
)
from app.models.types import utcnow
from app.pagination import clamp_page, page_count
from app.params import id_or_none, lenient_ids, page_number
from app.sla import board
from app.sla.assignment_rules import unplaced_reasons
from app.sla.targets import Clock, ClockState, next_clock
from app.tickets import search
from app.tickets.assignment import assign
from app.tickets.changes import change_status, set_tags
from app.tickets.errors import InvalidTicketChange, TransitionNotAllowed
from app.tickets.inbox import mark_many_read

PER_PAGE = 50
CLOSED = (Status.RESOLVED.value, Status.CLOSED.value)


# --- views ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class View:
    slug: str
    label: str
    default_sort: str
    status: str | None = None  # a status view; None for the others

    def condition(self) -> ColumnElement[bool] | None:
        if self.slug == "inbox":
            return Ticket.in_inbox.is_(True)
        if self.slug == "dispatcher":
            return and_(Ticket.waiting_for_dispatch.is_(True), Ticket.status.not_in(CLOSED))
        if self.status is not None:
            return Ticket.status == self.status
        return None


VIEWS: dict[str, View] = {
    v.slug: v
    for v in (
        View("inbox", "Inbox", "activity"),
        View("dispatcher", "Dispatcher", "updated"),
        View("all", "All", "updated"),
        *(View(s.value, s.label, "updated", s.value) for s in Status),
    )
}
OPEN_VIEWS = tuple(s.value for s in Status if not s.is_closed)
CLOSED_VIEWS = tuple(s.value for s in Status if s.is_closed)


# --- the query -----------------------------------------------------------------------------


class Owner(enum.StrEnum):
    ALL = "all"
    ME = "me"
    NONE = "none"  # nobody manages it
    CHOSEN = "chosen"  # the agents in ``owner_ids``


SORTS = ("number", "subject", "customer", "status", "priority", "owner", "updated", "due")
_STATUS_ORDER = {s.value: i for i, s in enumerate(Status)}
_PRIORITY_ORDER = {p.value: i for i, p in enumerate(Priority)}


@dataclass(frozen=True)
class ListQuery:
    """What a list shows; parsed leniently from URL arguments (bad values are dropped)."""

    view: str = "inbox"
    owner: Owner = Owner.ALL
    owner_ids: tuple[int, ...] = ()
    statuses: tuple[str, ...] = ()
    priorities: tuple[str, ...] = ()
    category_id: int | None = None
    tag: str | None = None
    team_id: int | None = None
    account_id: int | None = None
    text: str = ""
    overdue: bool = False
    # The supervisor's board links (app.sla.board): open only, due today/near/breached,
    # pending with follow-up today, no team, and tickets no assignment rule could place.
    open_only: bool = False
    due: str | None = None
    pending_today: bool = False
    no_team: bool = False
    unplaced: bool = False
    near_breach: bool = False  # past a target's warning threshold, not yet overdue
    sort: str | None = None  # None: the view's default (relevance when searching)
    descending: bool = True
    page: int = 1

    @classmethod
    def from_args(cls, view: str, args: Any) -> ListQuery:
        """From a ``MultiDict`` of request arguments (or anything with ``getlist``)."""
        if view not in VIEWS:
            raise InvalidInput(_("There is no list called %(view)s.", view=repr(view)))
        owners = [o for o in args.getlist("owner") if o]
        owner_ids = lenient_ids(owners)
        if owner_ids:
            owner = Owner.CHOSEN
        elif owners and owners[0] in {o.value for o in Owner}:
            owner = Owner(owners[0])
        else:
            owner = Owner.ALL
        first_int = lambda name: id_or_none(args.get(name))  # noqa: E731
        sort = args.get("sort") if args.get("sort") in SORTS else None
        yes = lambda name: args.get(name) in ("1", "on", "true")  # noqa: E731
        return cls(
            view=view,
            owner=owner,
            owner_ids=owner_ids if owner is Owner.CHOSEN else (),
            statuses=tuple(sorted({s for s in args.getlist("status") if s in _STATUS_ORDER})),
            priorities=tuple(sorted({p for p in args.getlist("priority") if p in _PRIORITY_ORDER})),
            category_id=first_int("category"),
            tag=(args.get("tag") or "").strip().lower() or None,
            team_id=first_int("team"),
            account_id=first_int("account"),
            text=(args.get("q") or "").strip()[:200],
            overdue=yes("overdue"),
            open_only=yes("open"),
            due=args.get("due") if args.get("due") in board.DUE_FILTERS else None,
            pending_today=yes("pending_today"),
            no_team=args.get("team") == "none",
            unplaced=yes("unplaced"),
            near_breach=yes("near"),
            sort=sort,
            descending=args.get("dir", "desc") != "asc",
            page=page_number(args.get("page")),
        )

    @property
    def effective_sort(self) -> str:
        if self.sort:
            return self.sort
        return "relevance" if self.text else VIEWS[self.view].default_sort

    def args(self, **changes: Any) -> dict[str, Any]:
        """URL arguments for ``url_for`` that reproduce this query (defaults left out)."""
        q = replace(self, **changes) if changes else self
        out: dict[str, Any] = {}
        if q.owner is Owner.CHOSEN:
            out["owner"] = list(q.owner_ids)
        elif q.owner is not Owner.ALL:
            out["owner"] = q.owner.value
        for key, value in (
            ("status", list(q.statuses)),
            ("priority", list(q.priorities)),
            ("category", q.category_id),
            ("tag", q.tag),
            ("team", "none" if q.no_team else q.team_id),
            ("account", q.account_id),
            ("q", q.text),
            ("overdue", 1 if q.overdue else None),
            ("open", 1 if q.open_only else None),
            ("due", q.due),
            ("pending_today", 1 if q.pending_today else None),
            ("unplaced", 1 if q.unplaced else None),
            ("near", 1 if q.near_breach else None),
            ("sort", q.sort),
            ("dir", "asc" if q.sort and not q.descending else None),
            ("page", q.page if q.page > 1 else None),
        ):
            if value:
                out[key] = value
        return out

    def sorted_by(self, column: str) -> dict[str, Any]:
        """Arguments for a column header: first click descending, second ascending."""
        descending = not (self.effective_sort == column and self.descending)
        return self.args(sort=column, descending=descending, page=1)

    def owner_args(self) -> dict[str, Any]:
        """Only the owner filter: what the navigation carries from view to view."""
        return ListQuery(view=self.view, owner=self.owner, owner_ids=self.owner_ids).args()

    @property
    def filtered(self) -> bool:
        return bool(
            self.statuses
            or self.priorities
            or self.category_id
            or self.tag
            or self.team_id
            or self.account_id
            or self.text
            or self.overdue
            or self.open_only
            or self.due
            or self.pending_today
            or self.no_team
            or self.unplaced
            or self.near_breach
        )


@dataclass(frozen=True)
class ListRow:
    ticket: Ticket
    unread: bool  # for the viewer, when they manage it (bold)
    manager_has_read: bool  # the envelope: has the manager read the latest customer activity
    overdue: bool  # a target (unanswered first response, resolution) is past, still open
    near_breach: bool = False  # past a target's warning threshold, not overdue
    clock: Clock | None = None  # the target it runs against now (``app.sla.targets``)
    unplaced_reason: str | None = None  # why no assignment rule could place it (dispatcher)


@dataclass
class ListPage:
    query: ListQuery
    rows: list[ListRow]
    total: int
    per_page: int = PER_PAGE
    pages: int = field(init=False)

    def __post_init__(self) -> None:
        self.pages = page_count(self.total, self.per_page)

    @property
    def page(self) -> int:
        return self.query.page


def _owner_condition(owner: Owner, owner_ids: Sequence[int], viewer: User) -> Any:
    if owner is Owner.ME:
        return Ticket.assignee_id == viewer.id
    if owner is Owner.NONE:
        return Ticket.assignee_id.is_(None)
    if owner is Owner.CHOSEN:
        return Ticket.assignee_id.in_(owner_ids)
    return None


def _conditions(query: ListQuery, viewer: User, now: datetime) -> list[Any]:
    conditions = [
        VIEWS[query.view].condition(),
        _owner_condition(query.owner, query.owner_ids, viewer),
    ]
    if query.statuses:
        conditions.append(Ticket.status.in_(query.statuses))
    if query.priorities:
        conditions.append(Ticket.priority.in_(query.priorities))
    if query.category_id:
        conditions.append(Ticket.category_id == query.category_id)
    if query.team_id:
        conditions.append(Ticket.team_id == query.team_id)
    if query.account_id:
        conditions.append(Ticket.account_id == query.account_id)
    if query.tag:
        conditions.append(
            Ticket.id.in_(
                select(ticket_tags.c.ticket_id)
                .join(Tag, Tag.id == ticket_tags.c.tag_id)
                .where(Tag.name == query.tag)
            )
        )
    if query.overdue:
        conditions.append(overdue_condition(now))
    if query.near_breach:
        conditions.append(near_breach_condition(now))
    if query.open_only:
        conditions.append(board.figure_condition("open", viewer, now))
    if query.due:
        conditions.append(board.figure_condition(query.due, viewer, now))
    if query.pending_today:
        conditions.append(board.figure_condition("pending_today", viewer, now))
    if query.no_team:
        conditions.append(Ticket.team_id.is_(None))
    if query.unplaced:
        conditions.append(
            and_(
                Ticket.id.in_(select(UnplacedTicket.ticket_id)),
                Ticket.assignee_id.is_(None),
                Ticket.status.not_in(CLOSED),
            )
        )
    return [c for c in conditions if c is not None]


def overdue_condition(now: datetime) -> ColumnElement[bool]:
    """Still open, and the resolution or the unanswered first response is past due.

    A ticket whose resolution clock is paused has no resolution due time (see
    ``app.sla.targets``), so it is not overdue for it.
    """
    return and_(
        Ticket.status.not_in(CLOSED),
        or_(
            Ticket.resolution_due_at < now,
            and_(Ticket.first_responded_at.is_(None), Ticket.first_response_due_at < now),
        ),
    )


def near_breach_condition(now: datetime) -> ColumnElement[bool]:
    """Still open, past a target's warning threshold, and not overdue yet."""
    return and_(
        Ticket.status.not_in(CLOSED),
        or_(
            and_(Ticket.resolution_warn_at <= now, Ticket.resolution_due_at > now),
            and_(
                Ticket.first_responded_at.is_(None),
                Ticket.first_response_warn_at <= now,
                Ticket.first_response_due_at > now,
            ),
        ),
        not_(overdue_condition(now)),
    )


def list_tickets(
    query: ListQuery, viewer: User, *, per_page: int = PER_PAGE, now: datetime | None = None
) -> ListPage:
    """One page of a list: a count and one SELECT, whatever the page or the filters."""
    now = now or utcnow()
    dialect = db.session.get_bind().dialect.name
    matched = search.matches(dialect, query.text) if query.text else None
    direct = search.direct_matches(query.text, ticket_prefix()) if query.text else None
    if query.text and matched is None and direct is None:  # only punctuation: no match
        return ListPage(query, [], 0, per_page)

    conditions = _conditions(query, viewer, now)
    # Rank once and reuse the ids: ranking is the expensive part of a search (bm25 over
    # every match), and the count and the page would otherwise each pay for it. Tickets
    # named by number or customer come first, then the text hits by relevance.
    hits: dict[int, int] | None = None
    if query.text:
        hits = {}
        for ticket_id in db.session.scalars(_hits_statement(matched, direct)):
            hits.setdefault(ticket_id, len(hits))
        conditions.append(Ticket.id.in_(list(hits)))
    base = select(Ticket.id).where(*conditions)
    total = db.session.scalar(select(func.count()).select_from(base.subquery())) or 0
    # A page typed into the URL past the end shows the last page (and never overflows OFFSET).
    query = replace(query, page=clamp_page(query.page, total, per_page))

    viewer_read = aliased(TicketRead, name="viewer_read")
    manager_read = aliased(TicketRead, name="manager_read")
    stmt = (
        select(Ticket, viewer_read.read_at, manager_read.read_at)
        .where(*conditions)
        .outerjoin(
            viewer_read, and_(viewer_read.ticket_id == Ticket.id, viewer_read.user_id == viewer.id)
        )
        .outerjoin(
            manager_read,
            and_(manager_read.ticket_id == Ticket.id, manager_read.user_id == Ticket.assignee_id),
        )
        .options(
            joinedload(Ticket.contact),
            # Roles are not shown in lists: do not load them for every manager.
            joinedload(Ticket.assignee).lazyload(User.role_rows),
            joinedload(Ticket.account),
        )
    )
    stmt, order = _sorted(stmt, query, hits)
    stmt = stmt.order_by(*order).limit(per_page).offset((query.page - 1) * per_page)

    rows = [
        _row(ticket, viewer, viewer_at, manager_at, now)
        for ticket, viewer_at, manager_at in db.session.execute(stmt).unique()
    ]
    if query.view == "dispatcher" or query.unplaced:
        reasons = unplaced_reasons(r.ticket.id for r in rows if r.ticket.assignee_id is None)
        rows = [replace(r, unplaced_reason=reasons.get(r.ticket.id)) for r in rows]
    return ListPage(query, rows, total, per_page)


# Below every rank either full-text dialect gives (bm25 and -ts_rank are small numbers,
# the newest-first fallback is -rowid): tickets named by number or customer come first.
_NAMED_RANK = -1e18


def _hits_statement(matched: Select[Any] | None, direct: Select[Any] | None) -> Select[Any]:
    """One statement for the text hits and the tickets named by number or customer."""
    parts = []
    if direct is not None:
        named = direct.subquery()
        parts.append(select(named.c.id.label("ticket_id"), literal(_NAMED_RANK).label("rank")))
    if matched is not None:
        ranked = matched.subquery()
        parts.append(select(ranked.c.ticket_id, ranked.c.rank))
    both = (union_all(*parts) if len(parts) > 1 else parts[0]).subquery()
    return select(both.c.ticket_id).order_by(both.c.rank, both.c.ticket_id.desc())


def ticket_prefix() -> str:
    """The prefix new numbers get (``T`` in ``T-104233``): bare digits are read with it."""
    return str(current_app.config["TICKET_PREFIX"])


def jump_target(text: str) -> Ticket | None:
    """The ticket a search names by its number alone, e.g. ``T-104233`` or ``104233``.

    Every agent may open every ticket (the agent blueprint's guard), so an exact number is
    enough. Bare digits are read with today's prefix first and then with any prefix, so a
    ticket numbered before the prefix changed is still found (only when that is unique).
    """
    lone = search.lone_number(text, ticket_prefix())
    if lone is None:
        return None
    number, typed_prefix = lone
    ticket = db.session.scalar(select(Ticket).where(Ticket.number == number))
    if ticket is not None or typed_prefix:
        return ticket
    digits = number.rpartition("-")[2]
    found = db.session.scalars(
        select(Ticket).where(Ticket.number.endswith(f"-{digits}", autoescape=True)).limit(2)
    ).all()
    return found[0] if len(found) == 1 else None


def _sorted(
    stmt: Select[Any], query: ListQuery, hits: dict[int, int] | None
) -> tuple[Select[Any], list[Any]]:
    key = query.effective_sort
    if key == "relevance" and hits:
        position = case(hits, value=Ticket.id, else_=len(hits))
        return stmt, [position.asc(), Ticket.id.desc()]
    direction: Callable[[Any], Any] = (
        (lambda c: c.desc()) if query.descending else (lambda c: c.asc())
    )
    if key == "customer":
        contact = aliased(ContactModel, name="sort_contact")
        stmt = stmt.outerjoin(contact, contact.id == Ticket.contact_id)
        column: Any = func.lower(
            func.coalesce(contact.name, Ticket.submitter_name, Ticket.submitter_email, "")
        )
    elif key == "owner":
        owner = aliased(User, name="sort_owner")
        stmt = stmt.outerjoin(owner, owner.id == Ticket.assignee_id)
        column = func.lower(func.coalesce(owner.name, ""))
    elif key == "status":
        column = case(_STATUS_ORDER, value=Ticket.status, else_=99)
    elif key == "priority":
        column = case(_PRIORITY_ORDER, value=Ticket.priority, else_=-1)
    elif key == "due":
        # Tickets without a due date come last in either direction.
        return stmt, [
            Ticket.resolution_due_at.is_(None),
            direction(Ticket.resolution_due_at),
            direction(Ticket.id),
        ]
    elif key == "activity":
        column = Ticket.last_customer_activity_at
    else:
        column = {
            "number": Ticket.number,
            "subject": func.lower(Ticket.subject),
            "updated": Ticket.updated_at,
        }.get(key, Ticket.updated_at)
    return stmt, [direction(column), direction(Ticket.id)]


def _row(
    ticket: Ticket,
    viewer: User,
    viewer_at: datetime | None,
    manager_at: datetime | None,
    now: datetime,
) -> ListRow:
    activity = ticket.last_customer_activity_at
    due = ticket.resolution_due_at
    is_open = ticket.status not in CLOSED
    first_late = (
        ticket.first_responded_at is None
        and ticket.first_response_due_at is not None
        and ticket.first_response_due_at < now
    )
    overdue = is_open and ((due is not None and due < now) or first_late)
    clock = next_clock(ticket, now) if is_open else None
    return ListRow(
        ticket=ticket,
        unread=ticket.assignee_id == viewer.id
        and (viewer_at is None or (activity is not None and viewer_at < activity)),
        manager_has_read=manager_at is not None and (activity is None or manager_at >= activity),
        overdue=overdue,
        near_breach=not overdue and clock is not None and clock.state is ClockState.NEAR,
        clock=clock,
    )


# --- counts for the navigation -------------------------------------------------------------


def view_counts(
    viewer: User, owner: Owner = Owner.ALL, owner_ids: Sequence[int] = ()
) -> dict[str, int]:
    """Tickets per view under an owner filter, from ONE grouped query."""
    in_inbox = func.sum(case((Ticket.in_inbox.is_(True), 1), else_=0))
    dispatch = func.sum(case((Ticket.waiting_for_dispatch.is_(True), 1), else_=0))
    stmt = select(Ticket.status, func.count(), in_inbox, dispatch).group_by(Ticket.status)
    condition = _owner_condition(owner, owner_ids, viewer)
    if condition is not None:
        stmt = stmt.where(condition)
    counts = dict.fromkeys(VIEWS, 0)
    for status, n, inbox_n, dispatch_n in db.session.execute(stmt):
        counts["all"] += n
        counts["inbox"] += inbox_n or 0
        if status in counts:
            counts[status] = n
        if status not in CLOSED:
            counts["dispatcher"] += dispatch_n or 0
    return counts


def counts_etag(viewer: User, owner: Owner, owner_ids: Sequence[int], view: str) -> str:
    """A cheap fingerprint of the counts: any ticket change moves ``max(updated_at)``.

    Every change to a ticket goes through ``touch`` (``updated_at``) and a new ticket moves
    ``max(id)``; both are single index lookups (a ``count(*)`` would scan 100,000 rows on
    every poll). Deleting a ticket moves neither: the lists catch up at the next change, and
    a click on the gone ticket says it is not there. The viewer and filter are part of the
    tag because "Me" differs per viewer.
    """
    # Two scalar subqueries: SQLite answers a lone max() from the index, but scans the
    # whole table for a SELECT with two aggregates.
    latest, n = db.session.execute(
        select(
            select(func.max(Ticket.updated_at)).scalar_subquery(),
            select(func.max(Ticket.id)).scalar_subquery(),
        )
    ).one()
    raw = f"{viewer.id}|{owner.value}|{','.join(map(str, owner_ids))}|{view}|{latest}|{n}"
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


def list_etag(viewer: User, query: ListQuery, query_string: str) -> str:
    """Changes when any ticket changes or the viewer reads one (bold rows), per filter set."""
    tickets = counts_etag(viewer, query.owner, query.owner_ids, query.view)
    last_read = db.session.scalar(
        select(func.max(TicketRead.read_at)).where(TicketRead.user_id == viewer.id)
    )
    raw = f"{tickets}|{last_read}|{query_string}"
    if query.due or query.pending_today:  # these move with the clock, not only with tickets
        raw += f"|{utcnow().replace(second=0, microsecond=0)}|{viewer.timezone}"
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


# --- choices for filters and bulk forms ----------------------------------------------------


@dataclass(frozen=True)
class Choices:
    staff: list[User]
    categories: list[Category]
    teams: list[Team]
    tags: list[Tag]


def staff() -> list[User]:
    """Active users who can manage tickets (agents and supervisors), by name."""
    working = select(UserRole.user_id).where(UserRole.role.in_(("agent", "supervisor")))
    return list(
        db.session.scalars(
            select(User)
            .where(User.active.is_(True), User.id.in_(working))
            .options(lazyload(User.role_rows))
            .order_by(User.name)
        )
    )


def choices() -> Choices:
    return Choices(
        staff=staff(),
        categories=list(
            db.session.scalars(
                select(Category).where(Category.active.is_(True)).order_by(Category.name)
            )
        ),
        teams=list(db.session.scalars(select(Team).order_by(Team.name))),
        tags=list(db.session.scalars(select(Tag).order_by(Tag.name).limit(200))),
    )


# --- bulk actions --------------------------------------------------------------------------


class BulkAction(enum.StrEnum):
    ASSIGN = "assign"
    STATUS = "status"
    TAG = "tag"
    READ = "read"


class BulkRefused(InvalidInput):
    """One ticket refused the change; nothing of the batch was applied (status 422)."""

    def __init__(self, number: str, reason: str) -> None:
        super().__init__(
            _("Nothing was changed: %(number)s refused. %(reason)s", number=number, reason=reason)
        )
        self.number = number
        self.reason = reason


@dataclass
class BulkResult:
    changed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)  # already as asked: nothing to do

    def summary(self, verb: str) -> str:
        text = f"{verb} {len(self.changed)} ticket(s)."
        if self.unchanged:
            text += f" {len(self.unchanged)} already were: {', '.join(self.unchanged)}."
        return text


def apply_bulk(
    ticket_ids: Sequence[int],
    action: BulkAction,
    actor: Actor,
    *,
    assignee: User | None = None,
    status: Status | None = None,
    tag: str | None = None,
) -> BulkResult:
    """Apply one change to many tickets through the domain functions; all or nothing.

    Why all or nothing: an agent who closes twenty tickets and gets "done" must be able to
    trust that twenty are closed. If one ticket refuses (``TransitionNotAllowed`` — e.g.
    Closed cannot go to Pending — or an invalid change), this raises ``BulkRefused`` naming
    the ticket and the reason, and the caller rolls the session back: no status, stream
    entry or audit row of the batch survives. Tickets that already are as asked (already in
    that status, with that manager, with that tag) are not refusals: they are left alone
    and reported as unchanged. Never commits.
    """
    if not ticket_ids:
        raise InvalidInput(_("Tick at least one ticket."))
    if actor.user is None:
        raise InvalidInput(_("Bulk changes need a signed-in member of staff."))
    tickets = list(
        db.session.scalars(
            select(Ticket)
            .where(Ticket.id.in_(set(ticket_ids)))
            .options(joinedload(Ticket.assignee), joinedload(Ticket.team))
            .order_by(Ticket.id)
        ).unique()
    )
    if len(tickets) != len(set(ticket_ids)):
        raise InvalidInput(_("Some of the ticked tickets no longer exist; reload the list."))
    result = BulkResult()
    if action is BulkAction.READ:
        _mark_read(tickets, actor.user, result)
        return result
    for ticket in tickets:
        try:
            if action is BulkAction.ASSIGN:
                if assignee is None:
                    raise InvalidInput(_("Choose whom to assign the tickets to."))
                if ticket.assignee_id == assignee.id:
                    result.unchanged.append(ticket.number)
                    continue
                assign(ticket, actor, assignee=assignee)
            elif action is BulkAction.STATUS:
                if status is None:
                    raise InvalidInput(_("Choose a status."))
                if ticket.status == status.value:
                    result.unchanged.append(ticket.number)
                    continue
                change_status(ticket, status, actor)
            elif action is BulkAction.TAG:
                if not tag or not tag.strip():
                    raise InvalidInput(_("Type the tag to add."))
                if set_tags(ticket, [t.name for t in ticket.tags] + [tag], actor) is None:
                    result.unchanged.append(ticket.number)
                    continue
        except (TransitionNotAllowed, InvalidTicketChange) as refused:
            raise BulkRefused(ticket.number, refused.message) from refused
        result.changed.append(ticket.number)
    return result


def _mark_read(tickets: list[Ticket], user: User, result: BulkResult) -> None:
    mark_many_read(tickets, user)
    result.changed.extend(t.number for t in tickets)


def staff_member(user_id: int | None) -> User | None:
    """The chosen assignee of a bulk form, if they are active staff."""
    if user_id is None:
        return None
    user = db.session.get(User, user_id)
    if user is None or not user.active or not (user.roles & STAFF_ROLES):
        raise InvalidInput(_("Choose an active member of staff."))
    return user
