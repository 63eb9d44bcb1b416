"""The held-mail screens over HTTP: the agents' review queue and the admins' mail log.

Who may see what (agents: review only; admins: everything; customers: nothing), what the
lists show and filter, and that actions need a CSRF token and a discard needs a reason.
The decisions' effects through the real pipeline are in ``test_mail_held_actions.py``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import Role
from app.models.inbound import InboundMail, MailDecision, MailOutcome, MailSource
from app.models.types import utcnow
from tests.conftest import csrf_from

HTMX = {"HX-Request": "true"}


def held_row(app: Any, outcome: MailOutcome, subject: str, **fields: Any) -> int:
    """A received message as the pipeline records it (without its raw file)."""
    with app.app_context():
        n = db.session.scalar(select(db.func.count(InboundMail.id))) or 0
        row = InboundMail(
            dedupe_key=f"{subject}-{n}@sender.example",
            message_id=f"{subject}-{n}@sender.example",
            sha256="0" * 64,
            source=MailSource.PIPE.value,
            from_address=fields.pop("from_address", "stranger@elsewhere.example"),
            subject=subject,
            size=100,
            outcome=outcome.value,
            reason=fields.pop("reason", f"held: {outcome.value}"),
            received_at=fields.pop("received_at", utcnow()),
            **fields,
        )
        db.session.add(row)
        db.session.commit()
        return row.id


@pytest.fixture
def world(app: Any) -> dict[str, int]:
    now = utcnow()
    return {
        "review": held_row(
            app,
            MailOutcome.REVIEW,
            "Re: [#T-100001] Invoice question",
            details={"suspected_ticket": "T-100001", "to": ["support@desk.example"]},
            reason="T-100001 named by someone who is not part of it",
            received_at=now - timedelta(minutes=5),
        ),
        "quarantined": held_row(
            app, MailOutcome.QUARANTINED, "Broken beyond reading", reason="cannot be parsed"
        ),
        "ignored": held_row(
            app,
            MailOutcome.IGNORED,
            "Automatic reply: hello",
            robot="auto_reply",
            reason="auto-reply about no ticket",
        ),
        "decided": held_row(
            app,
            MailOutcome.QUARANTINED,
            "Spam flood 17",
            decision=MailDecision.DISCARDED.value,
            decision_reason="spam",
            decided_at=now,
        ),
        "filed": held_row(app, MailOutcome.CREATED, "A plain new ticket"),
    }


def page(client: Any, path: str, **kwargs: Any) -> str:
    response = client.get(path, **kwargs)
    assert response.status_code == 200, (path, response.status_code)
    return response.get_data(as_text=True)


# -- who sees what --------------------------------------------------------------------


def test_agent_review_queue_shows_sender_subject_and_suspected_ticket(
    client: Any, make_user: Any, login: Any, world: dict[str, int]
) -> None:
    login(make_user(Role.AGENT))
    html = page(client, "/agent/mail/review")
    assert "Re: [#T-100001] Invoice question" in html
    assert "stranger@elsewhere.example" in html
    assert "T-100001" in html
    assert "Broken beyond reading" not in html  # quarantine is for admins
    assert "Automatic reply: hello" not in html
    assert 'href="/agent/mail/review"' in html  # the navigation names the queue
    item = page(client, f"/agent/mail/review/{world['review']}")
    assert "T-100001 named by someone who is not part of it" in item
    assert 'name="reason"' in item and 'value="T-100001"' in item  # the suggested ticket


def test_agent_cannot_reach_quarantine_by_any_address(
    client: Any, make_user: Any, login: Any, world: dict[str, int]
) -> None:
    login(make_user(Role.AGENT))
    assert client.get("/admin/mail").status_code == 403
    assert client.get(f"/admin/mail/{world['quarantined']}").status_code == 403
    assert client.get(f"/admin/mail/{world['quarantined']}/original").status_code == 403
    # The review URLs do not open quarantined or ignored mail either: to agents it is absent.
    for key in ("quarantined", "ignored", "filed"):
        assert client.get(f"/agent/mail/review/{world[key]}").status_code == 404, key
    csrf = csrf_from(page(client, "/agent/mail/review"))
    response = client.post(
        f"/agent/mail/review/{world['quarantined']}/discard",
        data={"csrf_token": csrf, "reason": "not mine to decide"},
    )
    assert response.status_code == 404
    with client.application.app_context():
        assert db.session.get(InboundMail, world["quarantined"]).decision is None


@pytest.mark.parametrize("role", [Role.CUSTOMER, Role.COMPLIANCE])
def test_customers_and_other_roles_reach_neither(
    client: Any, make_user: Any, login: Any, world: dict[str, int], role: Role
) -> None:
    person = make_user(role)
    login(person, portal=role is Role.CUSTOMER)
    for path in (
        "/agent/mail/review",
        f"/agent/mail/review/{world['review']}",
        "/admin/mail",
        f"/admin/mail/{world['quarantined']}",
        f"/admin/mail/{world['quarantined']}/original",
    ):
        assert client.get(path).status_code == 403, path


def test_anonymous_visitors_are_sent_to_sign_in(client: Any, world: dict[str, int]) -> None:
    for path in ("/agent/mail/review", "/admin/mail", f"/admin/mail/{world['quarantined']}"):
        response = client.get(path)
        assert response.status_code == 302 and "/login" in response.headers["Location"], path


# -- the admin log --------------------------------------------------------------------


def test_admin_log_lists_open_held_mail_with_reasons_by_default(
    client: Any, make_user: Any, login: Any, world: dict[str, int]
) -> None:
    login(make_user(Role.ADMIN))
    html = page(client, "/admin/mail")
    assert 'href="/admin/mail"' in html  # navigation
    for subject in ("Broken beyond reading", "Automatic reply: hello", "Invoice question"):
        assert subject in html
    assert "cannot be parsed" in html and "auto-reply about no ticket" in html
    assert "Spam flood 17" not in html  # decided
    assert "A plain new ticket" not in html  # filed: nothing to decide


def test_admin_log_filters_by_outcome_and_state(
    client: Any, make_user: Any, login: Any, world: dict[str, int]
) -> None:
    login(make_user(Role.ADMIN))
    ignored = page(client, "/admin/mail?outcome=ignored")
    assert "Automatic reply: hello" in ignored and "Broken beyond reading" not in ignored
    decided = page(client, "/admin/mail?state=decided")
    assert "Spam flood 17" in decided and "spam" in decided
    assert "Broken beyond reading" not in decided
    everything = page(client, "/admin/mail?state=all&outcome=quarantined")
    assert "Spam flood 17" in everything and "Broken beyond reading" in everything
    # Made-up filter values show the default list instead of failing.
    assert "Broken beyond reading" in page(client, "/admin/mail?outcome=nonsense&state=%00")
    # htmx filtering gets the table alone.
    fragment = page(client, "/admin/mail?outcome=ignored", headers=HTMX)
    assert fragment.lstrip().startswith('<div id="mail-table">')
    assert "<html" not in fragment


def test_decided_mail_shows_the_decision_and_offers_no_actions(
    client: Any, make_user: Any, login: Any, world: dict[str, int]
) -> None:
    login(make_user(Role.ADMIN))
    html = page(client, f"/admin/mail/{world['decided']}")
    assert "discarded" in html and "spam" in html
    assert "/discard" not in html and "/retry" not in html


def test_actions_on_decided_mail_are_refused(
    client: Any, make_user: Any, login: Any, world: dict[str, int]
) -> None:
    login(make_user(Role.ADMIN))
    csrf = csrf_from(page(client, "/admin/mail"))
    response = client.post(
        f"/admin/mail/{world['decided']}/discard", data={"csrf_token": csrf, "reason": "again"}
    )
    assert response.status_code == 409
    with client.application.app_context():
        assert db.session.get(InboundMail, world["decided"]).decision_reason == "spam"


# -- CSRF and reasons -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "path"),
    [
        (Role.AGENT, "/agent/mail/review/{review}/discard"),
        (Role.AGENT, "/agent/mail/review/{review}/new"),
        (Role.AGENT, "/agent/mail/review/{review}/attach"),
        (Role.ADMIN, "/admin/mail/{quarantined}/discard"),
        (Role.ADMIN, "/admin/mail/{quarantined}/retry"),
        (Role.ADMIN, "/admin/mail/{quarantined}/new"),
        (Role.ADMIN, "/admin/mail/{quarantined}/attach"),
    ],
)
def test_actions_without_a_csrf_token_are_refused(
    client: Any, make_user: Any, login: Any, world: dict[str, int], role: Role, path: str
) -> None:
    login(make_user(role))
    url = path.format(**world)
    for data in (
        {"reason": "x", "ticket": "T-100001"},
        {"reason": "x", "ticket": "T-100001", "csrf_token": "forged"},
    ):
        assert client.post(url, data=data).status_code == 400
    with client.application.app_context():
        rows = db.session.scalars(select(InboundMail).where(InboundMail.decision.is_not(None)))
        assert [row.id for row in rows] == [world["decided"]]


@pytest.mark.parametrize("reason", ["", "   "])
@pytest.mark.parametrize(
    ("role", "path"),
    [
        (Role.AGENT, "/agent/mail/review/{review}/discard"),
        (Role.ADMIN, "/admin/mail/{review}/discard"),
    ],
)
def test_discard_needs_a_reason(
    client: Any,
    make_user: Any,
    login: Any,
    world: dict[str, int],
    role: Role,
    path: str,
    reason: str,
) -> None:
    login(make_user(role))
    home = "/agent/mail/review" if role is Role.AGENT else "/admin/mail"
    csrf = csrf_from(page(client, home))
    response = client.post(path.format(**world), data={"csrf_token": csrf, "reason": reason})
    assert response.status_code == 422
    assert "Say why the message is discarded." in response.get_data(as_text=True)
    htmx = client.post(
        path.format(**world), data={"reason": reason}, headers={**HTMX, "X-CSRFToken": csrf}
    )
    assert htmx.status_code == 422 and htmx.headers.get("HX-Retarget") == "#flash"
    with client.application.app_context():
        assert db.session.get(InboundMail, world["review"]).decision is None


def test_review_queue_pages_newest_first(app: Any, client: Any, make_user: Any, login: Any) -> None:
    start = utcnow()
    for n in range(55):
        held_row(
            app,
            MailOutcome.REVIEW,
            f"Queued message {n:02d}",
            received_at=start - timedelta(minutes=n),
        )
    login(make_user(Role.AGENT))
    first = page(client, "/agent/mail/review")
    assert "55 messages" in first
    assert "Queued message 00" in first and "Queued message 49" in first
    assert "Queued message 50" not in first
    second = page(client, "/agent/mail/review?page=2", headers=HTMX)
    assert second.lstrip().startswith('<div id="review-table">')
    assert "Queued message 54" in second and "Queued message 49" not in second
    # A page past the end shows the last page rather than an empty one or an error.
    assert "Queued message 54" in page(client, "/agent/mail/review?page=9999999999")
