"""The ticket's side panels (tasks, links and merge, recipients) and the agent's task list.

Each panel is a self-contained htmx component (STYLE 7): its GET endpoint renders it, every
POST that acts on it answers with the same template. htmx requests get the ``component``
block; plain form posts get a 303 back to the ticket, so the panels work without
JavaScript. A refused change (``InvalidInput``/``Conflict`` from the domain) is shown
inside the component with status 422 — the app's htmx config swaps 4xx responses — and
with the form values kept, so nothing typed is lost.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import flash, redirect, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from werkzeug.wrappers import Response

from app.actor import Actor
from app.errors import Conflict, InvalidInput, NotFound
from app.extensions import db
from app.htmx import render, wants_fragment
from app.mail.outbound import bounced_addresses
from app.models.people import User
from app.models.tickets import LinkKind, RecipientKind, Ticket, TicketLink
from app.models.types import utcnow
from app.params import int_id
from app.tickets import link_tickets, linked_tickets, unlink_tickets
from app.tickets import recipients as recipient_rules
from app.tickets import tasks as task_rules
from app.tickets.errors import InvalidTicketChange
from app.tickets.lookup import ticket_by_number
from app.tickets.merge import merge_ticket, merged_into
from app.web.agent import bp

Context = Callable[[Ticket], dict[str, Any]]

# What the link form offers, read from the ticket the agent is on. The texts are msgids:
# the template translates them (and link_label's), since they are shown, not stored.
LINK_CHOICES = (
    (LinkKind.RELATED, "related to"),
    (LinkKind.DUPLICATE, "a duplicate of"),
    (LinkKind.PARENT, "the parent of"),
)


def _actor() -> Actor:
    return Actor.staff(current_user, request.remote_addr)


def _other_ticket(number: str) -> Ticket:
    """The ticket named in a form: an unknown number is a form error here, not a 404."""
    number = (number or "").strip()
    if not number:
        raise InvalidTicketChange(_("Enter a ticket number."))
    try:
        return ticket_by_number(number)
    except NotFound:
        raise InvalidTicketChange(
            _("There is no ticket %(number)s.", number=number.upper())
        ) from None


def _component(
    template: str, t: Ticket, context: Context, *, status: int = 200, **extra: Any
) -> Response:
    """The component for htmx, or a small page around it for plain requests."""
    return render(template, "component", status=status, standalone=True, **context(t), **extra)


def _act(
    t: Ticket,
    template: str,
    context: Context,
    change: Callable[[], object],
    done: str,
    *,
    form_keys: tuple[str, ...] = (),
) -> Response:
    """Run one domain change and answer like every component endpoint does."""
    try:
        change()
    except (InvalidInput, Conflict) as refused:
        db.session.rollback()
        kept = {f"form_{key}": request.form.get(key, "") for key in form_keys}
        return _component(template, t, context, status=422, error=refused.message, **kept)
    db.session.commit()
    if wants_fragment():
        return _component(template, t, context, notice=done)
    flash(done, "success")
    if request.form.get("next") == "tasks":
        return redirect(url_for("agent.my_tasks"), code=303)
    return redirect(url_for("agent.ticket", number=t.number), code=303)


# --- Tasks ---------------------------------------------------------------------------------


def tasks_context(t: Ticket) -> dict[str, Any]:
    """What ``agent/_tasks.html`` needs besides the ticket."""
    return {
        "ticket": t,
        "tasks": task_rules.ticket_tasks(t),
        "staff": task_rules.assignable_staff(),
        "now": utcnow(),
        "is_overdue": task_rules.is_overdue,
    }


def _zone() -> str:
    return current_user.timezone


@bp.route("/tickets/<number>/tasks", methods=["GET", "POST"])
def ticket_tasks(number: str) -> Response:
    """The tasks panel; POST adds a task (due time typed in the agent's own zone)."""
    t = ticket_by_number(number)
    if request.method == "GET":
        return _component("agent/_tasks.html", t, tasks_context)
    form = request.form

    def create() -> None:
        assignee_id = int_id(form.get("assignee_id"), "For")
        assignee = db.session.get(User, assignee_id) if assignee_id else None
        task_rules.create_task(
            t,
            _actor(),
            title=form.get("title", ""),
            assignee=assignee,
            due_at=task_rules.parse_local_due(form.get("due"), _zone()),
        )

    return _act(
        t,
        "agent/_tasks.html",
        tasks_context,
        create,
        _("Task added."),
        form_keys=("title", "assignee_id", "due"),
    )


@bp.post("/tickets/<number>/tasks/<int:task_id>/done")
def task_done(number: str, task_id: int) -> Response:
    """Mark a task done (``done=1``) or open again (``done=0``)."""
    t = ticket_by_number(number)
    task = task_rules.task_of(t, task_id)
    done = request.form.get("done", "1") == "1"
    return _act(
        t,
        "agent/_tasks.html",
        tasks_context,
        lambda: task_rules.set_done(task, _actor(), done),
        _("Task done.") if done else _("Task reopened."),
    )


@bp.post("/tickets/<number>/tasks/<int:task_id>/delete")
def task_delete(number: str, task_id: int) -> Response:
    t = ticket_by_number(number)
    task = task_rules.task_of(t, task_id)
    return _act(
        t,
        "agent/_tasks.html",
        tasks_context,
        lambda: task_rules.delete_task(task, _actor()),
        _("Task deleted."),
    )


@bp.get("/tasks")
def my_tasks() -> Response:
    """The signed-in agent's own open tasks across tickets, overdue first."""
    return render("agent/tasks.html", mine=task_rules.tasks_for(current_user))


# --- Links and merge -----------------------------------------------------------------------


def link_label(link: TicketLink, here: Ticket) -> str:
    """How a link reads from ``here``: links are one row, seen from both ends."""
    outgoing = link.source_id == here.id
    if link.kind == LinkKind.DUPLICATE:
        return "duplicate of" if outgoing else "has duplicate"
    if link.kind == LinkKind.PARENT:
        return "parent of" if outgoing else "child of"
    return "related to"


def links_context(t: Ticket) -> dict[str, Any]:
    """What ``agent/_links.html`` needs besides the ticket."""
    rows = sorted(linked_tickets(t), key=lambda pair: pair[1].number)
    return {
        "ticket": t,
        "links": [(link, other, link_label(link, t)) for link, other in rows],
        "link_choices": LINK_CHOICES,
        "merged_into": merged_into(t),
    }


@bp.route("/tickets/<number>/links", methods=["GET", "POST"])
def ticket_links(number: str) -> Response:
    """The links panel; POST links this ticket with another by number."""
    t = ticket_by_number(number)
    if request.method == "GET":
        return _component("agent/_links.html", t, links_context)

    def link() -> None:
        try:
            kind = LinkKind(request.form.get("kind", LinkKind.RELATED.value))
        except ValueError:
            raise InvalidTicketChange(_("Choose how the tickets are linked.")) from None
        link_tickets(t, _other_ticket(request.form.get("other", "")), _actor(), kind)

    return _act(
        t,
        "agent/_links.html",
        links_context,
        link,
        _("Tickets linked."),
        form_keys=("other", "kind"),
    )


@bp.post("/tickets/<number>/links/<other>/delete")
def ticket_unlink(number: str, other: str) -> Response:
    t = ticket_by_number(number)
    return _act(
        t,
        "agent/_links.html",
        links_context,
        lambda: unlink_tickets(t, _other_ticket(other), _actor()),
        _("Link removed."),
    )


@bp.post("/tickets/<number>/merge")
def ticket_merge(number: str) -> Response:
    """Merge this ticket into the one named in the form, then go to that ticket."""
    t = ticket_by_number(number)
    form = request.form
    try:
        if form.get("confirm") not in ("yes", "on", "1"):
            raise InvalidTicketChange(_("Tick the box to confirm the merge; it cannot be undone."))
        target = _other_ticket(form.get("target", ""))
        moved = merge_ticket(t, target, _actor())
    except (InvalidInput, Conflict) as refused:
        db.session.rollback()
        return _component(
            "agent/_links.html",
            t,
            links_context,
            status=422,
            merge_error=refused.message,
            form_target=form.get("target", ""),
        )
    db.session.commit()
    destination = url_for("agent.ticket", number=target.number)
    flash(
        _(
            "%(number)s merged into %(target)s (%(moved)s entries moved).",
            number=t.number,
            target=target.number,
            moved=moved,
        ),
        "success",
    )
    if wants_fragment():
        response = Response(status=200)
        response.headers["HX-Redirect"] = destination  # the page it was on is now closed
        return response
    return redirect(destination, code=303)


# --- Recipients ----------------------------------------------------------------------------


def recipients_context(t: Ticket) -> dict[str, Any]:
    """What ``agent/_recipients.html`` needs besides the ticket."""
    subscribers = sorted(t.subscribers, key=lambda u: u.name.lower())
    return {
        "ticket": t,
        "recipients": sorted(
            t.recipients, key=lambda r: (list(RecipientKind).index(RecipientKind(r.kind)), r.id)
        ),
        "recipient_kinds": list(RecipientKind),
        # Addresses replies skip because mail to them bounced (mail.outbound).
        "bounced": bounced_addresses([r.address for r in t.recipients]),
        "subscribers": subscribers,
        "me_subscribed": any(u.id == current_user.id for u in subscribers),
        "colleagues": [u for u in recipient_rules.subscribable_staff(t) if u.id != current_user.id],
    }


@bp.route("/tickets/<number>/recipients", methods=["GET", "POST"])
def ticket_recipients(number: str) -> Response:
    """The recipients panel; POST adds an external To/Cc/Bcc address."""
    t = ticket_by_number(number)
    if request.method == "GET":
        return _component("agent/_recipients.html", t, recipients_context)
    form = request.form
    return _act(
        t,
        "agent/_recipients.html",
        recipients_context,
        lambda: recipient_rules.add_recipient(
            t, _actor(), form.get("kind", ""), form.get("address", ""), form.get("name")
        ),
        _("Recipient added."),
        form_keys=("kind", "address", "name"),
    )


@bp.post("/tickets/<number>/recipients/<int:recipient_id>/delete")
def recipient_remove(number: str, recipient_id: int) -> Response:
    t = ticket_by_number(number)
    recipient = recipient_rules.recipient_of(t, recipient_id)
    return _act(
        t,
        "agent/_recipients.html",
        recipients_context,
        lambda: recipient_rules.remove_recipient(t, _actor(), recipient),
        _("Recipient removed."),
    )


@bp.post("/tickets/<number>/subscribers")
def ticket_subscribe(number: str) -> Response:
    """Subscribe oneself (no ``user_id``) or a colleague."""
    t = ticket_by_number(number)

    def subscribe() -> None:
        user_id = int_id(request.form.get("user_id"), "Colleague")
        if user_id is None:
            user = current_user._get_current_object()  # the real User, not the proxy
        else:
            user = db.session.get(User, user_id)
        recipient_rules.add_subscriber(t, _actor(), user)

    return _act(t, "agent/_recipients.html", recipients_context, subscribe, _("Subscribed."))


@bp.post("/tickets/<number>/subscribers/<int:user_id>/delete")
def ticket_unsubscribe(number: str, user_id: int) -> Response:
    t = ticket_by_number(number)
    return _act(
        t,
        "agent/_recipients.html",
        recipients_context,
        lambda: recipient_rules.remove_subscriber(t, _actor(), db.session.get(User, user_id)),
        _("Unsubscribed."),
    )
