"""Every route in ``url_map``, every role, garbage in every parameter: never a 5xx.

The walk also checks the htmx convention of ``app.htmx`` on every answer it gets: an htmx
request that is not boosted never gets a redirect for htmx to follow, a whole page sent to
any htmx request is retargeted to ``body`` (never drawn inside a fragment target), and
every 4xx carries a sentence.

Which parameters a view reads is found by watching it: the test app's request class keeps
its query and form values in a dict that notes every name looked up, so a view is sent
garbage in exactly the names it reads, one at a time, and names it reads only after another
one was accepted are found on the way. Upload forms are parsed from the raw body (see
``app.files.uploads``), so their field names are listed here. On top of that, every request
of a value round also carries a broad fixed set of names all at once.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from itertools import cycle
from typing import Any

import pytest
from flask import Flask, Request
from sqlalchemy import select
from werkzeug.datastructures import ImmutableMultiDict

from app.actor import Actor
from app.extensions import db
from app.files import vault_links
from app.files.store import store_upload
from app.gdpr.requests import from_ticket as gdpr_from_ticket
from app.mail.identities import add_template, save_identity
from app.mail.ingest import file_message
from app.mail.mailboxes import MailboxForm, save_mailbox
from app.models import Absence, ClosureDay, Notification, OutboxMessage, Role, WorkCalendar
from app.models.inbound import MailSource
from app.models.people import Contact, Team, User
from app.models.sla import SlaPolicy
from app.models.tickets import Category, LinkKind
from app.tickets import assign, link_tickets
from app.tickets import recipients as recipient_rules
from app.tickets import tags as tag_rules
from app.tickets import tasks as task_rules
from app.tickets.replies import answer
from tests import factories
from tests.conftest import csrf_from, sign_in

# Values that have answered 500 somewhere, or could: text where a number goes, numbers past
# SQLite's 64 bits, signs, a digit Python's isdigit() accepts but int() does not, a NUL.
GARBAGE = ("x", "-1", "0", str(2**63), "²", "ü\x00", "")
URL_GARBAGE = ("x", str(2**64), "ü")

BROAD = (
    "page", "status", "priority", "category_id", "category", "assignee_id", "assignee",
    "team_id", "team", "user_id", "identity_id", "owner", "tag", "tags", "q", "sort", "dir",
    "view", "action", "ticket", "lead_ids", "leads_shown", "version", "days",
    "max_downloads", "state", "outcome", "reason", "kind", "other", "target", "confirm",
    "done", "in_inbox", "next", "email", "score", "account", "overdue", "number",
)  # fmt: skip
UPLOAD_FIELDS = {
    "agent.answer_view": (
        "body", "visibility", "identity_id", "template", "pending", "pending_until",
    ),
    "portal.new_ticket": ("subject", "description", "category", "priority"),
    "portal.reply": ("body",),
    "agent.create_ticket_for_customer": (
        "contact_id", "name", "email", "phone", "account_name", "via", "subject", "body",
        "priority", "category", "assignee", "confirm",
    ),
}  # fmt: skip
# Walked last: a garbage value they accept ends the session the walk runs in.
SESSION_ENDING = ("auth.logout", "portal.password")
HOME = {
    Role.AGENT: "/agent/",
    Role.SUPERVISOR: "/agent/",
    Role.COMPLIANCE: "/compliance/",
    Role.ADMIN: "/admin/",
    Role.CUSTOMER: "/portal/",
}
HEADERS = (
    {},
    {"HX-Request": "true"},
    {"HX-Request": "true", "HX-Boosted": "true"},
)

READ: set[str] = set()


class RecordingDict(ImmutableMultiDict):  # type: ignore[type-arg]
    """An ImmutableMultiDict that notes each name looked up; behaves the same otherwise."""

    def __getitem__(self, key: Any) -> Any:
        READ.add(key)
        return super().__getitem__(key)

    def get(self, key: Any, default: Any = None, type: Any = None) -> Any:  # noqa: A002
        READ.add(key)
        return super().get(key, default, type)

    def getlist(self, key: Any, type: Any = None) -> Any:  # noqa: A002
        READ.add(key)
        return super().getlist(key, type)

    def __contains__(self, key: object) -> bool:
        READ.add(key)  # type: ignore[arg-type]
        return super().__contains__(key)


class RecordingRequest(Request):
    parameter_storage_class = RecordingDict


@dataclass
class World:
    values: dict[str, str]
    people: dict[Role, Any] = field(default_factory=dict)


@pytest.fixture
def world(app: Flask, make_user: Any) -> World:
    people = {role: make_user(role) for role in HOME}
    with app.app_context():
        system = Actor.system()
        agent = db.session.get(User, people[Role.AGENT].id)
        identity = save_identity(system, address="contact@desk.test", name="Desk")
        thanks = add_template(system, identity, "Thanks", "Thank you.")
        contact = db.session.get(Contact, people[Role.CUSTOMER].contact_id)
        ticket = factories.ticket("Walked", contact=contact)
        other = factories.ticket("Other")
        staff = Actor.staff(agent)
        file = store_upload(io.BytesIO(b"%PDF-1.4 x"), "a.pdf", system, ticket=ticket)
        file.entry = ticket.entries[0]
        link = vault_links.issue_link(file, staff, days=14)
        task = task_rules.create_task(ticket, staff, title="Call back", assignee=agent)
        recipient = recipient_rules.add_recipient(ticket, staff, "cc", "cc@example.org")
        recipient_rules.add_subscriber(ticket, staff, agent)
        link_tickets(ticket, other, staff, LinkKind.RELATED)
        replied = answer(
            ticket, staff, "A reply.", internal=False, identity=identity, take_ownership=False
        )
        db.session.flush()
        outbox = db.session.scalar(select(OutboxMessage).where(OutboxMessage.entry == replied))
        outbox.status = "failed"  # so "send again" has something to do
        # A supervisor hands the ticket to the agent: the agent has a notification.
        supervisor = db.session.get(User, people[Role.SUPERVISOR].id)
        assign(ticket, Actor.staff(supervisor), assignee=agent, note="Over to you")
        db.session.flush()
        notification = db.session.scalar(
            select(Notification).where(Notification.user_id == agent.id)
        )
        db.session.commit()
        # A stranger quoting the ticket's number: held for review (the held-mail screens).
        held = file_message(
            b"From: stranger@elsewhere.test\r\nTo: contact@desk.test\r\n"
            b"Message-ID: <walk@elsewhere.test>\r\n"
            + f"Subject: Re: [#{ticket.number}] Walked\r\n\r\n".encode()
            + b"Send me the invoice.\r\n",
            source=MailSource.PIPE,
        )
        assert held.outcome == "review", held
        mailbox = save_mailbox(
            system,
            MailboxForm(
                name="Support",
                address="support@desk.test",
                host="imap.invalid",
                security="none",
                username="support",
                password="walk-secret",
            ),
        )
        # What the admin screens act on (teams, categories, tags).
        team = Team(name="Walkers")
        category = Category(name="Walked")
        sla_policy = SlaPolicy(
            name="Walked", priority="low", first_response_minutes=60, resolution_minutes=120
        )
        db.session.add_all([team, category, sla_policy])
        tag = tag_rules.get_or_create("walked")
        ticket.tags.append(tag)
        # Work calendars and absences (app.sla).
        work_calendar = WorkCalendar(name="Walked hours", zone="Europe/Berlin", country="DE")
        closure = ClosureDay(calendar=work_calendar, day=date(2030, 1, 2))
        away = Absence(user_id=agent.id, starts_at=datetime(2030, 1, 1, tzinfo=UTC),
                       ends_at=datetime(2030, 1, 3, tzinfo=UTC), kind="leave")  # fmt: skip
        db.session.add_all([work_calendar, closure, away])
        gdpr_request = gdpr_from_ticket(Actor.system(), ticket, "access")  # the request register
        db.session.commit()
        values = {
            "number": ticket.number,
            "other": other.number,
            "public_id": file.public_id,
            "link_id": link.id,
            "token": vault_links.token_for(link),
            "grant": "x",
            "task_id": str(task.id),
            "entry_id": str(ticket.entries[0].id),
            "recipient_id": str(recipient.id),
            "user_id": str(agent.id),
            "contact_id": str(contact.id),
            "account_id": str(contact.account_id),
            "inbound_id": str(held.inbound_id),
            "identity_id": str(identity.id),
            "mailbox_id": str(mailbox.id),
            "outbox_id": str(outbox.id),
            "notification_id": str(notification.id),
            "view": "dispatcher",
            "name": "x",
            "filename": "app.js",
            "kind": "autoresponse",
            "language": "de",
            "team_id": str(team.id),
            "category_id": str(category.id),
            "tag_id": str(tag.id),
            "template_id": str(thanks.id),
            "calendar_id": str(work_calendar.id),
            "closure_id": str(closure.id),
            "absence_id": str(away.id),
            "policy_id": str(sla_policy.id),
            "request_id": str(gdpr_request.id),
        }
    return World(values, people)


VARIABLE = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")


def urls(rule: Any, values: dict[str, str]) -> Iterator[tuple[str, bool]]:
    """The rule with real values, then with each variable garbled in turn (real: False)."""

    def build(garbled: str | None, junk: str) -> str:
        return VARIABLE.sub(
            lambda m: junk if m.group(1) == garbled else values[m.group(1)], rule.rule
        )

    yield build(None, ""), True
    for name in rule.arguments:
        for junk in URL_GARBAGE:
            yield build(name, junk), False


@dataclass
class Walk:
    client: Any
    token: str
    role: Role | None
    failures: list[str] = field(default_factory=list)
    headers: Iterator[dict[str, str]] = field(default_factory=lambda: cycle(HEADERS))
    sent: int = 0

    def send(self, method: str, url: str, params: dict[str, str]) -> tuple[Any, set[str]]:
        headers = {"X-CSRFToken": self.token, **next(self.headers)}
        READ.clear()
        self.sent += 1
        try:
            if method == "GET":
                response = self.client.get(url, query_string=params, headers=headers)
            else:
                response = self.client.open(
                    url,
                    method=method,
                    data={"csrf_token": self.token, **params},
                    headers=headers,
                    content_type="multipart/form-data",
                )
        except Exception as error:  # TESTING propagates what would have been a 500
            self.failures.append(f"{error!r}: {self.where(method, url, params, headers)}")
            return None, {k for k in READ if isinstance(k, str)}
        self.check(method, url, params, headers, response)
        response.close()  # a file response holds its file open until closed
        read = {k for k in READ if isinstance(k, str)} - {"csrf_token"}
        return response, read

    def where(self, method: str, url: str, params: dict[str, str], headers: dict[str, str]) -> str:
        role = self.role.value if self.role else "anonymous"
        values = set(params.values())
        if len(params) > 1 and len(values) == 1:
            sent = f"every name of BROAD = {values.pop()!r}"
        else:
            sent = repr(params) if params else "no parameters"
        kind = {0: "", 1: " (htmx)", 2: " (boosted)"}[len(headers) - 1]
        return f"{method} {url}{kind} as {role} with {sent}"

    def check(
        self, method: str, url: str, params: dict[str, str], headers: dict[str, str], r: Any
    ) -> None:
        where = self.where(method, url, params, headers)
        body = r.get_data()
        document = body.lstrip()[:15].lower().startswith(b"<!doctype html")
        htmx = headers.get("HX-Request") == "true"
        boosted = headers.get("HX-Boosted") == "true"
        if r.status_code >= 500:
            self.failures.append(f"{r.status_code}: {where}")
        elif htmx and not boosted and 300 <= r.status_code < 400 and r.status_code != 304:
            self.failures.append(f"redirect {r.status_code} for htmx to follow: {where}")
        elif htmx and document and r.headers.get("HX-Retarget") != "body":
            self.failures.append(f"whole page into a fragment target: {where}")
        elif r.status_code >= 400 and not body.strip() and "HX-Redirect" not in r.headers:
            self.failures.append(f"{r.status_code} without a sentence: {where}")


def refused_by_guard(response: Any) -> bool:
    """The role may not open the area at all: nothing behind the guard was reached."""
    if response.status_code == 403:
        return True
    location = response.headers.get("HX-Redirect") or response.headers.get("Location") or ""
    return response.status_code in (302, 401) and "login?next=" in location


def walk_rule(walk: Walk, rule: Any, method: str, values: dict[str, str]) -> None:
    for url, real in urls(rule, values):
        baseline, read = walk.send(method, url, {})
        if baseline is not None and refused_by_guard(baseline):
            return  # the same guard answers for every URL of this rule
        if not real:
            continue
        for value in GARBAGE:
            _, more = walk.send(method, url, dict.fromkeys(BROAD, value))
            read |= more
        pending = sorted(read | set(UPLOAD_FIELDS.get(rule.endpoint, ())))
        done: set[str] = set()
        while pending:
            name = pending.pop()
            done.add(name)
            for value in GARBAGE:
                _, more = walk.send(method, url, {name: value})
                pending.extend(sorted(more - done - set(pending)))


@pytest.mark.parametrize("role", [*HOME, None], ids=lambda r: r.value if r else "anonymous")
def test_no_route_answers_5xx_to_garbage(app: Flask, world: World, role: Role | None) -> None:
    app.request_class = RecordingRequest
    client = app.test_client()
    person = world.people.get(role) if role else None
    portal = role is Role.CUSTOMER

    def start() -> str:
        if person is not None:
            assert sign_in(client, person, portal=portal).status_code == 302
        return csrf_from(client.get(HOME[role] if person else "/login").get_data(True))

    walk = Walk(client, start(), role)
    rules = sorted(app.url_map.iter_rules(), key=lambda r: (r.endpoint in SESSION_ENDING, r.rule))
    for rule in rules:
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            walk_rule(walk, rule, method, world.values)
            if person is not None and client.get(HOME[role]).status_code != 200:
                walk.token = start()  # signed out by what was just walked: sign in again
    assert not walk.failures, f"{len(walk.failures)} of {walk.sent} answers:\n" + "\n".join(
        walk.failures[:60]
    )
    assert walk.sent > 200
