"""Tasks hanging off a ticket: a title, someone to do it, maybe a due time.

Tasks are staff work items ("call the customer back", "order a spare disk"); the customer
never sees them, so every change writes an internal SYSTEM entry on the ticket (the team
sees who did what in the stream) and an audit row. Due times are entered in the agent's
own time zone and stored in UTC like every other time in Vaultdesk.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time

from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.orm import joinedload

from app import audit
from app.actor import Actor
from app.errors import NotFound
from app.extensions import db
from app.i18n import parse_local_datetime
from app.models.people import Role, User, UserRole
from app.models.tickets import EntryKind, Task, Ticket
from app.models.types import utcnow
from app.tickets.errors import InvalidTicketChange
from app.tickets.stream import add_entry

TITLE_MAX = 300
# A due *date* without a time means "by the end of that day" where the agent works.
END_OF_DAY = time(23, 59)


def assignable_staff() -> list[User]:
    """Active agents and supervisors: the people who work tickets and see /agent/tasks."""
    return list(
        db.session.scalars(
            select(User)
            .join(User.role_rows)
            .where(
                User.active.is_(True),
                UserRole.role.in_([Role.AGENT.value, Role.SUPERVISOR.value]),
            )
            .order_by(User.name)
            .distinct()
        )
    )


def parse_local_due(value: str | None, zone_name: str) -> datetime | None:
    """A due date typed in ``zone_name``; a bare date means the end of that day."""
    return parse_local_datetime(value, zone_name, date_means=END_OF_DAY)


def _check_assignee(user: User | None) -> User:
    if user is None or not user.active or not user.has_role(Role.AGENT, Role.SUPERVISOR):
        raise InvalidTicketChange(_("A task is assigned to an active agent or supervisor."))
    return user


def _due_label(task: Task) -> str:
    return f", due {task.due_at:%Y-%m-%d %H:%M} UTC" if task.due_at else ""


def create_task(
    ticket: Ticket,
    actor: Actor,
    *,
    title: str,
    assignee: User | None,
    due_at: datetime | None = None,
) -> Task:
    """Add a task to the ticket; flushed so the audit row can name its id."""
    title = " ".join((title or "").split())
    if not title:
        raise InvalidTicketChange(_("A task needs a title."))
    if len(title) > TITLE_MAX:
        raise InvalidTicketChange(_("A task title has at most %(n)d characters.", n=TITLE_MAX))
    assignee = _check_assignee(assignee)
    task = Task(
        ticket=ticket,
        title=title,
        assignee=assignee,
        due_at=due_at,
        created_by_id=actor.user_id,
    )
    db.session.add(task)
    db.session.flush()
    add_entry(
        ticket,
        EntryKind.SYSTEM,
        actor,
        body_text=f"Task added: {title} (for {assignee.name}{_due_label(task)}).",
        internal=True,
        data={"task": task.id, "action": "create"},
    )
    audit.record(
        actor,
        "task.create",
        "task",
        task.id,
        ticket_id=ticket.id,
        title=title,
        assignee=assignee.email,
        due_at=due_at.isoformat() if due_at else None,
    )
    return task


def set_done(task: Task, actor: Actor, done: bool) -> None:
    """Mark done or open again; asking for the state it already has is refused."""
    if done == (task.done_at is not None):
        if done:
            raise InvalidTicketChange(_("The task is already done."))
        raise InvalidTicketChange(_("The task is already open."))
    task.done_at = utcnow() if done else None
    verb = "done" if done else "reopened"
    add_entry(
        task.ticket,
        EntryKind.SYSTEM,
        actor,
        body_text=f"Task {verb}: {task.title}.",
        internal=True,
        data={"task": task.id, "action": verb},
    )
    audit.record(
        actor,
        "task.done" if done else "task.reopen",
        "task",
        task.id,
        ticket_id=task.ticket_id,
        title=task.title,
    )


def delete_task(task: Task, actor: Actor) -> None:
    ticket = task.ticket
    add_entry(
        ticket,
        EntryKind.SYSTEM,
        actor,
        body_text=f"Task deleted: {task.title}.",
        internal=True,
        data={"task": task.id, "action": "delete"},
    )
    audit.record(actor, "task.delete", "task", task.id, ticket_id=ticket.id, title=task.title)
    ticket.tasks.remove(task)  # delete-orphan removes the row


def task_of(ticket: Ticket, task_id: int) -> Task:
    """A task of this ticket; another ticket's task is as absent as a made-up one."""
    task = db.session.get(Task, task_id)
    if task is None or task.ticket_id != ticket.id:
        raise NotFound(_("There is no such task on this ticket."))
    return task


def is_overdue(task: Task, now: datetime) -> bool:
    return task.done_at is None and task.due_at is not None and task.due_at < now


@dataclass(frozen=True)
class MyTasks:
    """The agent's own list: open work first (overdue at the top), then what is done."""

    open: list[Task]
    done: list[Task]
    now: datetime

    @property
    def overdue_count(self) -> int:
        return sum(1 for t in self.open if is_overdue(t, self.now))


def tasks_for(user: User, *, now: datetime | None = None, done_limit: int = 50) -> MyTasks:
    """Open tasks assigned to ``user``: overdue first, then by due time, undated last."""
    now = now or utcnow()
    open_tasks = list(
        db.session.scalars(
            select(Task)
            .where(Task.assignee_id == user.id, Task.done_at.is_(None))
            .options(joinedload(Task.ticket))
        )
    )
    open_tasks.sort(
        key=lambda t: (
            not is_overdue(t, now),
            t.due_at is None,
            t.due_at or t.created_at,
            t.id,
        )
    )
    done = list(
        db.session.scalars(
            select(Task)
            .where(Task.assignee_id == user.id, Task.done_at.is_not(None))
            .options(joinedload(Task.ticket))
            .order_by(Task.done_at.desc(), Task.id.desc())
            .limit(done_limit)
        )
    )
    return MyTasks(open_tasks, done, now)


def ticket_tasks(ticket: Ticket) -> list[Task]:
    """The ticket's tasks: open ones first, each group in the order they were added."""
    return sorted(ticket.tasks, key=lambda t: (t.done_at is not None, t.id))
