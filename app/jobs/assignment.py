"""Jobs for assignment rules: place a new ticket with a working agent of its team."""

from __future__ import annotations

from rq import Retry

from app.extensions import db, redis_client
from app.jobs import job
from app.models.tickets import Ticket

TEAM_LOCK = "vaultdesk:lock:assignment-team:{team}"


@job("default", retry=Retry(max=3, interval=[10, 60, 300]), timeout=60)
def place_new_ticket(ticket_id: int) -> str:
    """Run the ticket's assignment rule (``app.sla.assignment_rules.place``) and commit.

    The team's lock is held from choosing to committing, so two workers placing tickets of
    the same team at once deal round robin turns one after the other (a LockError after
    30 s fails the job and RQ retries it). Idempotent: a ticket that has a manager by then
    is left alone.
    """
    from app.sla import assignment_rules

    ticket = db.session.get(Ticket, ticket_id)
    if ticket is None:
        return "gone"
    rule = assignment_rules.rule_for(ticket)
    team_id = rule.team_id if rule is not None else None
    db.session.rollback()  # read everything again under the lock
    if team_id is None:
        return "no rule"
    lock = redis_client.connection.lock(
        TEAM_LOCK.format(team=team_id), timeout=60, blocking_timeout=30
    )
    with lock:
        ticket = db.session.get(Ticket, ticket_id)
        if ticket is None:
            return "gone"
        placement = assignment_rules.place(ticket)
        db.session.commit()
    if placement is None:
        return "nothing to do"
    if placement.assignee is None:
        return f"unplaced: {placement.reason}"
    return f"assigned to user {placement.assignee.id} ({placement.how})"
