"""Ticket side panels over HTTP: tasks, links, merge, recipients; and the agent's task list."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from app.actor import Actor
from app.extensions import db
from app.models import AuditLog, EntryKind, Role, Status, StreamEntry, Ticket, User
from app.models.files import VaultFile, VaultLink
from app.models.tickets import LinkKind, RecipientKind, Task, TicketLink, TicketRecipient
from app.models.types import utcnow
from app.tickets import recipients as recipient_rules
from app.tickets.merge import merge_ticket
from app.tickets.tasks import parse_local_due
from tests import factories
from tests.conftest import Person, csrf_from, sign_in

HX = {"HX-Request": "true"}
ARTIFACTS = Path(__file__).parent / "artifacts"


# --- helpers ---------------------------------------------------------------------------------


def new_ticket(app: Flask, subject: str = "Printer on fire", **kwargs: Any) -> str:
    with app.app_context():
        t = factories.ticket(subject, **kwargs)
        db.session.commit()
        return t.number


def agent_in(client: FlaskClient, make_user: Callable[..., Person], *roles: Role) -> Person:
    person = make_user(*(roles or (Role.AGENT,)))
    assert sign_in(client, person).status_code == 302
    return person


def token(client: FlaskClient) -> str:
    return csrf_from(client.get("/agent/tasks").get_data(as_text=True))


def post(
    client: FlaskClient, url: str, data: dict[str, Any] | None = None, *, htmx: bool = False
) -> Any:
    body = {"csrf_token": token(client), **(data or {})}
    return client.post(url, data=body, headers=HX if htmx else {})


def entries(app: Flask, number: str) -> list[StreamEntry]:
    with app.app_context():
        t = db.session.scalar(select(Ticket).where(Ticket.number == number))
        rows = list(t.entries)
        for row in rows:
            db.session.expunge(row)
        return rows


def audits(app: Flask, action: str) -> list[AuditLog]:
    with app.app_context():
        rows = list(db.session.scalars(select(AuditLog).where(AuditLog.action == action)))
        for row in rows:
            db.session.expunge(row)
        return rows


def ticket_id(app: Flask, number: str) -> int:
    with app.app_context():
        return db.session.scalar(select(Ticket.id).where(Ticket.number == number))


# --- permissions and CSRF --------------------------------------------------------------------

COMPONENT_URLS = [
    "/agent/tickets/{n}/tasks",
    "/agent/tickets/{n}/links",
    "/agent/tickets/{n}/recipients",
]


@pytest.mark.parametrize("role", [Role.CUSTOMER, Role.COMPLIANCE])
def test_customers_and_compliance_only_users_are_refused(
    role: Role, app: Flask, client: FlaskClient, make_user: Any
) -> None:
    number = new_ticket(app)
    sign_in(client, make_user(role), portal=role is Role.CUSTOMER)
    for url in [*COMPONENT_URLS, "/agent/tasks"]:
        assert client.get(url.format(n=number)).status_code == 403
    home = "/portal/" if role is Role.CUSTOMER else "/compliance/"
    valid = csrf_from(client.get(home).get_data(as_text=True))  # so the role guard decides
    for url in [*COMPONENT_URLS, "/agent/tickets/{n}/merge", "/agent/tickets/{n}/subscribers"]:
        data = {"csrf_token": valid, "title": "x", "target": number, "confirm": "yes"}
        assert client.post(url.format(n=number), data=data).status_code == 403
        assert client.post(url.format(n=number), data=data, headers=HX).status_code == 403
    with app.app_context():
        assert db.session.scalar(select(Task)) is None


def test_anonymous_visitors_are_sent_to_sign_in(app: Flask, client: FlaskClient) -> None:
    number = new_ticket(app)
    for url in [*COMPONENT_URLS, "/agent/tasks"]:
        response = client.get(url.format(n=number))
        assert response.status_code == 302
        assert response.headers["Location"].startswith("/login?next=")
    htmx = client.get(COMPONENT_URLS[0].format(n=number), headers=HX)
    assert htmx.status_code == 401 and htmx.headers["HX-Redirect"].startswith("/login")


def test_supervisors_may_use_the_panels(app: Flask, client: FlaskClient, make_user: Any) -> None:
    number = new_ticket(app)
    agent_in(client, make_user, Role.SUPERVISOR)
    for url in COMPONENT_URLS:
        assert client.get(url.format(n=number)).status_code == 200


def test_unknown_ticket_is_404(app: Flask, client: FlaskClient, make_user: Any) -> None:
    agent_in(client, make_user)
    for url in COMPONENT_URLS:
        assert client.get(url.format(n="T-999999")).status_code == 404
    assert post(client, "/agent/tickets/T-999999/tasks", {"title": "x"}).status_code == 404


def test_posts_without_csrf_token_are_refused(
    app: Flask, client: FlaskClient, make_user: Any
) -> None:
    number = new_ticket(app)
    me = agent_in(client, make_user)
    for url, data in [
        (f"/agent/tickets/{number}/tasks", {"title": "Call back", "assignee_id": me.id}),
        (f"/agent/tickets/{number}/recipients", {"kind": "cc", "address": "a@b.example"}),
        (f"/agent/tickets/{number}/links", {"other": number}),
        (f"/agent/tickets/{number}/subscribers", {}),
        (f"/agent/tickets/{number}/merge", {"target": number, "confirm": "yes"}),
    ]:
        assert client.post(url, data=data).status_code == 400
        assert client.post(url, data=data, headers=HX).status_code == 400
    with app.app_context():
        assert db.session.scalar(select(Task)) is None


# --- components load themselves ---------------------------------------------------------------


def test_included_with_only_the_ticket_a_component_is_a_self_loading_placeholder(
    app: Flask, client: FlaskClient, make_user: Any
) -> None:
    number = new_ticket(app)
    agent_in(client, make_user)
    with app.test_request_context(), app.app_context():
        from flask import render_template

        t = db.session.scalar(select(Ticket).where(Ticket.number == number))
        for name, element_id, endpoint in [
            ("_tasks", "ticket-tasks", "tasks"),
            ("_links", "ticket-links", "links"),
            ("_recipients", "ticket-recipients", "recipients"),
        ]:
            html = render_template(f"agent/{name}.html", ticket=t)
            assert f'id="{element_id}"' in html
            assert f'hx-get="/agent/tickets/{number}/{endpoint}"' in html
            assert 'hx-trigger="load"' in html
            assert f'href="/agent/tickets/{number}/{endpoint}"' in html  # plain fallback
            assert "<html" not in html


def test_component_get_is_a_fragment_for_htmx_and_a_page_otherwise(
    app: Flask, client: FlaskClient, make_user: Any
) -> None:
    number = new_ticket(app)
    agent_in(client, make_user)
    for url, element_id in zip(
        COMPONENT_URLS, ["ticket-tasks", "ticket-links", "ticket-recipients"], strict=True
    ):
        page = client.get(url.format(n=number))
        html = page.get_data(as_text=True)
        assert "<html" in html and f'id="{element_id}"' in html
        assert f'href="/agent/tickets/{number}"' in html  # back to the ticket
        fragment = client.get(url.format(n=number), headers=HX)
        body = fragment.get_data(as_text=True)
        assert "<html" not in body
        assert body.strip().startswith(f'<section id="{element_id}"')
        assert 'hx-target="this" hx-swap="outerHTML"' in body
        assert "HX-Request" in fragment.headers["Vary"]


# --- tasks ----------------------------------------------------------------------------------


def test_task_due_time_is_read_in_the_agents_zone_and_stored_utc(
    app: Flask, client: FlaskClient, make_user: Any
) -> None:
    number = new_ticket(app)
    me = agent_in(client, make_user)
    with app.app_context():
        db.session.get(User, me.id).timezone = "America/New_York"
        db.session.commit()
    response = post(
        client,
        f"/agent/tickets/{number}/tasks",
        {"title": "Call the customer back", "assignee_id": me.id, "due": "2030-01-15T09:30"},
    )
    assert response.status_code == 303
    assert response.headers["Location"] == f"/agent/tickets/{number}"
    with app.app_context():
        task = db.session.scalar(select(Task))
        assert task.due_at == datetime(2030, 1, 15, 14, 30, tzinfo=UTC)  # EST is UTC-5
        assert task.assignee_id == me.id and task.created_by_id == me.id


def test_parse_local_due_handles_dates_summer_time_and_garbage() -> None:
    berlin_summer = parse_local_due("2030-07-01T12:00", "Europe/Berlin")
    assert berlin_summer == datetime(2030, 7, 1, 10, 0, tzinfo=UTC)
    assert parse_local_due("2030-07-01", "UTC") == datetime(2030, 7, 1, 23, 59, tzinfo=UTC)
    assert parse_local_due("", "UTC") is None
    from app.errors import InvalidInput

    with pytest.raises(InvalidInput, match="not a date"):
        parse_local_due("next tuesday", "UTC")


def test_task_lifecycle_over_htmx_writes_entries_and_audit(
    app: Flask, client: FlaskClient, make_user: Any
) -> None:
    number = new_ticket(app)
    me = agent_in(client, make_user)
    before = len(entries(app, number))
    created = post(
        client,
        f"/agent/tickets/{number}/tasks",
        {"title": "Order a spare disk", "assignee_id": me.id},
        htmx=True,
    )
    assert created.status_code == 200
    html = created.get_data(as_text=True)
    assert html.strip().startswith('<section id="ticket-tasks"') and "Order a spare disk" in html
    with app.app_context():
        task_id = db.session.scalar(select(Task.id))

    done = post(client, f"/agent/tickets/{number}/tasks/{task_id}/done", {"done": "1"}, htmx=True)
    assert done.status_code == 200 and "Reopen" in done.get_data(as_text=True)
    again = post(client, f"/agent/tickets/{number}/tasks/{task_id}/done", {"done": "1"}, htmx=True)
    assert again.status_code == 422 and "already done" in again.get_data(as_text=True)
    reopened = post(client, f"/agent/tickets/{number}/tasks/{task_id}/done", {"done": "0"})
    assert reopened.status_code == 303
    deleted = post(client, f"/agent/tickets/{number}/tasks/{task_id}/delete", htmx=True)
    assert deleted.status_code == 200
    assert "Order a spare disk" not in deleted.get_data(as_text=True)

    new = entries(app, number)[before:]
    assert [e.kind for e in new] == [EntryKind.SYSTEM.value] * 4
    assert all(e.is_internal and e.author_id == me.id for e in new)
    assert [e.body_text.split(":")[0] for e in new] == [
        "Task added",
        "Task done",
        "Task reopened",
        "Task deleted",
    ]
    for action in ("task.create", "task.done", "task.reopen", "task.delete"):
        rows = audits(app, action)
        assert len(rows) == 1 and rows[0].actor_id == me.id
        assert rows[0].ticket_id == ticket_id(app, number)
    with app.app_context():
        assert db.session.scalar(select(Task)) is None


def test_task_validation_is_shown_in_the_component_with_422(
    app: Flask, client: FlaskClient, make_user: Any
) -> None:
    number = new_ticket(app)
    me = agent_in(client, make_user)
    customer = make_user(Role.CUSTOMER)
    url = f"/agent/tickets/{number}/tasks"
    cases = [
        ({"title": "  ", "assignee_id": me.id}, "A task needs a title."),
        ({"title": "Call", "assignee_id": customer.id}, "active agent or supervisor"),
        ({"title": "Call", "assignee_id": me.id, "due": "soon"}, "is not a date"),
    ]
    for data, message in cases:
        for htmx in (True, False):
            response = post(client, url, data, htmx=htmx)
            assert response.status_code == 422
            html = response.get_data(as_text=True)
            assert message in html and 'id="ticket-tasks"' in html
            assert ("<html" in html) is not htmx
    # What was typed survives the refusal.
    kept = post(client, url, {"title": "Call", "assignee_id": me.id, "due": "soon"}, htmx=True)
    assert 'value="Call"' in kept.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(Task)) is None
    assert audits(app, "task.create") == []


def test_another_tickets_task_is_404(app: Flask, client: FlaskClient, make_user: Any) -> None:
    first, second = new_ticket(app), new_ticket(app)
    me = agent_in(client, make_user)
    post(client, f"/agent/tickets/{first}/tasks", {"title": "Mine", "assignee_id": me.id})
    with app.app_context():
        task_id = db.session.scalar(select(Task.id))
    assert post(client, f"/agent/tickets/{second}/tasks/{task_id}/done").status_code == 404
    assert post(client, f"/agent/tickets/{second}/tasks/{task_id}/delete").status_code == 404


def test_my_task_list_shows_only_my_open_tasks_overdue_first(
    app: Flask, client: FlaskClient, make_user: Any
) -> None:
    number = new_ticket(app, "Server room flooded")
    me = agent_in(client, make_user)
    colleague = make_user(Role.AGENT)
    now = utcnow()
    with app.app_context():
        t = db.session.scalar(select(Ticket).where(Ticket.number == number))
        db.session.add_all(
            [
                Task(
                    ticket=t, title="Later task", assignee_id=me.id, due_at=now + timedelta(days=3)
                ),
                Task(ticket=t, title="Undated task", assignee_id=me.id),
                Task(
                    ticket=t,
                    title="Overdue task",
                    assignee_id=me.id,
                    due_at=now - timedelta(hours=2),
                ),
                Task(
                    ticket=t,
                    title="Very overdue",
                    assignee_id=me.id,
                    due_at=now - timedelta(days=2),
                ),
                Task(ticket=t, title="Finished task", assignee_id=me.id, done_at=now),
                Task(ticket=t, title="Colleague task", assignee_id=colleague.id),
            ]
        )
        db.session.commit()
    page = client.get("/agent/tasks")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Colleague task" not in html
    open_part, _, done_part = html.partition("<details")
    order = ["Very overdue", "Overdue task", "Later task", "Undated task"]
    positions = [open_part.index(title) for title in order]
    assert positions == sorted(positions)
    assert "Finished task" not in open_part and "Finished task" in done_part
    assert "2 overdue" in html
    assert f'href="/agent/tickets/{number}"' in open_part

    # Marking done from the list returns to the list.
    with app.app_context():
        task_id = db.session.scalar(select(Task.id).where(Task.title == "Later task"))
    response = post(
        client,
        f"/agent/tickets/{number}/tasks/{task_id}/done",
        {"done": "1", "next": "tasks"},
    )
    assert response.status_code == 303 and response.headers["Location"] == "/agent/tasks"
    open_part = client.get("/agent/tasks").get_data(as_text=True).partition("<details")[0]
    assert "Later task" not in open_part


# --- links ----------------------------------------------------------------------------------


def test_link_and_unlink_both_ways(app: Flask, client: FlaskClient, make_user: Any) -> None:
    parent, child = new_ticket(app, "Outage"), new_ticket(app, "Cannot log in")
    me = agent_in(client, make_user)
    linked = post(
        client, f"/agent/tickets/{parent}/links", {"other": child.lower(), "kind": "parent"}
    )
    assert linked.status_code == 303
    assert linked.headers["Location"] == f"/agent/tickets/{parent}"
    from_child = client.get(f"/agent/tickets/{child}/links", headers=HX).get_data(as_text=True)
    assert "child of" in from_child and parent in from_child
    from_parent = client.get(f"/agent/tickets/{parent}/links", headers=HX).get_data(as_text=True)
    assert "parent of" in from_parent and child in from_parent
    for number, other in ((parent, child), (child, parent)):
        last = entries(app, number)[-1]
        assert last.kind == EntryKind.LINK.value and last.data["linked"] == other
    assert len(audits(app, "ticket.link")) == 1

    # Unlinking from the other end, over htmx.
    removed = post(client, f"/agent/tickets/{child}/links/{parent}/delete", htmx=True)
    assert removed.status_code == 200
    assert parent not in removed.get_data(as_text=True).split("Not linked")[0].split("</h2>")[1]
    with app.app_context():
        assert db.session.scalar(select(TicketLink)) is None
    rows = audits(app, "ticket.unlink")
    assert len(rows) == 1 and rows[0].actor_id == me.id
    assert entries(app, parent)[-1].data == {"unlinked": child}


@pytest.mark.parametrize(
    ("other", "message"),
    [
        ("T-999999", "There is no ticket T-999999."),
        ("", "Enter a ticket number."),
        ("SELF", "A ticket cannot be linked to itself."),
    ],
)
def test_link_refusals_are_shown_in_the_component(
    other: str, message: str, app: Flask, client: FlaskClient, make_user: Any
) -> None:
    number = new_ticket(app)
    agent_in(client, make_user)
    other = number if other == "SELF" else other
    for htmx in (True, False):
        response = post(
            client, f"/agent/tickets/{number}/links", {"other": other, "kind": "related"}, htmx=htmx
        )
        assert response.status_code == 422
        html = response.get_data(as_text=True)
        assert message in html and 'id="ticket-links"' in html
    assert audits(app, "ticket.link") == []


def test_linking_twice_and_unlinking_what_is_not_linked_are_refused(
    app: Flask, client: FlaskClient, make_user: Any
) -> None:
    a, b = new_ticket(app), new_ticket(app)
    agent_in(client, make_user)
    post(client, f"/agent/tickets/{a}/links", {"other": b, "kind": "related"})
    twice = post(client, f"/agent/tickets/{b}/links", {"other": a, "kind": "duplicate"}, htmx=True)
    assert twice.status_code == 422 and "already linked" in twice.get_data(as_text=True)
    post(client, f"/agent/tickets/{a}/links/{b}/delete")
    again = post(client, f"/agent/tickets/{a}/links/{b}/delete", htmx=True)
    assert again.status_code == 422 and "is not linked" in again.get_data(as_text=True)


# --- merge ----------------------------------------------------------------------------------


def _merge_fixture(app: Flask, agent_id: int) -> tuple[str, str, list[int]]:
    """A target and a duplicate whose entries interleave in time, with a file on one."""
    with app.app_context():
        agent = db.session.get(User, agent_id)
        base = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
        target = factories.ticket("VPN broken", tags=["vpn"])
        duplicate = factories.ticket("VPN down again", tags=["vpn", "urgent-customer"])
        db.session.flush()
        target.entries[0].created_at = base
        duplicate.entries[0].created_at = base + timedelta(hours=1)
        late = StreamEntry(
            ticket=duplicate,
            kind=EntryKind.MAIL_IN.value,
            visibility="external",
            body_text="Still down.",
            created_at=base + timedelta(hours=3),
        )
        middle = StreamEntry(
            ticket=target,
            kind=EntryKind.NOTE.value,
            visibility="internal",
            body_text="Looking.",
            created_at=base + timedelta(hours=2),
        )
        db.session.add_all([middle, late])
        db.session.flush()
        file = VaultFile(
            blob_id="b" * 32,
            original_name="log.txt",
            display_name="log.txt",
            size=3,
            mime_type="text/plain",
            sha256="0" * 64,
            uploaded_by_label="customer",
            ticket_id=duplicate.id,
            entry_id=late.id,
        )
        db.session.add(file)
        db.session.flush()
        db.session.add(
            VaultLink(
                id="l" * 43,
                file_id=file.id,
                ticket_id=duplicate.id,
                expires_at=base + timedelta(days=30),
            )
        )
        duplicate.recipients.append(
            TicketRecipient(kind=RecipientKind.CC.value, address="boss@acme.test")
        )
        recipient_rules.subscribe(duplicate, agent)
        moved_ids = [e.id for e in duplicate.entries]
        db.session.commit()
        return duplicate.number, target.number, moved_ids


def test_merge_moves_entries_files_people_and_closes_the_duplicate(
    app: Flask, client: FlaskClient, make_user: Any
) -> None:
    me = agent_in(client, make_user)
    duplicate, target, moved_ids = _merge_fixture(app, me.id)
    response = post(
        client, f"/agent/tickets/{duplicate}/merge", {"target": target.lower(), "confirm": "yes"}
    )
    assert response.status_code == 303
    assert response.headers["Location"] == f"/agent/tickets/{target}"

    with app.app_context():
        dup = db.session.scalar(select(Ticket).where(Ticket.number == duplicate))
        tgt = db.session.scalar(select(Ticket).where(Ticket.number == target))
        # Entries moved with their times; the stream reads in time order.
        moved = [db.session.get(StreamEntry, i) for i in moved_ids]
        assert all(e.ticket_id == tgt.id for e in moved)
        times = [e.created_at for e in tgt.entries]
        assert times == sorted(times)
        texts = [e.body_text for e in tgt.entries]
        assert texts.index("Looking.") < texts.index("Still down.")
        # Files and their links follow their entries.
        file = db.session.scalar(select(VaultFile))
        assert file.ticket_id == tgt.id
        assert db.session.scalar(select(VaultLink)).ticket_id == tgt.id
        # Tags, recipients and subscribers merged without duplicates.
        assert [t.name for t in tgt.tags] == ["urgent-customer", "vpn"]
        addresses = [r.address for r in tgt.recipients]
        assert "boss@acme.test" in addresses and len(addresses) == len(set(addresses))
        assert me.id in [u.id for u in tgt.subscribers]
        # A duplicate link from the duplicate to the target.
        link = db.session.scalar(select(TicketLink))
        assert (link.source_id, link.target_id, link.kind) == (
            dup.id,
            tgt.id,
            LinkKind.DUPLICATE.value,
        )
        # The duplicate: notice, closed; the target: notice with the count.
        assert dup.status == Status.CLOSED.value
        dup_kinds = [(e.kind, e.body_text) for e in dup.entries]
        assert (EntryKind.SYSTEM.value, f"Merged into {target}.") in dup_kinds
        assert dup_kinds[-1][0] == EntryKind.STATUS_CHANGE.value
        notice = tgt.entries[-1]
        assert notice.kind == EntryKind.SYSTEM.value and notice.is_internal
        assert (
            notice.body_text == f"{duplicate} merged into this ticket ({len(moved_ids)} entries)."
        )
    rows = audits(app, "ticket.merge")
    assert len(rows) == 1 and rows[0].details["into"] == target


def test_merge_over_htmx_redirects_the_browser(
    app: Flask, client: FlaskClient, make_user: Any
) -> None:
    duplicate, target = new_ticket(app), new_ticket(app)
    agent_in(client, make_user)
    response = post(
        client, f"/agent/tickets/{duplicate}/merge", {"target": target, "confirm": "on"}, htmx=True
    )
    assert response.status_code == 200
    assert response.headers["HX-Redirect"] == f"/agent/tickets/{target}"


def test_merge_refusals(app: Flask, client: FlaskClient, make_user: Any) -> None:
    a, b, c = new_ticket(app), new_ticket(app), new_ticket(app)
    agent_in(client, make_user)
    url = f"/agent/tickets/{a}/merge"
    cases = [
        ({"target": b}, "Tick the box to confirm"),
        ({"target": a, "confirm": "yes"}, "cannot be merged into itself"),
        ({"target": "T-999999", "confirm": "yes"}, "There is no ticket T-999999."),
    ]
    for data, message in cases:
        response = post(client, url, data, htmx=True)
        assert response.status_code == 422
        html = response.get_data(as_text=True)
        assert message in html and 'id="ticket-links"' in html
    assert audits(app, "ticket.merge") == []

    # b is merged away into c: nothing can be merged into b, and b cannot be merged again.
    assert (
        post(client, f"/agent/tickets/{b}/merge", {"target": c, "confirm": "yes"}).status_code
        == 303
    )
    into_merged = post(client, url, {"target": b, "confirm": "yes"})
    assert into_merged.status_code == 422
    assert f"{b} was itself merged into {c}" in into_merged.get_data(as_text=True)
    merged_again = post(client, f"/agent/tickets/{b}/merge", {"target": a, "confirm": "yes"})
    assert merged_again.status_code == 422
    assert "already merged" in merged_again.get_data(as_text=True)
    assert len(audits(app, "ticket.merge")) == 1
    with app.app_context():
        assert db.session.scalar(select(Ticket.status).where(Ticket.number == a)) == "new"


def test_merging_a_closed_ticket_leaves_it_closed(ctx: None) -> None:
    agent = Actor.staff(factories.staff_user())
    duplicate, target = factories.ticket(), factories.ticket()
    duplicate.status = Status.CLOSED.value
    db.session.flush()
    moved = merge_ticket(duplicate, target, agent)
    db.session.commit()
    assert moved == 1
    assert duplicate.status == Status.CLOSED.value
    # Only what the merge itself wrote: the link and the notice, no status change.
    assert [e.kind for e in duplicate.entries] == [EntryKind.LINK.value, EntryKind.SYSTEM.value]


def test_merge_turns_an_existing_link_into_a_duplicate_link(ctx: None) -> None:
    from app.tickets import link_tickets

    agent = Actor.staff(factories.staff_user())
    duplicate, target = factories.ticket(), factories.ticket()
    link_tickets(target, duplicate, agent, LinkKind.RELATED)
    db.session.flush()
    merge_ticket(duplicate, target, agent)
    db.session.commit()
    links = db.session.scalars(select(TicketLink)).all()
    assert len(links) == 1
    assert (links[0].source_id, links[0].target_id, links[0].kind) == (
        duplicate.id,
        target.id,
        "duplicate",
    )


# --- recipients -----------------------------------------------------------------------------


def test_recipients_add_and_remove(app: Flask, client: FlaskClient, make_user: Any) -> None:
    number = new_ticket(app)
    me = agent_in(client, make_user)
    url = f"/agent/tickets/{number}/recipients"
    added = post(
        client, url, {"kind": "cc", "address": " Boss@Acme.TEST ", "name": "The\r\nBoss"}, htmx=True
    )
    assert added.status_code == 200
    html = added.get_data(as_text=True)
    assert html.strip().startswith('<section id="ticket-recipients"') and "boss@acme.test" in html
    with app.app_context():
        row = db.session.scalar(
            select(TicketRecipient).where(TicketRecipient.address == "boss@acme.test")
        )
        assert (row.kind, row.name) == ("cc", "The Boss")
        rid = row.id
    entry = entries(app, number)[-1]
    assert entry.kind == EntryKind.SYSTEM.value and entry.is_internal
    assert entry.data == {"recipient_added": "boss@acme.test", "kind": "cc"}
    assert audits(app, "ticket.recipient_add")[0].actor_id == me.id

    removed = post(client, f"/agent/tickets/{number}/recipients/{rid}/delete")
    assert removed.status_code == 303 and removed.headers["Location"] == f"/agent/tickets/{number}"
    with app.app_context():
        assert db.session.get(TicketRecipient, rid) is None
    assert entries(app, number)[-1].data == {"recipient_removed": "boss@acme.test", "kind": "cc"}
    assert len(audits(app, "ticket.recipient_remove")) == 1


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"kind": "cc", "address": "not an address"}, "is not an email address"),
        ({"kind": "cc", "address": "a@b"}, "is not an email address"),
        ({"kind": "cc", "address": "x@y.test\r\nBcc: evil@z.test"}, "is not an email address"),
        ({"kind": "cc", "address": ""}, "Enter an email address."),
        ({"kind": "from", "address": "ok@acme.test"}, "Choose To, Cc or Bcc."),
        ({"kind": "bcc", "address": "CUSTOMER"}, "is already a recipient (To)"),
    ],
)
def test_recipient_validation(
    data: dict[str, str], message: str, app: Flask, client: FlaskClient, make_user: Any
) -> None:
    number = new_ticket(app)
    with app.app_context():
        customer = db.session.scalar(select(Ticket).where(Ticket.number == number)).contact.email
    agent_in(client, make_user)
    if data["address"] == "CUSTOMER":
        data = {**data, "address": customer.upper()}
    response = post(client, f"/agent/tickets/{number}/recipients", data, htmx=True)
    assert response.status_code == 422
    assert message in response.get_data(as_text=True)
    assert audits(app, "ticket.recipient_add") == []


def test_subscribe_myself_a_colleague_and_unsubscribe(
    app: Flask, client: FlaskClient, make_user: Any
) -> None:
    number = new_ticket(app)
    me = agent_in(client, make_user)
    colleague = make_user(Role.SUPERVISOR)
    customer = make_user(Role.CUSTOMER)
    base = f"/agent/tickets/{number}/subscribers"

    mine = post(client, base, htmx=True)
    assert mine.status_code == 200 and "Unsubscribe me" in mine.get_data(as_text=True)
    twice = post(client, base, htmx=True)
    assert twice.status_code == 422 and "already subscribed" in twice.get_data(as_text=True)
    assert post(client, base, {"user_id": colleague.id}).status_code == 303
    for bad, reason in (
        (customer.id, "Only active staff"),
        ("abc", "“abc” is not a valid choice for Colleague."),
        (999_999, "Only active staff"),
        (2**64, "is not a valid choice for Colleague."),
    ):
        refused = post(client, base, {"user_id": bad}, htmx=True)
        assert refused.status_code == 422 and reason in refused.get_data(as_text=True)
    with app.app_context():
        t = db.session.scalar(select(Ticket).where(Ticket.number == number))
        assert {u.id for u in t.subscribers} == {me.id, colleague.id}

    gone = post(client, f"{base}/{me.id}/delete", htmx=True)
    assert gone.status_code == 200 and "Subscribe me" in gone.get_data(as_text=True)
    not_there = post(client, f"{base}/{me.id}/delete", htmx=True)
    assert not_there.status_code == 422
    kinds = [(e.kind, e.data) for e in entries(app, number)[-3:]]
    assert kinds == [
        (EntryKind.SYSTEM.value, {"subscribed": me.email}),
        (EntryKind.SYSTEM.value, {"subscribed": colleague.email}),
        (EntryKind.SYSTEM.value, {"unsubscribed": me.email}),
    ]
    assert len(audits(app, "ticket.subscribe")) == 2
    assert len(audits(app, "ticket.unsubscribe")) == 1


def test_recipients_are_initialised_at_creation(
    app: Flask, client: FlaskClient, make_user: Any
) -> None:
    with app.app_context():
        manager = factories.staff_user()
        t = factories.ticket(assignee=manager)
        db.session.commit()
        number, email, manager_name = t.number, t.contact.email, manager.name
    agent_in(client, make_user)
    html = client.get(f"/agent/tickets/{number}/recipients", headers=HX).get_data(as_text=True)
    assert email in html and manager_name in html


@pytest.mark.parametrize("htmx", [False, True], ids=["plain", "htmx"])
def test_every_action_answers_plain_posts_and_htmx(
    htmx: bool, app: Flask, client: FlaskClient, make_user: Any
) -> None:
    """Plain forms get a 303 to the ticket; htmx gets the same component back."""
    number, other = new_ticket(app), new_ticket(app)
    me = agent_in(client, make_user)
    colleague = make_user(Role.AGENT)
    base = f"/agent/tickets/{number}"

    def act(url: str, data: dict[str, Any] | None, element_id: str) -> None:
        response = post(client, url, data, htmx=htmx)
        if htmx:
            assert response.status_code == 200, response.get_data(as_text=True)[:400]
            assert response.get_data(as_text=True).strip().startswith(f'<section id="{element_id}"')
        else:
            assert response.status_code == 303, response.get_data(as_text=True)[:400]
            assert response.headers["Location"] == base

    act(f"{base}/tasks", {"title": "Check logs", "assignee_id": me.id}, "ticket-tasks")
    with app.app_context():
        task_id = db.session.scalar(select(Task.id))
    act(f"{base}/tasks/{task_id}/done", {"done": "1"}, "ticket-tasks")
    act(f"{base}/tasks/{task_id}/done", {"done": "0"}, "ticket-tasks")
    act(f"{base}/tasks/{task_id}/delete", None, "ticket-tasks")
    act(f"{base}/links", {"other": other, "kind": "related"}, "ticket-links")
    act(f"{base}/links/{other}/delete", None, "ticket-links")
    act(f"{base}/recipients", {"kind": "bcc", "address": "audit@acme.test"}, "ticket-recipients")
    with app.app_context():
        rid = db.session.scalar(
            select(TicketRecipient.id).where(TicketRecipient.address == "audit@acme.test")
        )
    act(f"{base}/recipients/{rid}/delete", None, "ticket-recipients")
    act(f"{base}/subscribers", None, "ticket-recipients")
    act(f"{base}/subscribers", {"user_id": colleague.id}, "ticket-recipients")
    act(f"{base}/subscribers/{colleague.id}/delete", None, "ticket-recipients")
    act(f"{base}/subscribers/{me.id}/delete", None, "ticket-recipients")

    written = [e for e in entries(app, number) if e.author_id == me.id]
    assert len(written) == 12 and all(e.is_internal for e in written)
    assert {e.kind for e in written} == {EntryKind.SYSTEM.value, EntryKind.LINK.value}
    with app.app_context():
        actions = db.session.scalars(
            select(AuditLog.action).where(AuditLog.actor_id == me.id).order_by(AuditLog.id)
        ).all()
    assert [a for a in actions if a != "user.login" and not a.startswith("auth.")] == [
        "task.create",
        "task.done",
        "task.reopen",
        "task.delete",
        "ticket.link",
        "ticket.unlink",
        "ticket.recipient_add",
        "ticket.recipient_remove",
        "ticket.subscribe",
        "ticket.subscribe",
        "ticket.unsubscribe",
        "ticket.unsubscribe",
    ]


@pytest.mark.browser
def test_panels_swap_in_place_in_a_real_browser(
    app: Flask, browser: Any, live_server: str, make_user: Any
) -> None:
    """htmx posts (CSRF header from app.js) swap each panel in place, errors included."""
    number, other = new_ticket(app), new_ticket(app)
    me = make_user(Role.AGENT)
    context = browser.new_context()
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.goto(live_server + "/login")
    page.get_by_label("Email address").fill(me.email)
    page.get_by_label("Password").fill(me.password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(live_server + "/agent/")

    page.goto(f"{live_server}/agent/tickets/{number}/tasks")
    page.get_by_role("textbox", name="Task").fill("Call the customer")
    page.get_by_role("button", name="Add task").click()
    page.locator("#ticket-tasks .task-title").get_by_text("Call the customer").wait_for()
    page.get_by_role("button", name="Mark done: Call the customer").click()
    page.get_by_role("button", name="Reopen: Call the customer").wait_for()
    assert page.url.endswith(f"/agent/tickets/{number}/tasks")  # swapped, not navigated

    page.goto(f"{live_server}/agent/tickets/{number}/links")
    page.get_by_label("Ticket number").fill("T-000001")
    page.get_by_role("button", name="Link", exact=True).click()
    page.locator("#ticket-links .flash-error").get_by_text("There is no ticket").wait_for()
    page.get_by_label("Ticket number").fill(other)
    page.get_by_role("button", name="Link", exact=True).click()
    page.get_by_role("button", name=f"Unlink {other}").wait_for()

    page.goto(f"{live_server}/agent/tickets/{number}/recipients")
    page.get_by_label("Address").fill("boss@acme.test")
    page.get_by_role("button", name="Add recipient").click()
    page.get_by_role("button", name="Remove boss@acme.test").wait_for()
    page.get_by_role("button", name="Subscribe me").click()
    page.get_by_role("button", name="Unsubscribe me").wait_for()
    assert page.locator("#ticket-recipients").count() == 1
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "ticket-side-recipients.png"), full_page=True)
    page.goto(f"{live_server}/agent/tickets/{number}/tasks")
    page.screenshot(path=str(ARTIFACTS / "ticket-side-tasks.png"), full_page=True)
    assert problems == [] or all("422" in p for p in problems), problems
    context.close()
