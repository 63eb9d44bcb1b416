"""Assignment rules: which working agent of a team gets a new ticket nobody manages yet.

Decisions (also in the README, "Assignment rules"):

- **When.** A rule places a *new* ticket without a manager, whatever the channel (mail,
  portal, agent, API): ``create_ticket`` calls ``after_creation`` (one line), which parks an
  RQ job (``app.jobs.assignment.place_new_ticket``) to run after the commit. A job, not
  inline: mail ingestion opens hundreds of tickets a second and must not load every
  agent's calendar per ticket, and a rollback of the ingestion must not leave an
  assignment behind. A ticket sent back to dispatch later is not placed again by a rule:
  a person decided that.
- **Which rule.** The ticket's team's rule; a ticket of no team (mail and portal tickets
  name none) goes to the one rule marked ``takes_unteamed``, and is placed in that team.
  A rule in mode ``off`` places nothing.
- **Who.** Candidates are the team's active members holding the Agent role (a lead who
  only supervises is not dealt tickets) who are working *now* by their calendar
  (``calendar_for_user`` + ``is_working``: weekly hours, holidays, closures, absences).
  With ``match_skills`` and a ticket that has tags or a category, only agents with a skill
  for one of them qualify; a ticket with neither has nothing to match, so every working
  agent qualifies.
- **Account manager first.** With ``prefer_account_manager``, the manager of the ticket's
  account gets it when they are active staff and working now, even from another team (the
  ticket stays in the rule's team) and without the skill filter: they know the customer.
- **Round robin** deals to the candidate whose last turn in this team is oldest (never: first),
  ties by user id. The state is a counter on the rule and each member's ``last_turn`` in
  the database, so it survives restarts; the job holds a Redis lock per team (and on
  PostgreSQL a row lock on the rule) while it chooses and commits, so two workers never
  deal the same turn twice.
- **Least busy** deals to the candidate with the fewest open tickets (one GROUP BY), ties
  by round robin order.
- **Nobody.** When no candidate remains, the ticket stays with dispatch, an
  ``UnplacedTicket`` row records why (no active agents / nobody working / nobody with the
  skills), an internal stream entry says so, and the dispatcher list filters on it
  ("Unplaced"). The row goes stale by itself once someone assigns the ticket.

Nothing here commits; every change writes its audit row in the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import delete, func, select

from app import audit, batch_memo
from app.actor import Actor
from app.errors import InvalidInput
from app.extensions import db
from app.models.people import Role, Team, User, UserRole
from app.models.sla import (
    AgentSkill,
    AssignmentMode,
    AssignmentRule,
    AssignmentTurn,
    UnplacedReason,
    UnplacedTicket,
)
from app.models.tickets import Category, EntryKind, Status, Tag, Ticket, ticket_tags
from app.models.types import utcnow
from app.sla.business_time import is_working
from app.sla.calendars import calendar_for_user
from app.tickets.assignment import assign
from app.tickets.stream import add_entry

CLOSED = (Status.RESOLVED.value, Status.CLOSED.value)

MODE_LABELS = {
    AssignmentMode.OFF: _l("Off: tickets wait for dispatch"),
    AssignmentMode.ROUND_ROBIN: _l("Round robin among agents working now"),
    AssignmentMode.LEAST_BUSY: _l("Least busy agent working now"),
}

REASON_LABELS = {
    UnplacedReason.NO_MEMBERS: _l("The team has no active agents."),
    UnplacedReason.NOBODY_WORKING: _l("Nobody in the team was working."),
    UnplacedReason.NO_SKILLS: _l("Nobody working has the skills for its tags or category."),
}

# English for the stream and the audit log, which keep plain English like the rest.
_REASON_TEXT = {
    UnplacedReason.NO_MEMBERS: "the team has no active agents",
    UnplacedReason.NOBODY_WORKING: "nobody in the team was working",
    UnplacedReason.NO_SKILLS: "nobody working has the skills for its tags or category",
}


def reason_label(reason: str) -> str:
    """The reason a ticket is unplaced, in the viewer's language."""
    try:
        return str(REASON_LABELS[UnplacedReason(reason)])
    except ValueError:
        return reason


# --- configuration (admin) -------------------------------------------------------------------


def rule_of(team: Team) -> AssignmentRule | None:
    return db.session.scalar(select(AssignmentRule).where(AssignmentRule.team_id == team.id))


def _describe(rule: AssignmentRule | None) -> dict[str, object] | None:
    if rule is None:
        return None
    return {
        "mode": rule.mode,
        "match_skills": rule.match_skills,
        "prefer_account_manager": rule.prefer_account_manager,
        "takes_unteamed": rule.takes_unteamed,
    }


def save_rule(
    actor: Actor,
    team: Team,
    *,
    mode: str,
    match_skills: bool,
    prefer_account_manager: bool,
    takes_unteamed: bool,
) -> AssignmentRule:
    """Set the team's rule; at most one rule takes tickets of no team (the last one set)."""
    try:
        chosen = AssignmentMode(mode)
    except ValueError:
        raise InvalidInput(_("Choose how new tickets are assigned.")) from None
    rule = rule_of(team)
    before = _describe(rule)
    if rule is None:
        rule = AssignmentRule(team=team, turn=0)
        db.session.add(rule)
    rule.mode = chosen.value
    rule.match_skills = match_skills
    rule.prefer_account_manager = prefer_account_manager
    rule.takes_unteamed = takes_unteamed
    rule.updated_at = utcnow()
    if takes_unteamed:
        others = select(AssignmentRule).where(
            AssignmentRule.takes_unteamed.is_(True), AssignmentRule.team_id != team.id
        )
        for other in db.session.scalars(others):
            other.takes_unteamed = False
            audit.record(
                actor,
                "assignment_rule.changed",
                "team",
                other.team_id,
                before={"takes_unteamed": True},
                after={"takes_unteamed": False},
            )
    db.session.flush()
    after = _describe(rule)
    if after != before:
        audit.record(actor, "assignment_rule.changed", "team", team.id, before=before, after=after)
    return rule


def skill_categories() -> list[Category]:
    """The active categories an agent can be skilled in, by name."""
    return list(
        db.session.scalars(
            select(Category).where(Category.active.is_(True)).order_by(func.lower(Category.name))
        )
    )


def skills_of(users: Iterable[User]) -> dict[int, tuple[list[str], list[int]]]:
    """Per user id: their tag names and category ids (one query)."""
    ids = [u.id for u in users]
    out: dict[int, tuple[list[str], list[int]]] = {i: ([], []) for i in ids}
    rows = db.session.execute(
        select(AgentSkill.user_id, Tag.name, AgentSkill.category_id)
        .outerjoin(Tag, Tag.id == AgentSkill.tag_id)
        .where(AgentSkill.user_id.in_(ids))
        .order_by(Tag.name)
    )
    for user_id, tag_name, category_id in rows:
        if tag_name is not None:
            out[user_id][0].append(tag_name)
        if category_id is not None:
            out[user_id][1].append(category_id)
    return out


def set_skills(
    actor: Actor, user: User, tag_names: Iterable[str], category_ids: Iterable[int]
) -> bool:
    """Make the agent's skills exactly these tags (created when new) and categories."""
    from app.tickets.tags import get_or_create, normalise

    try:
        names = sorted({normalise(n) for n in tag_names if n.strip()})
    except Exception as error:  # InvalidTicketChange: a tag too long
        raise InvalidInput(getattr(error, "message", str(error))) from None
    wanted_categories = sorted(set(category_ids))
    known = set(db.session.scalars(select(Category.id).where(Category.id.in_(wanted_categories))))
    if known != set(wanted_categories):
        raise InvalidInput(_("Choose categories from the list."))
    before_tags, before_categories = skills_of([user])[user.id]
    if (sorted(before_tags), sorted(before_categories)) == (names, wanted_categories):
        return False
    db.session.execute(delete(AgentSkill).where(AgentSkill.user_id == user.id))
    for name in names:
        tag = get_or_create(name)
        db.session.flush()
        db.session.add(AgentSkill(user_id=user.id, tag_id=tag.id))
    for category_id in wanted_categories:
        db.session.add(AgentSkill(user_id=user.id, category_id=category_id))
    audit.record(
        actor,
        "agent.skills",
        "user",
        user.id,
        before={"tags": sorted(before_tags), "categories": sorted(before_categories)},
        after={"tags": names, "categories": wanted_categories},
    )
    return True


# --- placing a ticket ------------------------------------------------------------------------


def rule_for(ticket: Ticket) -> AssignmentRule | None:
    """The rule that places this ticket: its team's, or the one taking tickets of no team."""
    if ticket.team_id is not None:
        condition = AssignmentRule.team_id == ticket.team_id
    else:
        condition = AssignmentRule.takes_unteamed.is_(True)
    return db.session.scalar(
        select(AssignmentRule)
        .where(condition, AssignmentRule.mode != AssignmentMode.OFF.value)
        .with_for_update()
    )


def after_creation(ticket: Ticket) -> None:
    """The hook ``create_ticket`` calls: have a rule place the ticket once it is committed."""
    if ticket.assignee_id is not None:
        return
    condition = (
        AssignmentRule.team_id == ticket.team_id
        if ticket.team_id is not None
        else AssignmentRule.takes_unteamed.is_(True)
    )
    applies = batch_memo.remembered(
        ("assignment_rule_applies", ticket.team_id),
        lambda: db.session.scalar(
            select(AssignmentRule.id).where(
                condition, AssignmentRule.mode != AssignmentMode.OFF.value
            )
        ),
    )
    if applies is None:
        return
    from app.jobs import enqueue_after_commit
    from app.jobs.assignment import place_new_ticket

    enqueue_after_commit(place_new_ticket, (ticket.id,))


@dataclass(frozen=True)
class Placement:
    """What a rule did with a ticket: who got it and how, or why nobody did."""

    assignee: User | None
    how: str | None = None  # "account_manager", "round_robin", "least_busy"
    reason: UnplacedReason | None = None


def _is_agent_clause(user_column: object) -> object:
    return user_column.in_(  # type: ignore[attr-defined]
        select(UserRole.user_id).where(UserRole.role == Role.AGENT.value)
    )


def team_agents(team: Team) -> list[User]:
    """Active members of the team who answer tickets (hold the Agent role), by id."""
    return list(
        db.session.scalars(
            select(User)
            .where(User.team_id == team.id, User.active.is_(True), _is_agent_clause(User.id))
            .order_by(User.id)
        )
    )


def _working(users: Iterable[User], now: datetime) -> list[User]:
    return [u for u in users if is_working(calendar_for_user(u), now)]


def _skilled(users: list[User], ticket: Ticket) -> list[User]:
    tag_ids = select(ticket_tags.c.tag_id).where(ticket_tags.c.ticket_id == ticket.id)
    matches = AgentSkill.tag_id.in_(tag_ids)
    if ticket.category_id is not None:
        matches = matches | (AgentSkill.category_id == ticket.category_id)
    who = set(
        db.session.scalars(
            select(AgentSkill.user_id).where(AgentSkill.user_id.in_([u.id for u in users]), matches)
        )
    )
    return [u for u in users if u.id in who]


def _has_subject_matter(ticket: Ticket) -> bool:
    if ticket.category_id is not None:
        return True
    return (
        db.session.scalar(
            select(ticket_tags.c.tag_id).where(ticket_tags.c.ticket_id == ticket.id).limit(1)
        )
        is not None
    )


def _turns(team: Team, users: list[User]) -> dict[int, int]:
    rows = db.session.execute(
        select(AssignmentTurn.user_id, AssignmentTurn.last_turn).where(
            AssignmentTurn.team_id == team.id,
            AssignmentTurn.user_id.in_([u.id for u in users]),
        )
    )
    return {user_id: turn for user_id, turn in rows}


def open_counts(users: list[User]) -> dict[int, int]:
    """Open tickets each user manages, from one GROUP BY."""
    rows = db.session.execute(
        select(Ticket.assignee_id, func.count())
        .where(Ticket.assignee_id.in_([u.id for u in users]), Ticket.status.not_in(CLOSED))
        .group_by(Ticket.assignee_id)
    )
    counts = dict.fromkeys((u.id for u in users), 0)
    counts.update({user_id: n for user_id, n in rows})
    return counts


def choose(rule: AssignmentRule, team: Team, ticket: Ticket, now: datetime) -> Placement:
    """Who the rule gives the ticket to now (changes nothing)."""
    manager = ticket.account.account_manager if ticket.account is not None else None
    if (
        rule.prefer_account_manager
        and manager is not None
        and manager.active
        and manager.has_role(Role.AGENT, Role.SUPERVISOR)
        and is_working(calendar_for_user(manager), now)
    ):
        return Placement(manager, how="account_manager")
    members = team_agents(team)
    if not members:
        return Placement(None, reason=UnplacedReason.NO_MEMBERS)
    candidates = _working(members, now)
    if not candidates:
        return Placement(None, reason=UnplacedReason.NOBODY_WORKING)
    if rule.match_skills and _has_subject_matter(ticket):
        candidates = _skilled(candidates, ticket)
        if not candidates:
            return Placement(None, reason=UnplacedReason.NO_SKILLS)
    turns = _turns(team, candidates)
    if rule.mode == AssignmentMode.LEAST_BUSY.value:
        load = open_counts(candidates)
        chosen = min(candidates, key=lambda u: (load[u.id], turns.get(u.id, 0), u.id))
    else:
        chosen = min(candidates, key=lambda u: (turns.get(u.id, 0), u.id))
    return Placement(chosen, how=rule.mode)


def place(ticket: Ticket, now: datetime | None = None) -> Placement | None:
    """Apply the ticket's rule: assign through ``assign`` (audited, stream, notification),
    or record why nobody could take it. ``None`` when no rule applies or someone already
    manages the ticket. The caller commits (the job does, holding the team's lock)."""
    now = now or utcnow()
    if ticket.assignee_id is not None or ticket.status in CLOSED:
        return None
    rule = rule_for(ticket)
    if rule is None:
        return None
    team = rule.team
    placement = choose(rule, team, ticket, now)
    actor = Actor.system("Assignment rule")
    if placement.assignee is None:
        _record_unplaced(ticket, team, placement.reason, actor, now)  # type: ignore[arg-type]
        return placement
    assign(ticket, actor, assignee=placement.assignee, team=team)
    if placement.how != "account_manager":
        rule.turn = (rule.turn or 0) + 1
        turn = db.session.get(AssignmentTurn, (team.id, placement.assignee.id))
        if turn is None:
            turn = AssignmentTurn(team_id=team.id, user_id=placement.assignee.id)
            db.session.add(turn)
        turn.last_turn = rule.turn
        turn.last_assigned_at = now
    db.session.execute(delete(UnplacedTicket).where(UnplacedTicket.ticket_id == ticket.id))
    audit.record(
        actor,
        "assignment_rule.placed",
        "ticket",
        ticket.number,
        ticket_id=ticket.id,
        team_id=team.id,
        assignee_id=placement.assignee.id,
        how=placement.how,
    )
    return placement


def _record_unplaced(
    ticket: Ticket, team: Team, reason: UnplacedReason, actor: Actor, now: datetime
) -> None:
    row = db.session.get(UnplacedTicket, ticket.id)
    if row is None:
        row = UnplacedTicket(ticket_id=ticket.id)
        db.session.add(row)
    row.team_id, row.reason, row.at = team.id, reason.value, now
    add_entry(
        ticket,
        EntryKind.SYSTEM,
        actor,
        body_text=f"No assignment rule of team {team.name} could place it: "
        f"{_REASON_TEXT[reason]}. It waits for dispatch.",
        internal=True,
        data={"unplaced": reason.value, "team": team.name},
    )
    audit.record(
        actor,
        "assignment_rule.unplaced",
        "ticket",
        ticket.number,
        ticket_id=ticket.id,
        team_id=team.id,
        reason=reason.value,
    )


def unplaced_reasons(ticket_ids: Iterable[int]) -> dict[int, str]:
    """Why each of these tickets is unplaced (only those that are), for a list page."""
    ids = list(ticket_ids)
    if not ids:
        return {}
    rows = db.session.execute(
        select(UnplacedTicket.ticket_id, UnplacedTicket.reason).where(
            UnplacedTicket.ticket_id.in_(ids)
        )
    )
    return {ticket_id: reason for ticket_id, reason in rows}
