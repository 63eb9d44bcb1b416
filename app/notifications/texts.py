"""The words of a notification, in whichever language is active when they are asked for.

Rows keep ``kind`` and ``params``, never finished sentences: the bell shows them in the
reader's language today, a mail renders them in the agent's language (``force_locale``).
"""

from __future__ import annotations

from typing import Any

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from app.models.notifications import NotificationKind

KIND_LABELS = {
    NotificationKind.NEW_TICKET: _l("New ticket in my team or for dispatch"),
    NotificationKind.ASSIGNED: _l("A ticket was assigned to me"),
    NotificationKind.CUSTOMER_WROTE: _l("A customer wrote on my ticket"),
    NotificationKind.MENTIONED: _l("I was mentioned in a note (@name)"),
    NotificationKind.TASK_DUE: _l("A task of mine is due"),
    NotificationKind.REPLY_FAILED: _l("A reply of mine could not be sent"),
    NotificationKind.FOLLOW_UP_DUE: _l("A pending ticket of mine reached its follow-up date"),
    NotificationKind.SLA_ESCALATION: _l("A ticket missed (or is about to miss) its SLA target"),
}

SLA_TARGETS = {"first_response": "first response", "resolution": "resolution"}


def sla_target(value: str) -> str:
    """A target's name ("first response") in the active language."""
    return _(SLA_TARGETS.get(value, value))


def kind_label(kind: NotificationKind) -> str:
    """The name of a kind on the preferences page."""
    return str(KIND_LABELS[kind])


def headline(kind: str, params: dict[str, Any], actor_name: str | None, number: str | None) -> str:
    """One sentence: what happened, on which ticket, by whom."""
    who = actor_name or _("Vaultdesk")
    ticket = number or _("a ticket that is gone")
    match NotificationKind(kind):
        case NotificationKind.NEW_TICKET:
            return _("New ticket %(ticket)s from %(who)s", ticket=ticket, who=who)
        case NotificationKind.ASSIGNED:
            return _("%(who)s assigned %(ticket)s to you", ticket=ticket, who=who)
        case NotificationKind.CUSTOMER_WROTE:
            return _("%(who)s wrote on %(ticket)s", ticket=ticket, who=who)
        case NotificationKind.MENTIONED:
            return _("%(who)s mentioned you on %(ticket)s", ticket=ticket, who=who)
        case NotificationKind.TASK_DUE:
            return _(
                "Your task “%(title)s” on %(ticket)s is due",
                ticket=ticket,
                title=params.get("title", ""),
            )
        case NotificationKind.REPLY_FAILED:
            return _("Your reply on %(ticket)s could not be sent", ticket=ticket)
        case NotificationKind.FOLLOW_UP_DUE:
            return _("Follow up on %(ticket)s: its follow-up date has come", ticket=ticket)
        case NotificationKind.SLA_ESCALATION if params.get("level") == 0:
            target = sla_target(params.get("target", ""))
            return _("%(ticket)s: %(target)s is due soon", ticket=ticket, target=target)
        case NotificationKind.SLA_ESCALATION:
            target = sla_target(params.get("target", ""))
            return _("%(ticket)s missed its %(target)s target", ticket=ticket, target=target)
    return ticket  # pragma: no cover - the enum above is exhaustive


def detail(kind: str, params: dict[str, Any]) -> str:
    """The line under the headline: the handover note, the words, the error."""
    match NotificationKind(kind):
        case NotificationKind.ASSIGNED if params.get("note"):
            return _("Handover note: %(note)s", note=params["note"])
        case NotificationKind.TASK_DUE if params.get("due_at"):
            return _("Due %(due)s UTC", due=params["due_at"])
        case NotificationKind.FOLLOW_UP_DUE if params.get("follow_up"):
            return _(
                "Pending since %(since)s UTC, follow-up %(due)s UTC, no answer from the customer.",
                since=params.get("since") or "?",
                due=params["follow_up"],
            )
        case NotificationKind.SLA_ESCALATION if params.get("due_at"):
            return _("Due %(due)s UTC", due=params["due_at"])
        case NotificationKind.REPLY_FAILED if params.get("error"):
            return _("The mail server said: %(error)s", error=params["error"])
    return str(params.get("excerpt") or params.get("subject") or "")
