"""The compliance screens over real HTTP: listing, filtering and revoking vault links,
the download audit, role boundaries and CSRF."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit

import pytest
from sqlalchemy import event, func, select

from app.actor import Actor
from app.extensions import db
from app.files import vault_links
from app.files.store import store_upload
from app.models import AuditLog, Role
from app.models.files import DownloadEvent, DownloadOutcome, VaultFile, VaultLink
from app.models.people import User
from app.models.types import utcnow
from tests import factories
from tests.conftest import csrf_from, sign_in

STRANGER = "stranger@elsewhere.test"
HTMX = {"HX-Request": "true"}


# -- helpers -------------------------------------------------------------------------------


def _issue(ticket: Any, name: str, agent: Any, **kwargs: Any) -> VaultLink:
    file = store_upload(
        io.BytesIO(b"%PDF-1.4 " + name.encode()), name, Actor.system(), ticket=ticket
    )
    return vault_links.issue_link(file, Actor.staff(agent), days=14, **kwargs)


def make_world(app: Any) -> SimpleNamespace:
    """Two tickets of two customers; ticket one also sent a file to a stranger."""
    with app.app_context():
        agent = factories.staff_user(Role.AGENT)
        t1, t2 = factories.ticket("First"), factories.ticket("Second")
        a = _issue(t1, "alpha.pdf", agent, recipient_email=t1.contact.email)
        b = _issue(t1, "beta.pdf", agent, recipient_email=STRANGER)
        c = _issue(t2, "gamma.pdf", agent, recipient_email=t2.contact.email)
        db.session.commit()
        return SimpleNamespace(
            agent_id=agent.id,
            agent_name=agent.name,
            t1=t1.number,
            t2=t2.number,
            contact1=t1.contact.id,
            contact1_email=t1.contact.email,
            contact2=t2.contact.id,
            a=a.id,
            b=b.id,
            c=c.id,
            paths={x.id: urlsplit(vault_links.link_url(x)).path for x in (a, b, c)},
            file_a=a.file.public_id,
        )


def revoked(app: Any) -> set[str]:
    with app.app_context():
        return set(
            db.session.scalars(select(VaultLink.id).where(VaultLink.revoked_at.is_not(None)))
        )


def audit_rows(app: Any, action: str) -> list[AuditLog]:
    with app.app_context():
        rows = list(db.session.scalars(select(AuditLog).where(AuditLog.action == action)))
        db.session.expunge_all()
        return rows


@pytest.fixture
def officer(make_user: Any, client: Any) -> Any:
    person = make_user(Role.COMPLIANCE)
    assert sign_in(client, person).status_code == 302
    return person


def token(client: Any, path: str = "/compliance/links") -> str:
    return csrf_from(client.get(path).get_data(as_text=True))


def post(client: Any, path: str, data: dict[str, str], **kwargs: Any) -> Any:
    return client.post(path, data={"csrf_token": token(client), **data}, **kwargs)


def row_ids(html: str) -> set[str]:
    return set(re.findall(r'<tr id="link-([^"]+)"', html))


# -- screens and roles -----------------------------------------------------------------------


def test_every_screen_renders_for_a_compliance_officer(app: Any, client: Any, officer: Any) -> None:
    w = make_world(app)
    pages = {
        "/compliance/": "Audit log",
        "/compliance/links": "alpha.pdf",
        f"/compliance/links/{w.a}": "Download audit",
        f"/compliance/files/{w.file_a}": "alpha.pdf",
        "/compliance/downloads": "Download audit",
        "/compliance/customers": "Revoke by address",
    }
    for path, text in pages.items():
        response = client.get(path)
        assert response.status_code == 200, path
        body = response.get_data(as_text=True)
        assert text in body, path
        assert 'aria-label="Compliance"' in body, path  # the sub-navigation
        for target in ("/compliance/links", "/compliance/downloads", "/compliance/customers"):
            assert f'href="{target}"' in body
    assert client.get("/compliance/links/no-such-link").status_code == 404
    assert client.get("/compliance/files/" + "0" * 32).status_code == 404


def test_htmx_filters_get_the_fragment_and_history_restores_get_the_page(
    app: Any, client: Any, officer: Any
) -> None:
    make_world(app)
    fragment = client.get("/compliance/links?filename=alpha", headers=HTMX)
    body = fragment.get_data(as_text=True)
    assert body.lstrip().startswith('<div id="link-table">') and "<html" not in body
    assert "HX-Request" in fragment.headers["Vary"]
    restore = client.get(
        "/compliance/links?filename=alpha", headers={**HTMX, "HX-History-Restore-Request": "true"}
    )
    assert "<html" in restore.get_data(as_text=True)
    for path, region in (
        ("/compliance/downloads?outcome=served", "download-table"),
        ("/compliance/customers?q=acme", "customer-table"),
        ("/compliance/?action=link.", "audit-table"),
    ):
        assert (
            client.get(path, headers=HTMX)
            .get_data(as_text=True)
            .lstrip()
            .startswith(f'<div id="{region}">')
        )


def _urls(w: SimpleNamespace) -> tuple[list[str], list[tuple[str, dict[str, str]]]]:
    gets = [
        "/compliance/",
        "/compliance/links",
        f"/compliance/links/{w.a}",
        f"/compliance/files/{w.file_a}",
        "/compliance/downloads",
        "/compliance/customers",
    ]
    reason = {"reason": "testing the guard", "confirm": "REVOKE", "email": STRANGER}
    posts = [
        (f"/compliance/links/{w.a}/revoke", reason),
        ("/compliance/links/revoke-all", reason),
        (f"/compliance/tickets/{w.t1}/revoke-links", reason),
        ("/compliance/tickets/revoke-links", {**reason, "number": w.t1}),
        (f"/compliance/customers/{w.contact1}/revoke-links", reason),
        ("/compliance/revoke-by-address", reason),
    ]
    return gets, posts


@pytest.mark.parametrize("role", [Role.AGENT, Role.SUPERVISOR, Role.ADMIN, Role.CUSTOMER])
def test_other_roles_get_403_everywhere(app: Any, client: Any, make_user: Any, role: Role) -> None:
    w = make_world(app)
    portal = role is Role.CUSTOMER
    assert sign_in(client, make_user(role), portal=portal).status_code == 302
    home = {Role.CUSTOMER: "/portal/", Role.ADMIN: "/admin/"}.get(role, "/agent/")
    csrf = csrf_from(client.get(home).get_data(as_text=True))
    gets, posts = _urls(w)
    for path in gets:
        assert client.get(path).status_code == 403, path
    for path, data in posts:
        # A valid token, so the refusal comes from the role guard and not from CSRF.
        assert client.post(path, data={**data, "csrf_token": csrf}).status_code == 403, path
    assert revoked(app) == set()


def test_anonymous_visitors_are_sent_to_sign_in(app: Any, client: Any) -> None:
    w = make_world(app)
    csrf = csrf_from(client.get("/login").get_data(as_text=True))
    gets, posts = _urls(w)
    for path in gets:
        response = client.get(path)
        assert response.status_code == 302 and response.headers["Location"].startswith(
            "/login?next="
        ), path
    for path, data in posts:
        response = client.post(path, data={**data, "csrf_token": csrf})
        assert response.status_code == 302, path
        assert response.headers["Location"].startswith("/login?next=")
    assert revoked(app) == set()


def test_posts_without_a_csrf_token_are_refused(app: Any, client: Any, officer: Any) -> None:
    w = make_world(app)
    _, posts = _urls(w)
    for path, data in posts:
        response = client.post(path, data=data)
        assert response.status_code == 400, path
        assert "The form has expired" in response.get_data(as_text=True)
    wrong = client.post(
        f"/compliance/links/{w.a}/revoke", data={"reason": "x", "csrf_token": "forged"}
    )
    assert wrong.status_code == 400
    assert revoked(app) == set()


# -- revoking ---------------------------------------------------------------------------------


def assert_gone(client: Any, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 410
    assert "revoked" in response.get_data(as_text=True)


def test_revoke_one_link_with_a_plain_form(app: Any, client: Any, officer: Any) -> None:
    w = make_world(app)
    response = post(
        client,
        f"/compliance/links/{w.a}/revoke",
        {"reason": "sent to the wrong customer", "next": "/compliance/links?state=active"},
    )
    assert response.status_code == 303
    assert response.headers["Location"] == "/compliance/links?state=active"
    assert revoked(app) == {w.a}
    [row] = audit_rows(app, "link.revoke")
    assert row.object_id == w.a and row.actor_id == officer.id
    assert row.details["reason"] == "sent to the wrong customer"
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Link revoked." in page
    assert_gone(client, w.paths[w.a])
    assert client.get(w.paths[w.b]).status_code == 200
    # The revoked row now says who, when and why instead of offering the form.
    listing = client.get("/compliance/links?state=revoked").get_data(as_text=True)
    assert "sent to the wrong customer" in listing and "Revoked" in listing
    assert f'action="/compliance/links/{w.a}/revoke"' not in listing


def test_an_open_redirect_through_next_is_ignored(app: Any, client: Any, officer: Any) -> None:
    w = make_world(app)
    response = post(
        client, f"/compliance/links/{w.a}/revoke", {"reason": "x", "next": "https://evil.test/"}
    )
    assert response.headers["Location"] == f"/compliance/links/{w.a}"


def test_revoke_one_link_with_htmx_swaps_the_row(app: Any, client: Any, officer: Any) -> None:
    w = make_world(app)
    csrf = token(client)
    response = client.post(
        f"/compliance/links/{w.a}/revoke",
        data={"reason": "leaked in a forum"},
        headers={**HTMX, "X-CSRFToken": csrf},
    )
    assert response.status_code == 200
    body = response.get_data(as_text=True)
    assert body.lstrip().startswith(f'<tr id="link-{w.a}"') and "<html" not in body
    assert 'hx-target="this"' in body and 'hx-swap="outerHTML"' in body
    assert "leaked in a forum" in body and "revoked" in body
    assert "<form" not in body
    assert revoked(app) == {w.a}
    # A second click neither changes the reason nor writes a misleading audit row.
    again = client.post(
        f"/compliance/links/{w.a}/revoke",
        data={"reason": "something else"},
        headers={**HTMX, "X-CSRFToken": csrf},
    )
    assert again.status_code == 200 and "leaked in a forum" in again.get_data(as_text=True)
    assert len(audit_rows(app, "link.revoke")) == 1


@pytest.mark.parametrize("reason", ["", "   "])
def test_an_empty_reason_revokes_nothing(app: Any, client: Any, officer: Any, reason: str) -> None:
    w = make_world(app)
    plain = post(client, f"/compliance/links/{w.a}/revoke", {"reason": reason})
    assert plain.status_code == 422
    assert "Say why" in plain.get_data(as_text=True)
    htmx = client.post(
        f"/compliance/links/{w.a}/revoke",
        data={"reason": reason},
        headers={**HTMX, "X-CSRFToken": token(client)},
    )
    assert htmx.status_code == 422 and "Say why" in htmx.get_data(as_text=True)
    for path, data in (
        (f"/compliance/tickets/{w.t1}/revoke-links", {}),
        ("/compliance/tickets/revoke-links", {"number": w.t1}),
        (f"/compliance/customers/{w.contact1}/revoke-links", {}),
        ("/compliance/revoke-by-address", {"email": STRANGER}),
        ("/compliance/links/revoke-all", {"confirm": "REVOKE"}),
    ):
        response = post(client, path, {**data, "reason": reason})
        assert response.status_code == 422, path
        assert "Say why" in response.get_data(as_text=True), path
    assert revoked(app) == set()
    with app.app_context():
        assert (
            db.session.scalars(
                select(AuditLog).where(AuditLog.action.startswith("link.revoke"))
            ).first()
            is None
        )


@pytest.mark.parametrize("path_form", [True, False])
def test_revoke_every_link_of_a_ticket(
    app: Any, client: Any, officer: Any, path_form: bool
) -> None:
    w = make_world(app)
    if path_form:
        response = post(client, f"/compliance/tickets/{w.t1}/revoke-links", {"reason": "breach"})
    else:
        response = post(
            client, "/compliance/tickets/revoke-links", {"reason": "breach", "number": w.t1.lower()}
        )
    assert response.status_code == 303
    assert revoked(app) == {w.a, w.b}
    assert "2 links revoked." in client.get(response.headers["Location"]).get_data(as_text=True)
    [row] = audit_rows(app, "link.revoke_ticket")
    assert row.object_id == w.t1 and row.actor_id == officer.id
    assert row.details["reason"] == "breach" and row.details["count"] == 2
    assert_gone(client, w.paths[w.a])
    assert_gone(client, w.paths[w.b])
    assert client.get(w.paths[w.c]).status_code == 200


def test_revoking_the_links_of_an_unknown_ticket_is_a_404(
    app: Any, client: Any, officer: Any
) -> None:
    make_world(app)
    response = post(client, "/compliance/tickets/T-999999999/revoke-links", {"reason": "x"})
    assert response.status_code == 404
    assert "There is no ticket" in response.get_data(as_text=True)
    field = post(client, "/compliance/tickets/revoke-links", {"reason": "x", "number": "T-1"})
    assert field.status_code == 404
    assert revoked(app) == set()


def test_revoke_every_link_of_a_customer(app: Any, client: Any, officer: Any) -> None:
    w = make_world(app)
    with app.app_context():
        # A link sent to the contact's address from another ticket, not tied to the contact.
        other = factories.ticket("Third")
        agent = db.session.get(User, w.agent_id)
        stray = _issue(other, "delta.pdf", agent, recipient_email=w.contact1_email.upper())
        db.session.commit()
        stray_id = stray.id
    response = post(client, f"/compliance/customers/{w.contact1}/revoke-links", {"reason": "GDPR"})
    assert response.status_code == 303
    assert revoked(app) == {w.a, stray_id}  # beta went to a stranger, gamma to customer two
    assert "2 links revoked." in client.get(response.headers["Location"]).get_data(as_text=True)
    [row] = audit_rows(app, "link.revoke_customer")
    assert row.object_id == str(w.contact1) and row.actor_id == officer.id
    assert row.details["reason"] == "GDPR" and row.details["count"] == 2
    assert_gone(client, w.paths[w.a])
    assert client.get(w.paths[w.c]).status_code == 200
    assert client.get(w.paths[w.b]).status_code == 200
    assert (
        post(client, "/compliance/customers/999999/revoke-links", {"reason": "x"}).status_code
        == 404
    )


def test_revoke_a_customer_with_htmx_swaps_their_row(app: Any, client: Any, officer: Any) -> None:
    w = make_world(app)
    page = client.get("/compliance/customers").get_data(as_text=True)
    assert f'<tr id="customer-{w.contact1}"' in page
    response = client.post(
        f"/compliance/customers/{w.contact2}/revoke-links",
        data={"reason": "asked for erasure"},
        headers={**HTMX, "X-CSRFToken": token(client)},
    )
    body = response.get_data(as_text=True)
    assert response.status_code == 200
    assert body.lstrip().startswith(f'<tr id="customer-{w.contact2}"')
    assert "1 link revoked." in body
    assert revoked(app) == {w.c}


def test_revoke_by_address(app: Any, client: Any, officer: Any) -> None:
    w = make_world(app)
    response = post(
        client,
        "/compliance/revoke-by-address",
        {"email": " Stranger@Elsewhere.test ", "reason": "typo"},
    )
    assert response.status_code == 303
    assert revoked(app) == {w.b}
    assert "1 link revoked." in client.get(response.headers["Location"]).get_data(as_text=True)
    [row] = audit_rows(app, "link.revoke_customer")
    assert row.details["email"] == STRANGER
    assert row.details["reason"] == "typo" and row.actor_id == officer.id
    assert_gone(client, w.paths[w.b])
    bad = post(client, "/compliance/revoke-by-address", {"email": "not an address", "reason": "x"})
    assert bad.status_code == 422 and "not an email address" in bad.get_data(as_text=True)
    assert revoked(app) == {w.b}


@pytest.mark.parametrize("typed", ["", "revoke", "yes", "REVOKE ALL"])
def test_revoke_all_needs_the_typed_confirmation(
    app: Any, client: Any, officer: Any, typed: str
) -> None:
    make_world(app)
    response = post(client, "/compliance/links/revoke-all", {"reason": "leak", "confirm": typed})
    assert response.status_code == 422
    assert "Type REVOKE in capitals to confirm" in response.get_data(as_text=True)
    assert revoked(app) == set()
    assert audit_rows(app, "link.revoke_all") == []


def test_revoke_all(app: Any, client: Any, officer: Any) -> None:
    w = make_world(app)
    post(client, f"/compliance/links/{w.c}/revoke", {"reason": "earlier"})
    response = post(
        client, "/compliance/links/revoke-all", {"reason": "key leaked", "confirm": "REVOKE"}
    )
    assert response.status_code == 303
    assert "2 links revoked." in client.get(response.headers["Location"]).get_data(as_text=True)
    assert revoked(app) == {w.a, w.b, w.c}
    [row] = audit_rows(app, "link.revoke_all")
    assert row.details["reason"] == "key leaked" and row.details["count"] == 2
    assert sorted(row.details["links"]) == sorted([w.a, w.b]) and row.actor_id == officer.id
    with app.app_context():
        assert db.session.get(VaultLink, w.c).revoke_reason == "earlier"  # kept, not overwritten
    for path in w.paths.values():
        assert_gone(client, path)


# -- filters ---------------------------------------------------------------------------------


def test_link_filters(app: Any, client: Any, officer: Any) -> None:
    w = make_world(app)
    with app.app_context():
        agent = db.session.get(User, w.agent_id)
        t3 = factories.ticket("Third")
        expired = _issue(t3, "old.pdf", agent)
        expired.expires_at = utcnow() - timedelta(hours=1)
        used = _issue(t3, "once.pdf", agent, max_downloads=1)
        used.download_count = 1
        erased = _issue(t3, "gone.pdf", agent)
        erased.file.erased_at = utcnow()
        db.session.commit()
        ids = SimpleNamespace(expired=expired.id, used=used.id, erased=erased.id, t3=t3.number)
    post(client, f"/compliance/links/{w.b}/revoke", {"reason": "stranger"})

    def rows(query: str) -> set[str]:
        response = client.get("/compliance/links?" + query)
        assert response.status_code == 200
        return row_ids(response.get_data(as_text=True))

    everything = {w.a, w.b, w.c, ids.expired, ids.used, ids.erased}
    assert rows("") == everything
    assert rows("state=all") == everything
    assert rows("state=active") == {w.a, w.c}
    assert rows("state=expired") == {ids.expired}
    assert rows("state=revoked") == {w.b}
    assert rows("state=exhausted") == {ids.used}
    assert rows("state=erased") == {ids.erased}
    assert rows("state=nonsense") == everything
    assert rows(f"ticket={w.t1}") == {w.a, w.b}
    assert rows(f"ticket={w.t1.lower()}") == {w.a, w.b}
    assert rows(f"ticket={w.t1.split('-')[1]}") == {w.a, w.b}
    assert rows(f"ticket={ids.t3}&state=active") == set()
    assert rows("recipient=ELSEWHERE") == {w.b}
    assert rows(f"customer={w.contact1_email.upper()}") == {w.a}
    assert rows("customer=Customer") == {w.a, w.c}  # contact names from the factory
    assert rows("filename=ALPHA") == {w.a}
    assert rows("filename=%25") == set()  # a LIKE wildcard is taken literally
    # The state column agrees with the filter.
    html = client.get("/compliance/links?state=exhausted").get_data(as_text=True)
    assert "link-exhausted" in html


def test_links_are_paginated_newest_first(app: Any, client: Any, officer: Any) -> None:
    with app.app_context():
        agent = factories.staff_user(Role.AGENT)
        ticket = factories.ticket()
        made = []
        for n in range(53):
            link = _issue(ticket, f"file-{n:02}.pdf", agent)
            link.created_at = utcnow() - timedelta(minutes=60 - n)
            made.append(link.id)
        db.session.commit()
    first = client.get("/compliance/links").get_data(as_text=True)
    assert len(row_ids(first)) == 50
    assert first.index("file-52.pdf") < first.index("file-51.pdf")
    assert "Page 1 of 2" in first and 'href="/compliance/links?page=2"' in first
    second = client.get("/compliance/links?page=2").get_data(as_text=True)
    assert row_ids(second) == set(made[:3])


# -- query count -----------------------------------------------------------------------------


@contextmanager
def counting(app: Any) -> Iterator[list[str]]:
    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", count)


def _many_links(app: Any, n: int) -> None:
    """Each link with its own ticket, customer, issuer and file, half of them revoked."""
    with app.app_context():
        officer = factories.staff_user(Role.COMPLIANCE)
        for i in range(n):
            agent = factories.staff_user(Role.AGENT)
            ticket = factories.ticket()
            link = _issue(ticket, f"n{i}.pdf", agent, recipient_email=ticket.contact.email)
            if i % 2:
                vault_links.revoke_link(link, Actor.staff(officer), "test")
        db.session.commit()


def test_the_links_page_costs_the_same_queries_for_3_or_30_rows(
    app: Any, client: Any, officer: Any
) -> None:
    _many_links(app, 3)
    client.get("/compliance/links")  # warm up: first-request work is not what we measure
    with counting(app) as few:
        assert len(row_ids(client.get("/compliance/links").get_data(as_text=True))) == 3
    _many_links(app, 27)
    with counting(app) as many:
        assert len(row_ids(client.get("/compliance/links").get_data(as_text=True))) == 30
    assert len(many) == len(few), many
    assert len(many) <= 6, many  # user, roles, rows, count, and a little slack


# -- the download audit ------------------------------------------------------------------------


def download(client: Any, path: str) -> None:
    """Download as the link's recipient would: confirm the mailed code, then the bytes."""
    from tests.test_link_recipients import ask_for_code, post

    code = ask_for_code(client.application, client, path)
    assert post(client, f"{path}/confirm", code=code).status_code == 303
    landing = client.get(path)
    assert landing.status_code == 200
    started = client.post(path, data={"csrf_token": csrf_from(landing.get_data(as_text=True))})
    assert started.status_code == 303
    target = urlsplit(started.headers["Location"]).path
    response = client.get(target, headers={"User-Agent": "Curious/1.0"})
    # Reading the body hands over the last byte: only then is the download "served".
    assert response.status_code == 200 and response.data


def test_link_detail_shows_a_real_download(app: Any, client: Any, officer: Any) -> None:
    w = make_world(app)
    download(client, w.paths[w.a])
    page = client.get(f"/compliance/links/{w.a}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    for outcome in ("viewed", "granted", "served"):
        assert f"outcome-{outcome}" in html
    assert "Curious/1.0" in html
    assert "127.0.0.0/24" in html  # the truncated client address, never the full one
    assert "1 of no limit" in html
    # Newest first: the bytes were served after the landing page was viewed.
    assert (
        html.index("outcome-served") < html.index("outcome-granted") < html.index("outcome-viewed")
    )
    assert "outcome-" not in client.get(f"/compliance/links/{w.b}").get_data(as_text=True)


def test_file_page_shows_link_and_staff_downloads(app: Any, client: Any, officer: Any) -> None:
    w = make_world(app)
    download(client, w.paths[w.a])
    with app.app_context():
        file = db.session.scalar(select(VaultFile).where(VaultFile.public_id == w.file_a))
        vault_links.record(
            None,
            file,
            DownloadOutcome.SERVED,
            vault_links.Client("10.1.2.3", "StaffBrowser/2"),
            user_id=w.agent_id,
        )
        db.session.commit()
    html = client.get(f"/compliance/files/{w.file_a}").get_data(as_text=True)
    staff = '<span class="small muted who-kind">Staff</span>\n        <span class="who-name">'
    assert f"{staff}{w.agent_name}</span>" in html
    assert "StaffBrowser/2" in html and "10.1.2.0/24" in html
    assert "Curious/1.0" in html
    assert f'<tr id="link-{w.a}"' in html and f'<tr id="link-{w.b}"' not in html
    assert f'action="/compliance/tickets/{w.t1}/revoke-links"' in html


def test_downloads_filter_by_outcome_and_reason(app: Any, client: Any, officer: Any) -> None:
    w = make_world(app)
    download(client, w.paths[w.a])
    post(client, f"/compliance/links/{w.b}/revoke", {"reason": "x"})
    assert client.get(w.paths[w.b]).status_code == 410  # audited as refused / revoked
    everything = client.get("/compliance/downloads").get_data(as_text=True)
    with app.app_context():  # the recipient's code steps are in the audit too
        recorded = db.session.scalar(select(func.count()).select_from(DownloadEvent))
    assert recorded == 8 and f"{recorded} events" in everything
    served = client.get("/compliance/downloads?outcome=served").get_data(as_text=True)
    assert "1 event," in served and "outcome-served" in served and "outcome-viewed" not in served
    refused = client.get("/compliance/downloads?reason=revoked").get_data(as_text=True)
    assert "1 event," in refused and "outcome-refused" in refused
    assert 'value="revoked"' in refused
    nothing = client.get("/compliance/downloads?outcome=refused&reason=expired")
    assert "No download attempts recorded." in nothing.get_data(as_text=True)


def test_customers_search_and_active_counts(app: Any, client: Any, officer: Any) -> None:
    w = make_world(app)
    post(client, f"/compliance/links/{w.c}/revoke", {"reason": "x"})
    html = client.get(f"/compliance/customers?q={w.contact1_email.upper()}").get_data(as_text=True)
    assert f'<tr id="customer-{w.contact1}"' in html and f'id="customer-{w.contact2}"' not in html
    counts = dict(
        re.findall(
            r'<tr id="customer-(\d+)".*?state=active">(\d+)</a>',
            client.get("/compliance/customers").get_data(as_text=True),
            re.S,
        )
    )
    assert counts[str(w.contact1)] == "1" and counts[str(w.contact2)] == "0"
