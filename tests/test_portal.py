"""The customer portal over HTTP: list, new request, conversation, reply, close, rate, files.

The isolation suite is the heart of it: customer A reaches for customer B's ticket by
every URL and form the portal has and gets the same 404 each time, with nothing written.
"""

from __future__ import annotations

import io
import re
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from app.actor import Actor
from app.extensions import db
from app.files.store import store_upload
from app.models.audit import AuditLog
from app.models.files import DownloadEvent, VaultFile
from app.models.people import Contact, Role, User
from app.models.tickets import (
    Category,
    Channel,
    EntryKind,
    Status,
    StreamEntry,
    Ticket,
    TicketLink,
    TicketRating,
)
from app.models.types import utcnow
from app.tickets import add_note, change_status, create_ticket
from app.tickets.stream import add_entry
from tests.conftest import Person, csrf_from, sign_in

HX = {"HX-Request": "true"}


def open_ticket(app: Any, person: Person, subject: str = "Printer on fire") -> str:
    """A portal ticket of ``person``, committed; returns its number."""
    with app.app_context():
        user = db.session.get(User, person.id)
        contact = db.session.get(Contact, person.contact_id)
        ticket = create_ticket(
            Channel.PORTAL,
            Actor.customer(user),
            subject=subject,
            body_text="Help!",
            contact=contact,
        )
        db.session.commit()
        return ticket.number


def staff_says(app: Any, agent: Person, number: str, text: str, *, note: bool = False) -> str:
    """An agent's public reply (or internal note) with one file; returns the file's id."""
    with app.app_context():
        ticket = db.session.scalar(select(Ticket).where(Ticket.number == number))
        actor = Actor.staff(db.session.get(User, agent.id))
        if note:
            entry = add_note(ticket, actor, text)
        else:
            entry = add_entry(ticket, EntryKind.MAIL_OUT, actor, body_text=text)
        db.session.flush()
        name = "secret-note.txt" if note else "answer.txt"
        file = store_upload(io.BytesIO(text.encode()), name, actor, ticket=ticket, entry=entry)
        db.session.commit()
        return file.public_id


def set_status(app: Any, number: str, *statuses: Status, days_ago: int = 0) -> None:
    with app.app_context():
        ticket = db.session.scalar(select(Ticket).where(Ticket.number == number))
        agent = db.session.scalar(select(User).where(User.email == "agent@desk.example"))
        for status in statuses:
            change_status(ticket, status, Actor.staff(agent))
        if days_ago:
            past = utcnow() - timedelta(days=days_ago)
            ticket.resolved_at = ticket.closed_at = past
        db.session.commit()


def ticket_row(app: Any, number: str) -> tuple[str, int, int]:
    with app.app_context():
        t = db.session.scalar(select(Ticket).where(Ticket.number == number))
        count = db.session.scalar(select(func.count()).where(StreamEntry.ticket_id == t.id))
        return t.status, t.version, count


def upload(client: Any, url: str, page_url: str, fields: dict[str, Any], files=(), **kw: Any):  # type: ignore[no-untyped-def]
    token = csrf_from(client.get(page_url).get_data(as_text=True))
    data: dict[str, Any] = {"csrf_token": token, **fields}
    if files:
        data["files"] = [(io.BytesIO(content), name) for content, name in files]
    return client.post(url, data=data, content_type="multipart/form-data", **kw)


@pytest.fixture
def people(app: Any, make_user: Any, client: Any) -> dict[str, Person]:
    a = make_user(Role.CUSTOMER, email="anna@a.example")
    b = make_user(Role.CUSTOMER, email="bert@b.example")
    agent = make_user(Role.AGENT, email="agent@desk.example")
    assert sign_in(client, a, portal=True).status_code == 302
    return {"a": a, "b": b, "agent": agent}


# --- pages ---------------------------------------------------------------------------


def test_list_filters_searches_and_marks_unread(app: Any, client: Any, people: Any) -> None:
    printer = open_ticket(app, people["a"], "Printer on fire")
    vpn = open_ticket(app, people["a"], "VPN drops at noon")
    old = open_ticket(app, people["a"], "Old invoice question")
    set_status(app, old, Status.OPEN, Status.RESOLVED)
    staff_says(app, people["agent"], vpn, "Try the new client.")

    html = client.get("/portal/").get_data(as_text=True)
    assert printer in html and vpn in html and old not in html
    assert "We received your request" in html  # plain words, not "New"
    unread = re.search(r'<li class="portal-ticket unread">.*?</li>', html, re.S)
    assert unread and vpn in unread.group(0) and "New reply" in unread.group(0)
    # Most recently updated first.
    assert html.index(vpn) < html.index(printer)

    closed = client.get("/portal/?state=closed").get_data(as_text=True)
    assert old in closed and printer not in closed and "Solved" in closed
    found = client.get("/portal/?state=all&q=vpn", headers=HX)
    assert found.status_code == 200 and "<html" not in found.get_data(as_text=True)
    assert vpn in found.get_data(as_text=True) and printer not in found.get_data(as_text=True)
    assert "HX-Request" in found.headers["Vary"]

    client.get(f"/portal/tickets/{vpn}")  # opening marks it read
    again = client.get("/portal/").get_data(as_text=True)
    assert 'class="portal-ticket unread"' not in again


def test_new_request_with_a_file_lands_in_the_inbox(app: Any, client: Any, people: Any) -> None:
    with app.app_context():
        db.session.add_all([Category(name="Billing"), Category(name="Retired", active=False)])
        db.session.commit()
        billing = db.session.scalar(select(Category.id).where(Category.name == "Billing"))
    page = client.get("/portal/new").get_data(as_text=True)
    assert "Billing" in page and "Retired" not in page and 'type="file"' in page
    response = upload(
        client,
        "/portal/new",
        "/portal/new",
        {
            "subject": "Invoice is wrong",
            "description": "Line 3 is doubled.",
            "category": str(billing),
            "priority": "high",
        },
        files=[(b"%PDF-1.4 invoice", "invoice.pdf")],
    )
    assert response.status_code == 303
    number = response.headers["Location"].rsplit("/", 1)[1]
    shown = client.get(response.headers["Location"]).get_data(as_text=True)
    assert f"Your request {number} was received" in shown
    assert "Line 3 is doubled." in shown and "invoice.pdf" in shown
    with app.app_context():
        t = db.session.scalar(select(Ticket).where(Ticket.number == number))
        assert t.channel == "portal" and t.in_inbox and t.priority == "high"
        assert t.category_id == billing and t.contact_id == people["a"].contact_id
        (file,) = t.entries[0].attachments
        assert file.ticket_id == t.id and file.display_name == "invoice.pdf"


def test_new_request_needs_subject_and_text_and_stores_nothing_otherwise(
    app: Any, client: Any, people: Any
) -> None:
    response = upload(
        client,
        "/portal/new",
        "/portal/new",
        {"subject": "", "description": ""},
        files=[(b"x" * 100, "a.txt")],
        headers=HX,
    )
    assert response.status_code == 422
    assert 'id="new-ticket-form"' in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(func.count(VaultFile.id))) == 0
        assert db.session.scalar(select(func.count(Ticket.id))) == 0


def test_htmx_new_request_redirects_with_hx_redirect(app: Any, client: Any, people: Any) -> None:
    response = upload(
        client, "/portal/new", "/portal/new", {"subject": "Hi", "description": "Text"}, headers=HX
    )
    assert response.status_code == 204
    assert response.headers["HX-Redirect"].startswith("/portal/tickets/T-")


def test_conversation_shows_public_entries_only_and_files_of_them(
    app: Any, client: Any, people: Any
) -> None:
    number = open_ticket(app, people["a"])
    public_file = staff_says(app, people["agent"], number, "Unplug it, please.")
    secret_file = staff_says(app, people["agent"], number, "Customer is clueless", note=True)
    set_status(app, number, Status.OPEN)  # an internal status entry
    html = client.get(f"/portal/tickets/{number}").get_data(as_text=True)
    assert "Help!" in html and "Unplug it, please." in html
    assert "clueless" not in html and "secret-note.txt" not in html
    assert "Status changed" not in html
    # The customer's message on the right, the desk's on the left, oldest first.
    assert html.index("bubble-mine") < html.index("bubble-desk")
    assert html.index("Help!") < html.index("Unplug it")

    served = client.get(f"/portal/tickets/{number}/files/{public_file}")
    assert served.status_code == 200 and served.data == b"Unplug it, please."
    assert client.get(f"/portal/tickets/{number}/files/{secret_file}").status_code == 404
    with app.app_context():
        events = db.session.scalars(select(DownloadEvent)).all()
        assert [(e.outcome, e.user_id) for e in events] == [("served", people["a"].id)]


def test_live_poll_answers_304_until_the_agent_replies(app: Any, client: Any, people: Any) -> None:
    number = open_ticket(app, people["a"])
    first = client.get(f"/portal/tickets/{number}/messages", headers=HX)
    assert first.status_code == 200 and "<html" not in first.get_data(as_text=True)
    etag = first.headers["ETag"]
    assert 'id="messages"' in first.get_data(as_text=True)
    assert "reply-body" not in first.get_data(as_text=True)  # never the reply box
    same = client.get(f"/portal/tickets/{number}/messages", headers={**HX, "If-None-Match": etag})
    assert same.status_code == 304 and same.data == b""
    staff_says(app, people["agent"], number, "We are on it.")
    changed = client.get(
        f"/portal/tickets/{number}/messages", headers={**HX, "If-None-Match": etag}
    )
    assert changed.status_code == 200 and "We are on it." in changed.get_data(as_text=True)
    assert changed.headers["ETag"] != etag


def test_reply_with_htmx_and_files(app: Any, client: Any, people: Any) -> None:
    number = open_ticket(app, people["a"])
    set_status(app, number, Status.OPEN, Status.PENDING)
    page = f"/portal/tickets/{number}"
    response = upload(
        client,
        f"{page}/reply",
        page,
        {"body": "Here is the log."},
        files=[(b"log line", "log.txt")],
        headers=HX,
    )
    body = response.get_data(as_text=True)
    assert response.status_code == 200 and "<html" not in body
    assert "Your message was sent." in body and "Here is the log." in body and "log.txt" in body
    assert ticket_row(app, number)[0] == "open"  # Pending hands it back to the desk
    with app.app_context():
        t = db.session.scalar(select(Ticket).where(Ticket.number == number))
        assert t.in_inbox and t.entries[-1].kind == "portal_message"
        assert len(t.entries[-1].attachments) == 1


def test_plain_reply_without_javascript_redirects(app: Any, client: Any, people: Any) -> None:
    number = open_ticket(app, people["a"])
    page = f"/portal/tickets/{number}"
    response = upload(client, f"{page}/reply", page, {"body": "Plain form"})
    assert response.status_code == 303 and response.headers["Location"] == page
    assert "Your message was sent." in client.get(page).get_data(as_text=True)
    empty = upload(client, f"{page}/reply", page, {"body": "  "})
    assert empty.status_code == 422


def test_reply_within_the_window_reopens(app: Any, client: Any, people: Any) -> None:
    number = open_ticket(app, people["a"])
    set_status(app, number, Status.OPEN, Status.RESOLVED, Status.CLOSED, days_ago=29)
    page = f"/portal/tickets/{number}"
    upload(client, f"{page}/reply", page, {"body": "It is back."})
    assert ticket_row(app, number)[0] == "open"


def test_reply_after_the_window_opens_a_linked_new_ticket(
    app: Any, client: Any, people: Any
) -> None:
    number = open_ticket(app, people["a"])
    set_status(app, number, Status.OPEN, Status.RESOLVED, days_ago=31)
    page = f"/portal/tickets/{number}"
    assert "will open a new request" in client.get(page).get_data(as_text=True)
    response = upload(client, f"{page}/reply", page, {"body": "Same again."}, headers=HX)
    assert response.status_code == 204
    new_url = response.headers["HX-Redirect"]
    new_number = new_url.rsplit("/", 1)[1]
    assert new_number != number
    shown = client.get(new_url).get_data(as_text=True)
    assert f"we opened {new_number} for this" in shown and "Same again." in shown
    assert ticket_row(app, number)[0] == "resolved"
    with app.app_context():
        link = db.session.scalar(select(TicketLink))
        assert {link.source.number, link.target.number} == {number, new_number}
        assert link.kind == "related"


def test_customer_closes_and_rates_only_when_done(app: Any, client: Any, people: Any) -> None:
    number = open_ticket(app, people["a"])
    page = f"/portal/tickets/{number}"
    html = client.get(page).get_data(as_text=True)
    assert "Close this ticket" in html and "Rate our answer" not in html
    token = csrf_from(html)
    early = client.post(f"{page}/rating", data={"csrf_token": token, "score": "5"})
    assert early.status_code == 409
    with app.app_context():
        assert db.session.scalar(select(func.count(TicketRating.id))) == 0

    closed = client.post(f"{page}/close", data={"csrf_token": token}, headers=HX)
    body = closed.get_data(as_text=True)
    assert closed.status_code == 200 and "The ticket is closed." in body
    assert "Rate our answer" in body and "Close this ticket" not in body
    assert ticket_row(app, number)[0] == "closed"

    rated = client.post(
        f"{page}/rating", data={"csrf_token": token, "score": "4", "comment": "Quick"}, headers=HX
    )
    assert "Your rating: 4 of 5 stars." in rated.get_data(as_text=True)
    changed = client.post(f"{page}/rating", data={"csrf_token": token, "score": "2"})
    assert changed.status_code == 303
    assert "Your rating: 2 of 5 stars." in client.get(page).get_data(as_text=True)
    bad = client.post(f"{page}/rating", data={"csrf_token": token, "score": "9"}, headers=HX)
    assert bad.status_code == 422
    with app.app_context():
        rating = db.session.scalar(select(TicketRating))
        assert (rating.score, rating.contact_id) == (2, people["a"].contact_id)
        actions = db.session.scalars(
            select(AuditLog.action).where(AuditLog.action == "ticket.rating")
        ).all()
        assert len(actions) == 2


def test_pages_need_a_signed_in_customer(app: Any, make_user: Any) -> None:
    anonymous = app.test_client()
    assert anonymous.get("/portal/").status_code == 302
    assert anonymous.get("/portal/new").status_code == 302


def test_pages_carry_lang_and_labels(app: Any, client: Any, people: Any) -> None:
    number = open_ticket(app, people["a"])
    for url in ("/portal/", "/portal/new", f"/portal/tickets/{number}"):
        html = client.get(url).get_data(as_text=True)
        assert '<html lang="en">' in html
        for tag in re.findall(r"<(?:input|textarea|select)\b[^>]*>", html):
            if 'type="hidden"' in tag or 'type="radio"' in tag:
                continue  # radios sit inside their <label>
            field_id = re.search(r'\bid="([^"]+)"', tag)
            assert field_id and f'for="{field_id.group(1)}"' in html, (url, tag)


# --- isolation ---------------------------------------------------------------------------


def _writes(app: Any) -> tuple[int, ...]:
    with app.app_context():
        return tuple(
            db.session.scalar(select(func.count()).select_from(model))
            for model in (StreamEntry, TicketRating, AuditLog, VaultFile, DownloadEvent, Ticket)
        )


def test_customer_a_cannot_reach_customer_b_by_any_door(app: Any, client: Any, people: Any) -> None:
    own = open_ticket(app, people["a"], "Mine")
    theirs = open_ticket(app, people["b"], "Bert's secret")
    file_id = staff_says(app, people["agent"], theirs, "For Bert only")
    set_status(app, theirs, Status.OPEN, Status.RESOLVED)
    token = csrf_from(client.get(f"/portal/tickets/{own}").get_data(as_text=True))
    before = _writes(app)
    version_before = ticket_row(app, theirs)[1]

    base = f"/portal/tickets/{theirs}"
    gets = [
        base,
        f"{base}/messages",
        f"{base}/files/{file_id}",
        f"/portal/tickets/{own}/files/{file_id}",  # B's file through A's own ticket
        "/portal/tickets/T-999999",
        f"{base.lower()}",
    ]
    for url in gets:
        for headers in ({}, HX):
            response = client.get(url, headers=headers)
            assert response.status_code == 404, url
            assert "Bert" not in response.get_data(as_text=True)
    multipart = {"csrf_token": token, "body": "sneaky", "files": (io.BytesIO(b"x"), "x.txt")}
    posts = [
        (f"{base}/reply", multipart, "multipart/form-data"),
        (f"{base}/close", {"csrf_token": token}, None),
        (f"{base}/rating", {"csrf_token": token, "score": "1"}, None),
    ]
    for url, data, content_type in posts:
        for headers in ({}, HX):
            payload = dict(data)
            if "files" in payload:
                payload["files"] = (io.BytesIO(b"x"), "x.txt")
            kwargs = {"content_type": content_type} if content_type else {}
            response = client.post(url, data=payload, headers=headers, **kwargs)
            assert response.status_code == 404, url
    # Nothing was written: no entry, rating, audit row, file, download or ticket.
    assert _writes(app) == before
    assert ticket_row(app, theirs)[1] == version_before
    listing = client.get("/portal/?state=all&q=secret").get_data(as_text=True)
    assert theirs not in listing


def test_account_manager_sees_the_accounts_tickets_only(
    app: Any, client: Any, make_user: Any
) -> None:
    boss = make_user(Role.CUSTOMER, email="boss@a.example")
    colleague = make_user(Role.CUSTOMER, email="colleague@a.example")
    stranger = make_user(Role.CUSTOMER, email="stranger@c.example")
    with app.app_context():
        boss_contact = db.session.get(Contact, boss.contact_id)
        boss_contact.sees_account_tickets = True
        db.session.get(Contact, colleague.contact_id).account_id = boss_contact.account_id
        db.session.commit()
    colleagues = open_ticket(app, colleague, "Colleague's laptop")
    strangers = open_ticket(app, stranger, "Stranger's server")
    assert sign_in(client, boss, portal=True).status_code == 302
    listing = client.get("/portal/?state=all").get_data(as_text=True)
    assert colleagues in listing and strangers not in listing
    assert client.get(f"/portal/tickets/{colleagues}").status_code == 200
    assert client.get(f"/portal/tickets/{strangers}").status_code == 404

    other = app.test_client()
    assert sign_in(other, colleague, portal=True).status_code == 302
    mine_only = other.get("/portal/?state=all").get_data(as_text=True)
    assert colleagues in mine_only
    with app.app_context():
        boss_own = create_ticket(
            Channel.PORTAL,
            Actor.customer(db.session.get(User, boss.id)),
            subject="Boss only",
            body_text="x",
            contact=db.session.get(Contact, boss.contact_id),
        ).number
        db.session.commit()
    assert other.get(f"/portal/tickets/{boss_own}").status_code == 404


# --- real browser ------------------------------------------------------------------------


@pytest.mark.browser
def test_customer_in_chromium_at_360_pixels(
    app: Any, browser: Any, live_server: str, make_user: Any, tmp_path: Any
) -> None:
    from pathlib import Path

    artifacts = Path(__file__).parent / "artifacts"
    artifacts.mkdir(exist_ok=True)
    customer = make_user(Role.CUSTOMER, email="carla@c.example")
    agent = make_user(Role.AGENT, email="agent@desk.example")
    big = tmp_path / "big-log.bin"
    big.write_bytes(bytes(range(256)) * (3 * 1024 * 1024 // 256))

    context = browser.new_context(viewport={"width": 360, "height": 740})
    page = context.new_page()

    def fits() -> None:
        assert page.evaluate("document.documentElement.scrollWidth") <= 360

    page.goto(live_server + "/portal/login")
    page.get_by_label("Email address").fill(customer.email)
    page.get_by_label("Password").fill(customer.password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/portal/")
    fits()
    page.get_by_role("link", name="New request").first.click()
    page.wait_for_url("**/portal/new")
    page.get_by_label("Subject").fill("Scanner jams on page two")
    page.get_by_label("Describe your request").fill("Every second page jams.")
    page.get_by_label("Attach files").set_input_files(str(big))
    fits()
    page.screenshot(path=str(artifacts / "portal-new.png"), full_page=True)
    page.get_by_role("button", name="Send request").click()
    page.wait_for_url("**/portal/tickets/T-*", timeout=20_000)
    page.get_by_text("was received").wait_for()
    number = page.url.rsplit("/", 1)[1]
    page.get_by_role("link", name="big-log.bin").wait_for()
    fits()
    with app.app_context():
        t = db.session.scalar(select(Ticket).where(Ticket.number == number))
        assert t.entries[0].attachments[0].size == 3 * 1024 * 1024

    page.get_by_role("link", name="My tickets").first.click()
    page.get_by_text("Scanner jams on page two").wait_for()
    fits()
    page.screenshot(path=str(artifacts / "portal-list.png"), full_page=True)
    page.get_by_text("Scanner jams on page two").click()
    page.wait_for_url(f"**/portal/tickets/{number}")

    page.get_by_label("Your message").fill("Draft that must survive polling")
    with app.app_context():
        t = db.session.scalar(select(Ticket).where(Ticket.number == number))
        add_entry(
            t,
            EntryKind.MAIL_OUT,
            Actor.staff(db.session.get(User, agent.id)),
            body_text="Please clean the rollers.",
        )
        db.session.commit()
    page.get_by_text("Please clean the rollers.").wait_for(timeout=12_000)
    assert page.get_by_label("Your message").input_value() == "Draft that must survive polling"
    fits()
    page.screenshot(path=str(artifacts / "portal-live.png"), full_page=True)

    page.get_by_label("Your message").fill("Cleaned them, works now.")
    page.get_by_role("button", name="Send", exact=True).click()
    page.get_by_text("Your message was sent.").wait_for()
    page.get_by_text("Cleaned them, works now.").wait_for()
    page.get_by_role("button", name="Close this ticket").click()
    page.get_by_text("The ticket is closed.").wait_for()
    assert ticket_row(app, number)[0] == "closed"
    fits()
    page.screenshot(path=str(artifacts / "portal-closed.png"), full_page=True)
    page.get_by_label("Your message").fill("Sorry, it jams again.")
    page.get_by_role("button", name="Send", exact=True).click()
    page.get_by_text("Sorry, it jams again.").wait_for()
    assert ticket_row(app, number)[0] == "open"
    page.get_by_role("button", name="Close this ticket").wait_for()
    fits()
    page.screenshot(path=str(artifacts / "portal-reopened.png"), full_page=True)
    context.close()
