"""Audit rows and download events as people read them: named objects and sentences.

The audit log stores what a machine needs (``object_type`` "user", ``object_id`` "4",
``details`` as JSON). A compliance officer needs "Anna Berg", "T-104233", "report.pdf" and
"changed the status from Open to Resolved". This module turns one into the other for a
whole page at once (one query per kind of object, never one per row):

- ``Namer`` collects the objects a page of rows mentions, loads them in batches and names
  them, with a link to the compliance page of files, links and data-subject tickets.
- ``describe`` renders a row: a sentence per known action (``RENDERERS``) and the
  remaining values as a key/value list. An action nobody taught it (a new feature's) falls
  back to a readable key/value list of its details, never to raw JSON.
- ``download_actor`` says who a download was: the staff member, the customer (portal, or a
  link opened while signed in), or the holder of a link.

Objects that no longer exist keep what the row itself knows (the number, the id, a title
in the details): the audit outlives what it describes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from flask import url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from app.extensions import db
from app.i18n import format_size, format_when
from app.models.audit import AuditLog
from app.models.files import DownloadEvent, VaultFile, VaultLink
from app.models.people import Contact, Team, User
from app.models.tickets import Priority, Status, Ticket

# Object types as the audit stores them, in the words of the screen.
OBJECT_KINDS: dict[str, Any] = {
    "ticket": _l("Ticket"),
    "user": _l("Person"),
    "contact": _l("Customer"),
    "file": _l("File"),
    "link": _l("Link"),
    "task": _l("Task"),
    "entry": _l("Stream entry"),
    "inbound_mail": _l("Received mail"),
    "outbox": _l("Sent mail"),
    "mailbox": _l("Mailbox"),
    "identity": _l("Sender identity"),
    "template": _l("Reply template"),
    "system_template": _l("System mail template"),
    "key": _l("Vault key"),
    "vault": _l("Vault"),
}

# Detail keys in the screen's words; a key not listed is shown with its underscores as spaces.
DETAIL_LABELS: dict[str, Any] = {
    "reason": _l("Reason"),
    "count": _l("Count"),
    "links": _l("Links"),
    "email": _l("Address"),
    "address": _l("Address"),
    "file": _l("File"),
    "days": _l("Valid for days"),
    "max_downloads": _l("Download limit"),
    "recipient": _l("Recipient"),
    "password": _l("Password"),
    "size": _l("Size"),
    "sha256": _l("SHA-256"),
    "channel": _l("Channel"),
    "priority": _l("Priority"),
    "from": _l("Before"),
    "to": _l("After"),
    "pending_until": _l("Follow up"),
    "added": _l("Added"),
    "removed": _l("Removed"),
    "assignee_id": _l("Manager"),
    "team_id": _l("Team"),
    "identity": _l("Sender identity"),
    "files": _l("Files"),
    "title": _l("Title"),
    "assignee": _l("Assigned to"),
    "due_at": _l("Due"),
    "other": _l("Other ticket"),
    "kind": _l("Kind"),
    "into": _l("Merged into"),
    "entries": _l("Entries moved"),
    "score": _l("Rating"),
    "in_inbox": _l("In the inbox"),
    "audience": _l("Sign-in page"),
    "outcome": _l("Outcome"),
    "language": _l("Language"),
    "timezone": _l("Time zone"),
    "user": _l("Person"),
    "message_id": _l("Message-ID"),
    "host": _l("Server"),
    "port": _l("Port"),
    "security": _l("Security"),
    "rewrapped": _l("Files re-wrapped"),
    "mailbox_passwords": _l("Mailbox passwords re-sealed"),
    "found": _l("Found"),
    "shredded": _l("Shredded"),
    "method": _l("Method"),
}

# Keys a sentence already says, or that only a machine needs; left out of the list.
HIDDEN_KEYS = frozenset({"into_ticket_id", "links"})


@dataclass(frozen=True)
class Named:
    """An object as a person recognises it, with a compliance page when there is one."""

    label: str
    kind: str = ""
    url: str | None = None
    detail: str | None = None


@dataclass
class Described:
    """One audit row for a screen or a CSV line: who, what, on which object, and how."""

    row: AuditLog
    actor: Named
    sentence: str
    object: Named | None
    ticket: Named | None
    facts: list[tuple[str, str]] = field(default_factory=list)

    @property
    def facts_text(self) -> str:
        """The key/value list on one line, for CSV."""
        return "; ".join(f"{key}: {value}" for key, value in self.facts)


def _ids(values: Iterable[Any]) -> set[int]:
    out: set[int] = set()
    for value in values:
        try:
            out.add(int(value))
        except (TypeError, ValueError):
            continue
    return out


class Namer:
    """Names for every object a batch of audit rows mentions, loaded in a few queries."""

    def __init__(self, rows: Sequence[AuditLog]) -> None:
        by_type: dict[str, set[str]] = {}
        for row in rows:
            if row.object_id is not None:
                by_type.setdefault(row.object_type, set()).add(row.object_id)
        details = [row.details or {} for row in rows]
        user_ids = _ids(by_type.get("user", ()))
        user_ids |= _ids(row.actor_id for row in rows)
        user_ids |= _ids(d.get("assignee_id") for d in details)
        self.users = self._load(User, User.id, user_ids)
        self.teams = self._load(Team, Team.id, _ids(d.get("team_id") for d in details))
        self.contacts = self._load(Contact, Contact.id, _ids(by_type.get("contact", ())))
        file_keys = set(by_type.get("file", set()))
        file_keys |= {d["file"] for d in details if isinstance(d.get("file"), str)}
        self.files = self._load(VaultFile, VaultFile.public_id, file_keys)
        self.links = {
            link.id: link
            for link in self._load(VaultLink, VaultLink.id, by_type.get("link", set())).values()
        }
        link_files = {link.file_id for link in self.links.values()}
        self.link_files = self._load(VaultFile, VaultFile.id, link_files)
        ticket_ids = _ids(row.ticket_id for row in rows)
        self.tickets = self._load(Ticket, Ticket.id, ticket_ids)
        numbers = set(by_type.get("ticket", ())) - {t.number for t in self.tickets.values()}
        for ticket in self._load(Ticket, Ticket.number, numbers).values():
            self.tickets[ticket.id] = ticket
        self.by_number = {t.number: t for t in self.tickets.values()}

    @staticmethod
    def _load(model: Any, column: Any, keys: Iterable[Any]) -> dict[Any, Any]:
        keys = list(keys)
        found: dict[Any, Any] = {}
        for start in range(0, len(keys), 500):  # stays under every backend's parameter limit
            chunk = select(model).where(column.in_(keys[start : start + 500]))
            for obj in db.session.scalars(chunk):
                found[getattr(obj, column.key)] = obj
        return found

    # -- naming ----------------------------------------------------------------------------

    def ticket(self, ticket: Ticket | None, number: str | None = None) -> Named | None:
        if ticket is None:
            return Named(number, str(OBJECT_KINDS["ticket"])) if number else None
        url = None
        if ticket.data_subject_request:
            url = url_for("compliance.request_ticket", number=ticket.number)
        return Named(ticket.number, str(OBJECT_KINDS["ticket"]), url, ticket.subject)

    def user(self, user_id: Any, fallback: str | None = None) -> Named:
        user = self.users.get(_int(user_id))
        if user is None:
            return Named(fallback or _("deleted user"), str(OBJECT_KINDS["user"]))
        return Named(user.name or user.email, str(OBJECT_KINDS["user"]), None, user.email)

    def actor(self, row: AuditLog) -> Named:
        """Who acted: a person by name (address aside), else what the row kept."""
        if row.actor_id is not None and _int(row.actor_id) in self.users:
            user = self.users[_int(row.actor_id)]
            kind = _("Staff") if user.is_staff else _("Customer")
            return Named(user.name or user.email, kind, None, user.email)
        if "@" in (row.actor_label or ""):
            return Named(row.actor_label, _("Customer"))  # wrote by mail, no account
        return Named(row.actor_label or _("System"), _("System"))

    def object(self, row: AuditLog) -> Named | None:
        kind, key = row.object_type, row.object_id
        kind_label = str(OBJECT_KINDS.get(kind, kind.replace("_", " ")))
        details = row.details or {}
        if key is None:
            return None if kind in ("link", "vault") else Named(kind_label, kind_label)
        if kind == "ticket":
            return self.ticket(self.by_number.get(key), key)
        if kind == "user":
            return self.user(key, _("person #%(id)s", id=key))
        if kind == "contact":
            contact = self.contacts.get(_int(key))
            if contact is not None:
                return Named(contact.name, kind_label, None, contact.email)
            return Named(details.get("email") or key, kind_label)
        if kind == "file":
            file = self.files.get(key)
            if file is not None:
                url = url_for("compliance.file_detail", public_id=file.public_id)
                return Named(file.display_name, kind_label, url)
            return Named(key, kind_label)
        if kind == "link":
            link = self.links.get(key)
            if link is not None:
                file = self.link_files.get(link.file_id)
                name = file.display_name if file else key
                url = url_for("compliance.link_detail", link_id=link.id)
                return Named(_("link to %(file)s", file=name), kind_label, url)
            return Named(key, kind_label)
        if kind == "task" and details.get("title"):
            return Named(str(details["title"]), kind_label)
        if kind in ("mailbox", "identity") and details.get("address"):
            return Named(str(details["address"]), kind_label)
        return Named(f"{kind_label} {key}", kind_label)

    def value(self, key: str, value: Any) -> str:
        """One detail value in words: people and teams by name, flags as yes/no."""
        if key == "assignee_id":
            return self.user(value).label if value is not None else _("nobody")
        if key == "team_id":
            team = self.teams.get(_int(value))
            return team.name if team else (_("no team") if value is None else str(value))
        if key == "file" and isinstance(value, str) and value in self.files:
            return self.files[value].display_name
        if key == "size" and isinstance(value, int):
            return format_size(value)
        if key in ("from", "to"):
            return _state_label(value)
        if key == "priority":
            return _priority_label(value)
        if key in ("due_at", "pending_until") and isinstance(value, str):
            try:
                return format_when(datetime.fromisoformat(value))
            except ValueError:
                return value
        return plain(value)


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def plain(value: Any) -> str:
    """A JSON value as words: lists joined, booleans as yes/no, nothing as a dash."""
    if value is None or value == "" or value == []:
        return "—"
    if isinstance(value, bool):
        return _("yes") if value else _("no")
    if isinstance(value, list | tuple):
        return ", ".join(plain(v) for v in value)
    if isinstance(value, dict):
        return "; ".join(f"{k}: {plain(v)}" for k, v in value.items())
    return str(value)


def _state_label(value: Any) -> str:
    for enum_class in (Status, Priority):
        try:
            return str(enum_class(value).label)
        except ValueError:
            continue
    return plain(value)


def _priority_label(value: Any) -> str:
    try:
        return str(Priority(value).label)
    except ValueError:
        return plain(value)


def label_of(key: str) -> str:
    label = DETAIL_LABELS.get(key)
    return str(label) if label is not None else key.replace("_", " ").capitalize()


# -- sentences per action ---------------------------------------------------------------------

Renderer = Callable[[Mapping[str, Any], "Namer"], tuple[str, frozenset[str]]]


def _s(text: str, *used: str) -> tuple[str, frozenset[str]]:
    """A sentence and the detail keys it already says (left out of the list below it)."""
    return text, frozenset(used)


def _count(d: Mapping[str, Any]) -> int:
    return int(d.get("count") or 0)


RENDERERS: dict[str, Renderer] = {
    "auth.login": lambda d, n: _s(_("Signed in.")),
    "auth.logout": lambda d, n: _s(_("Signed out.")),
    "auth.login_failed": lambda d, n: _s(_("A sign-in failed."), "audience"),
    "auth.password_set": lambda d, n: _s(_("Set a password.")),
    "auth.link_refused": lambda d, n: _s(_("An emailed sign-in link was refused.")),
    "user.create": lambda d, n: _s(_("Created the account.")),
    "user.profile": lambda d, n: _s(
        _(
            "Changed their profile (language %(language)s, zone %(zone)s).",
            language=plain(d.get("language")),
            zone=plain(d.get("timezone")),
        ),
        "language",
        "timezone",
    ),
    "user.password": lambda d, n: _s(_("Changed their password.")),
    "ticket.create": lambda d, n: _s(
        _("Opened the ticket through the %(channel)s.", channel=_channel(d.get("channel"))),
        "channel",
    ),
    "ticket.status": lambda d, n: _s(
        _(
            "Changed the status from %(before)s to %(after)s.",
            before=n.value("from", d.get("from")),
            after=n.value("to", d.get("to")),
        ),
        "from",
        "to",
    ),
    "ticket.priority": lambda d, n: _s(
        _(
            "Changed the priority from %(before)s to %(after)s.",
            before=n.value("from", d.get("from")),
            after=n.value("to", d.get("to")),
        ),
        "from",
        "to",
    ),
    "ticket.category": lambda d, n: _s(
        _(
            "Changed the category from %(before)s to %(after)s.",
            before=plain(d.get("from")),
            after=plain(d.get("to")),
        ),
        "from",
        "to",
    ),
    "ticket.assign": lambda d, n: _s(
        _(
            "Gave the ticket to %(person)s (team: %(team)s).",
            person=n.value("assignee_id", d.get("assignee_id")),
            team=n.value("team_id", d.get("team_id")),
        ),
        "assignee_id",
        "team_id",
    ),
    "ticket.tags": lambda d, n: _s(_("Changed the tags.")),
    "ticket.leads": lambda d, n: _s(_("Changed the leads.")),
    "ticket.note": lambda d, n: _s(_("Wrote an internal note.")),
    "ticket.reply": lambda d, n: _s(
        _("Answered the customer from %(identity)s.", identity=plain(d.get("identity"))),
        "identity",
    ),
    "ticket.customer_message": lambda d, n: _s(_("Wrote on the ticket.")),
    "ticket.merge": lambda d, n: _s(
        _("Merged this ticket into %(other)s.", other=plain(d.get("into"))), "into"
    ),
    "ticket.link": lambda d, n: _s(
        _("Linked the ticket with %(other)s.", other=plain(d.get("other"))), "other"
    ),
    "ticket.unlink": lambda d, n: _s(
        _("Removed the link to %(other)s.", other=plain(d.get("other"))), "other"
    ),
    "ticket.rating": lambda d, n: _s(
        _("Rated the answer: %(score)s.", score=plain(d.get("score"))), "score"
    ),
    "ticket.inbox": lambda d, n: _s(
        _("Put the ticket in the inbox.") if d.get("in_inbox") else _("Took it out of the inbox."),
        "in_inbox",
    ),
    "ticket.recipient_add": lambda d, n: _s(
        _("Added %(address)s as a recipient.", address=plain(d.get("address"))), "address"
    ),
    "ticket.recipient_remove": lambda d, n: _s(
        _("Removed the recipient %(address)s.", address=plain(d.get("address"))), "address"
    ),
    "ticket.subscribe": lambda d, n: _s(
        _("Subscribed %(person)s.", person=plain(d.get("user"))), "user"
    ),
    "ticket.unsubscribe": lambda d, n: _s(
        _("Unsubscribed %(person)s.", person=plain(d.get("user"))), "user"
    ),
    "gdpr.access_request": lambda d, n: _s(_("Asked for a copy of their personal data.")),
    "task.create": lambda d, n: _s(
        _("Created a task for %(person)s.", person=plain(d.get("assignee"))), "assignee", "title"
    ),
    "task.done": lambda d, n: _s(_("Marked the task done."), "title"),
    "task.reopen": lambda d, n: _s(_("Reopened the task."), "title"),
    "task.delete": lambda d, n: _s(_("Deleted the task."), "title"),
    "file.upload": lambda d, n: _s(
        _("Stored a file of %(size)s.", size=n.value("size", d.get("size"))), "size"
    ),
    "file.erase": lambda d, n: _s(_("Erased the file.")),
    "link.issue": lambda d, n: _s(
        _("Made a download link valid for %(days)s days.", days=plain(d.get("days"))), "days"
    ),
    "link.revoke": lambda d, n: _s(_("Revoked the link.")),
    "link.revoke_ticket": lambda d, n: _s(
        _("Revoked every link of the ticket (%(count)s).", count=_count(d)), "count"
    ),
    "link.revoke_customer": lambda d, n: _s(
        _("Revoked every link of this customer (%(count)s).", count=_count(d)), "count"
    ),
    "link.revoke_all": lambda d, n: _s(
        _("Revoked ALL links (%(count)s).", count=_count(d)), "count"
    ),
    "mail.original_downloaded": lambda d, n: _s(_("Downloaded the original message."), "size"),
    "mail.remote_images": lambda d, n: _s(_("Allowed the remote images of a mail.")),
    "mail.bounced": lambda d, n: _s(
        _("A mail to %(address)s bounced.", address=plain(d.get("address"))), "address"
    ),
    "mail.send_again": lambda d, n: _s(_("Sent a mail again.")),
    "mail.retry": lambda d, n: _s(_("Retried filing a received mail.")),
    "mailbox.save": lambda d, n: _s(_("Saved the mailbox settings.")),
    "mailbox.deactivate": lambda d, n: _s(_("Stopped polling the mailbox.")),
    "identity.save": lambda d, n: _s(_("Saved the sender identity.")),
    "template.add": lambda d, n: _s(_("Added a reply template.")),
    "system_template.save": lambda d, n: _s(_("Changed a system mail template.")),
    "system_template.reset": lambda d, n: _s(_("Reset a system mail template to the default.")),
    "vault.rotate_key": lambda d, n: _s(_("Rotated the vault key.")),
    "vault.retire_key": lambda d, n: _s(_("Retired an old vault key.")),
    "vault.orphans": lambda d, n: _s(_("Swept the vault for orphaned files.")),
}


def _channel(value: Any) -> str:
    channels = {"mail": _("mail"), "portal": _("portal"), "agent": _("desk"), "api": _("API")}
    return channels.get(str(value), plain(value))


def action_label(action: str) -> str:
    """The action for a list or a filter: "ticket.status" reads "Ticket: status"."""
    group, _dot, rest = action.partition(".")
    kind = OBJECT_KINDS.get(group)
    return f"{kind}: {rest.replace('_', ' ')}" if kind and rest else action.replace("_", " ")


def describe(rows: Sequence[AuditLog], namer: Namer | None = None) -> list[Described]:
    """Rows as people read them; one ``Namer`` per batch keeps it to a few queries."""
    namer = namer or Namer(rows)
    out: list[Described] = []
    for row in rows:
        details = dict(row.details or {})
        renderer = RENDERERS.get(row.action)
        if renderer is not None:
            try:
                sentence, said = renderer(details, namer)
            except (TypeError, ValueError, KeyError):  # an old row of another shape
                sentence, said = action_label(row.action), frozenset()
        else:
            sentence, said = action_label(row.action), frozenset()
        facts = [
            (label_of(key), namer.value(key, value))
            for key, value in details.items()
            if key not in said and key not in HIDDEN_KEYS
        ]
        obj = namer.object(row)
        ticket = None
        if row.ticket_id is not None and row.object_type != "ticket":
            ticket = namer.ticket(namer.tickets.get(row.ticket_id))
        out.append(Described(row, namer.actor(row), sentence, obj, ticket, facts))
    return out


# -- downloads -----------------------------------------------------------------------------


def download_actor(event: DownloadEvent) -> Named:
    """Who a download attempt was, from who was signed in and whether a link was used.

    A signed-in customer is the customer (portal download, or a link opened while signed
    in to the portal), staff are staff, and a link without a session is whoever held it.
    Before this, every signed-in download was labelled "staff", customers' too.
    """
    user = event.user
    through_link = event.link_id is not None
    if user is not None:
        name = user.name or user.email
        if user.is_staff:
            return Named(name, _("Staff"), None, user.email)
        kind = _("Customer, through a link") if through_link else _("Customer, in the portal")
        return Named(name, kind, None, user.email)
    if event.user_id is not None:
        return Named(_("deleted user"), _("Person"))
    if through_link:
        return Named(_("Anyone with the link"), _("Link"))
    return Named("—", "")
