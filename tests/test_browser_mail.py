"""Received mail in real Chromium: attack payloads run nothing, remote images wait for a click.

A page hook (``add_init_script``) runs before any of the page's own code: it replaces
``alert``/``confirm``/``prompt``/``print`` with functions that record the call, and records
every Content-Security-Policy violation. A payload that got a script, an event handler or a
``javascript:`` URL into the DOM either runs (and is recorded) or is stopped by the CSP (and
is recorded): both fail the test, because the sanitiser should have removed it first.
"""

from __future__ import annotations

import http.server
import io
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.actor import Actor
from app.extensions import db
from app.files.store import store_upload
from app.mail.content import sanitise_mail_html
from app.models import Role
from app.models.files import FileKind
from app.models.people import Contact
from app.models.tickets import EntryKind
from app.tickets.stream import add_entry
from tests import factories
from tests.test_mail_display import png

pytestmark = pytest.mark.browser
DATA = Path(__file__).parent / "data" / "html"

HOOK = """
window.__pwned = [];
for (const name of ["alert", "confirm", "prompt", "print"]) {
  window[name] = (...args) => { window.__pwned.push(name + ":" + String(args[0])); };
}
document.addEventListener("securitypolicyviolation", (e) => {
  window.__pwned.push("csp:" + e.violatedDirective + ":" + e.blockedURI);
});
"""


def payloads() -> list[str]:
    dompurify = json.loads((DATA / "xss_dompurify" / "expect.json").read_text())
    h5sc = json.loads((DATA / "xss_h5sc" / "items.json").read_text())
    return [c["payload"] for c in dompurify] + [c["data_expanded"] for c in h5sc]


def sign_in(page: Any, live_server: str, person: Any) -> None:
    page.goto(live_server + "/login")
    page.get_by_label("Email address").fill(person.email)
    page.get_by_label("Password").fill(person.password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(live_server + "/agent/")


def mail_ticket(
    app: Any, bodies: list[str], *, sanitise: bool, contact_id: int | None = None
) -> str:
    """A ticket whose stream holds one received mail per body; returns its number.

    ``sanitise=False`` stores the payload as it came, as a row written before a sanitiser
    fix (or by hand) would be: the display must still run nothing.
    """
    with app.app_context():
        contact = db.session.get(Contact, contact_id) if contact_id else factories.contact()
        ticket = factories.ticket("Payloads", contact=contact)
        actor = Actor.customer(name="Mallory", email=ticket.contact.email)
        for body in bodies:
            entry = add_entry(ticket, EntryKind.MAIL_IN, actor, body_text="payload")
            entry.body_html = sanitise_mail_html(body, {}) if sanitise else body
        db.session.commit()
        return ticket.number


def provoke(page: Any) -> None:
    """Give user-triggered payloads their chance: open folds, hover and focus everything."""
    page.evaluate(
        """() => {
          for (const d of document.querySelectorAll('.stream details')) d.open = true;
          for (const el of document.querySelectorAll('.stream .entry-body *')) {
            for (const type of ['mouseover', 'mouseenter', 'focus', 'animationstart']) {
              el.dispatchEvent(new Event(type, {bubbles: true}));
            }
          }
        }"""
    )
    page.wait_for_timeout(300)


@pytest.mark.parametrize("sanitise", [True, False], ids=["stored-sanitised", "stored-raw"])
def test_no_payload_runs_in_the_agents_stream(
    app: Any, browser: Any, live_server: str, make_user: Any, sanitise: bool
) -> None:
    bodies = payloads()
    number = mail_ticket(app, bodies, sanitise=sanitise)
    agent = make_user(Role.AGENT)
    context = browser.new_context()
    context.add_init_script(HOOK)
    dialogs: list[str] = []
    page = context.new_page()
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    sign_in(page, live_server, agent)
    page.goto(f"{live_server}/agent/tickets/{number}")
    page.wait_for_load_state("load")
    provoke(page)
    assert page.evaluate("() => window.__pwned") == []
    assert dialogs == []
    # The hook itself works on this page: a call is recorded, not shown.
    assert page.evaluate("() => { alert('probe'); return window.__pwned.pop(); }") == "alert:probe"
    # Every payload is on the page (plus the ticket's first message): none broke the stream.
    assert page.locator(".entry-mail_in").count() == len(bodies) + 1
    context.close()


def test_no_payload_runs_in_the_customers_conversation(
    app: Any, browser: Any, live_server: str, make_user: Any
) -> None:
    customer = make_user(Role.CUSTOMER)
    bodies = payloads()
    number = mail_ticket(app, bodies, sanitise=True, contact_id=customer.contact_id)
    context = browser.new_context()
    context.add_init_script(HOOK)
    dialogs: list[str] = []
    page = context.new_page()
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(live_server + "/portal/login")
    page.get_by_label("Email address").fill(customer.email)
    page.get_by_label("Password").fill(customer.password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(live_server + "/portal/")
    page.goto(f"{live_server}/portal/tickets/{number}")
    page.wait_for_load_state("load")
    page.evaluate(
        """() => {
          for (const d of document.querySelectorAll('.chat details')) d.open = true;
          for (const el of document.querySelectorAll('.chat .bubble-body *')) {
            for (const type of ['mouseover', 'mouseenter', 'focus']) {
              el.dispatchEvent(new Event(type, {bubbles: true}));
            }
          }
        }"""
    )
    page.wait_for_timeout(300)
    assert page.evaluate("() => window.__pwned") == []
    assert dialogs == []
    assert page.locator(".chat .bubble").count() == len(bodies) + 1
    context.close()


class _Pixel(http.server.BaseHTTPRequestHandler):
    hits: list[dict[str, str]] = []

    def do_GET(self) -> None:  # noqa: N802 -- the stdlib's name
        type(self).hits.append({"path": self.path, "referer": self.headers.get("Referer", "")})
        body = png(4, 4)
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        """Quiet: the test reads ``hits``."""


@pytest.fixture
def pixel_server() -> Iterator[tuple[str, list[dict[str, str]]]]:
    """A local HTTP server standing in for a sender's image host; records every request."""
    hits: list[dict[str, str]] = []
    handler = type("Pixel", (_Pixel,), {"hits": hits})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", hits
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


def test_remote_images_load_only_after_the_agent_asks(
    app: Any,
    browser: Any,
    live_server: str,
    make_user: Any,
    pixel_server: tuple[str, list[dict[str, str]]],
) -> None:
    remote, hits = pixel_server
    with app.app_context():
        ticket = factories.ticket("Newsletter-ish")
        actor = Actor.customer(name="Sender", email=ticket.contact.email)
        entry = add_entry(ticket, EntryKind.MAIL_IN, actor, body_text="See the images")
        db.session.flush()
        logo = store_upload(io.BytesIO(png(3, 3)), "logo.png", actor, ticket=ticket, entry=entry)
        logo.kind = FileKind.INLINE.value
        entry.body_html = sanitise_mail_html(
            f'<p>Logo <img id="inline" src="cid:logo@x" alt="logo"></p>'
            f'<p>Tracker <img src="{remote}/pixel.png?u=1" alt="remote" '
            f'style="background: url({remote}/bg.png)"></p>'
            f'<p style="background-image: url({remote}/style.png)">styled</p>',
            {"logo@x": logo.public_id},
        )
        entry.data = {"remote_images": True, "inline": {"logo@x": logo.public_id}}
        number = ticket.number
        db.session.commit()
    agent = make_user(Role.AGENT)
    context = browser.new_context()
    context.add_init_script(HOOK)
    page = context.new_page()
    sign_in(page, live_server, agent)
    page.goto(f"{live_server}/agent/tickets/{number}")
    page.wait_for_load_state("networkidle")

    inline = page.get_by_alt_text("logo")
    assert inline.evaluate("img => img.complete && img.naturalWidth") == 3
    blocked = page.get_by_alt_text("remote")
    assert blocked.get_attribute("src") is None
    assert hits == []

    page.get_by_role("button", name="Show remote images").click()
    page.wait_for_function(
        "() => { const i = document.querySelector('img[alt=remote]');"
        " return i && i.complete && i.naturalWidth === 4; }"
    )
    assert [h["path"] for h in hits] == ["/pixel.png?u=1"]  # never the style URLs
    assert hits[0]["referer"] == ""  # the sender does not learn the ticket's URL
    assert page.get_by_role("button", name="Show remote images").count() == 0
    assert page.evaluate("() => window.__pwned") == []

    # Remembered for the entry: another agent sees the images without asking.
    other = make_user(Role.AGENT)
    second = browser.new_context()
    page2 = second.new_page()
    sign_in(page2, live_server, other)
    # Through the inbox, as agents do: a boosted click, which must still get the page's policy.
    page2.get_by_role("link", name="Newsletter-ish").click()
    page2.wait_for_url(f"{live_server}/agent/tickets/{number}")
    page2.wait_for_function(
        "() => { const i = document.querySelector('img[alt=remote]');"
        " return i && i.complete && i.naturalWidth === 4; }"
    )
    second.close()
    context.close()
