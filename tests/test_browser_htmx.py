"""The htmx convention of ``app.htmx`` in real Chromium, one test per kind of endpoint.

Each kind answers an htmx request with the fragment it swaps, also when it refuses:
lists and bulk actions (list fragment, refusals in the flash area), boosted navigation
(whole pages into ``body``, refusals in the flash area), the composer and the header (the
same fragment with the error in place, everything typed kept), side panels and
compliance rows (component re-rendered with the error), and the portal conversation. After
every step the page must still be one page: one top bar, one main region.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from app.actor import Actor
from app.extensions import db
from app.files import vault_links
from app.files.store import store_upload
from app.mail.identities import add_template, save_identity
from app.models import Role, Ticket, User
from app.models.files import VaultFile, VaultLink
from app.models.people import Contact
from app.models.tickets import Status
from app.tickets import change_status
from tests import factories

pytestmark = pytest.mark.browser


def signed_in(browser: Any, live_server: str, person: Any, *, portal: bool = False) -> Any:
    page = browser.new_page()
    page.goto(live_server + ("/portal/login" if portal else "/login"))
    page.get_by_label("Email address").fill(person.email)
    page.get_by_label("Password").fill(person.password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: "/login" not in url)
    return page


def assert_one_page(page: Any) -> None:
    """No page drawn inside another: one top bar, one main region, one flash area."""
    assert page.locator("header.topbar").count() == 1
    assert page.locator("main#main").count() == 1
    assert page.locator("#flash").count() == 1


def test_bulk_actions_redraw_the_list_and_refusals_go_to_the_flash_area(
    app: Any, browser: Any, live_server: str, make_user: Any
) -> None:
    agent = make_user(Role.AGENT)
    colleague = make_user(Role.AGENT, email="colleague@example.org")
    with app.app_context():
        tickets = [factories.ticket(f"Dispatch {n}") for n in ("one", "two", "three", "four")]
        db.session.commit()
        numbers = [t.number for t in tickets]
    page = signed_in(browser, live_server, agent)
    page.goto(live_server + "/agent/list/dispatcher")
    for number in numbers[:3]:
        page.get_by_label(f"Select {number}").check()
    bulk = page.locator("#bulk-form fieldset.bulk-actions")
    bulk.locator("select[name=action]").select_option("assign")
    bulk.locator("select[name=assignee]").select_option(str(colleague.id))
    bulk.get_by_role("button", name="Apply").click()
    page.locator("#flash").get_by_text("Assigned 3 ticket(s).").wait_for()
    assert_one_page(page)
    assert page.locator("#ticket-list").count() == 1
    listed = page.locator("#ticket-list").inner_text()
    assert numbers[3] in listed and not any(n in listed for n in numbers[:3])

    # "Set status…" without a status: the reason in the flash area, the list and tick kept.
    page.get_by_label(f"Select {numbers[3]}").check()
    bulk.locator("select[name=action]").select_option("status")
    bulk.get_by_role("button", name="Apply").click()
    page.locator("#flash").get_by_text("Choose a status.").wait_for()
    assert_one_page(page)
    assert page.get_by_label(f"Select {numbers[3]}").is_checked()
    assert "The form has expired" not in page.content()
    with app.app_context():
        assert db.session.scalar(select(Ticket).where(Ticket.number == numbers[3])).status == "new"
        assigned = db.session.scalars(select(Ticket.assignee_id).where(Ticket.number.in_(numbers)))
        assert sorted(assigned, key=str) == sorted([colleague.id] * 3 + [None], key=str)


def test_list_filters_swap_the_table_and_boosted_links_draw_one_page(
    app: Any, browser: Any, live_server: str, make_user: Any
) -> None:
    agent = make_user(Role.AGENT)
    with app.app_context():
        factories.ticket("Scanner jams")
        wanted = factories.ticket("Keyboard sticks").number
        db.session.commit()
    page = signed_in(browser, live_server, agent)
    page.goto(live_server + "/agent/list/all")
    page.get_by_label("Search").press_sequentially("Keyboard")  # searches as one types
    page.wait_for_function("() => location.search.includes('q=Keyboard')")
    page.locator("#ticket-list", has_text="Scanner jams").wait_for(state="detached")
    assert_one_page(page)
    # The row link sits inside #ticket-list (hx-target="this"): boosted, it inherits that
    # target, and the ticket page must still replace the body, not the table.
    page.get_by_role("link", name="Keyboard sticks").click()
    page.wait_for_url(f"{live_server}/agent/tickets/{wanted}")
    page.locator("#composer").wait_for()
    assert_one_page(page)
    assert page.locator("#ticket-list").count() == 0
    # A boosted link to a ticket that is not there: the reason in the flash area, and the
    # address and page stay where they were.
    page.evaluate(
        """() => {
            const a = document.createElement("a");
            a.href = "/agent/tickets/T-000000"; a.id = "gone"; a.textContent = "gone";
            document.querySelector("main").prepend(a);
            htmx.process(a);
        }"""
    )
    page.locator("#gone").click()
    page.locator("#flash").get_by_text("There is no ticket T-000000.").wait_for()
    assert page.url == f"{live_server}/agent/tickets/{wanted}"
    assert_one_page(page)


@pytest.fixture
def desk(app: Any) -> dict[str, Any]:
    with app.app_context():
        system = Actor.system()
        support = save_identity(system, address="contact@desk.test", name="Desk Support")
        add_template(system, support, "Thanks", "Thank you, we are on it.")
        billing = save_identity(system, address="billing@desk.test", name="Billing")
        template = add_template(system, billing, "Rechnung", "Die Rechnung ist korrigiert.")
        ticket = factories.ticket("Invoice twice")
        db.session.commit()
        return {
            "number": ticket.number,
            "ticket_id": ticket.id,
            "billing": billing.id,
            "template": template.id,
        }


def test_a_refused_answer_comes_back_in_the_composer_with_everything_typed(
    app: Any, browser: Any, live_server: str, make_user: Any, desk: Any, tmp_path: Path
) -> None:
    agent = make_user(Role.AGENT)
    notes = tmp_path / "notes.txt"
    notes.write_text("the second invoice is void\n")
    page = signed_in(browser, live_server, agent)
    page.goto(f"{live_server}/agent/tickets/{desk['number']}")
    composer = page.locator("#composer")
    composer.get_by_label("Public reply (mailed to the customer)").check()
    composer.get_by_label("Answer from").select_option(str(desk["billing"]))
    composer.locator("#template option", has_text="Rechnung").wait_for(state="attached")
    composer.get_by_label("Insert a template").select_option(str(desk["template"]))
    composer.get_by_label("Message").fill("")  # the template filled it; send it empty
    composer.get_by_label("Reply sent, now waiting for the customer (Pending)").check()
    composer.get_by_label("Follow up on (optional)").fill("2031-05-04T10:00")
    composer.get_by_role("button", name="Send").click()

    page.locator("#composer-error").get_by_text("Write something or attach a file.").wait_for()
    assert_one_page(page)
    assert page.url == f"{live_server}/agent/tickets/{desk['number']}"
    assert composer.get_by_label("Public reply (mailed to the customer)").is_checked()
    assert composer.get_by_label("Answer from").input_value() == str(desk["billing"])
    assert composer.get_by_label("Insert a template").input_value() == str(desk["template"])
    assert composer.get_by_label("Reply sent, now waiting for the customer (Pending)").is_checked()
    assert composer.get_by_label("Follow up on (optional)").input_value() == "2031-05-04T10:00"

    # A file and a past date: refused, the stored file shredded, the text kept.
    composer.get_by_label("Message").fill("We cancelled the second invoice.")
    composer.get_by_label("Follow up on (optional)").fill("2001-01-01T10:00")
    composer.get_by_label("Files (stored encrypted in the vault;").set_input_files(str(notes))
    composer.get_by_role("button", name="Send").click()
    error = page.locator("#composer-error")
    error.get_by_text("The follow-up date must be in the future.").wait_for()
    assert "choose them again" in error.inner_text()
    assert composer.get_by_label("Message").input_value() == "We cancelled the second invoice."
    assert_one_page(page)
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(VaultFile)) == 0
        assert len(db.session.get(Ticket, desk["ticket_id"]).entries) == 1

    composer.get_by_label("Follow up on (optional)").fill("2031-05-04T10:00")
    composer.get_by_role("button", name="Send").click()
    page.locator("#flash").get_by_text("Reply queued for sending.").wait_for()
    assert_one_page(page)
    assert page.locator("#ticket-header select[name=status]").input_value() == "pending"
    assert page.get_by_label("Message").input_value() == ""


def test_header_and_side_panels_show_refusals_in_place(
    app: Any, browser: Any, live_server: str, make_user: Any, desk: Any
) -> None:
    agent = make_user(Role.AGENT)
    page = signed_in(browser, live_server, agent)
    page.goto(f"{live_server}/agent/tickets/{desk['number']}")

    # A side panel: the link form keeps the typed number and says why.
    links = page.locator("#ticket-links")
    links.locator("summary").first.click()  # an empty panel is folded
    links.get_by_label("Ticket number").fill("T-999999")
    links.get_by_role("button", name="Link").click()
    links.get_by_text("There is no ticket T-999999.").wait_for()
    assert links.get_by_label("Ticket number").input_value() == "T-999999"
    assert_one_page(page)

    # The header: a value it cannot take (an old or forged page) comes back in the header,
    # which shows the ticket as it is.
    page.evaluate(
        """() => {
            const select = document.querySelector("#ticket-header select[name=priority]");
            select.add(new Option("Bogus", "bogus"));
            select.value = "bogus";
            select.dispatchEvent(new Event("change", {bubbles: true}));
        }"""
    )
    header = page.locator("#ticket-header")
    header.get_by_text("“bogus” is not a priority.").wait_for()
    assert header.locator("select[name=priority]").input_value() == "normal"
    assert_one_page(page)
    with app.app_context():
        assert db.session.get(Ticket, desk["ticket_id"]).priority == "normal"


def test_a_compliance_row_refusal_stays_in_its_row(
    app: Any, browser: Any, live_server: str, make_user: Any
) -> None:
    officer = make_user(Role.COMPLIANCE)
    with app.app_context():
        ticket = factories.ticket("Contract")
        pdf = io.BytesIO(b"%PDF-1.4 contract")
        file = store_upload(pdf, "contract.pdf", Actor.system(), ticket=ticket)
        link = vault_links.issue_link(file, Actor.system(), days=14)
        db.session.commit()
        link_id = link.id
    page = signed_in(browser, live_server, officer)
    page.goto(live_server + "/compliance/links")
    row = page.locator(f"#link-{link_id}")
    row.locator("input[name=reason]").evaluate("input => input.removeAttribute('required')")
    row.get_by_role("button", name="Revoke").click()
    row.get_by_text("Say why the links are revoked").wait_for()
    assert_one_page(page)
    row.locator("input[name=reason]").fill("Sent to the wrong customer")
    row.get_by_role("button", name="Revoke").click()
    row.get_by_text("“Sent to the wrong customer”").wait_for()
    assert_one_page(page)
    with app.app_context():
        assert db.session.get(VaultLink, link_id).revoked_at is not None


def test_the_portal_conversation_answers_in_place(
    app: Any, browser: Any, live_server: str, make_user: Any
) -> None:
    customer = make_user(Role.CUSTOMER)
    agent = make_user(Role.AGENT)
    with app.app_context():
        ticket = factories.ticket(
            "Login fails", contact=db.session.get(Contact, customer.contact_id)
        )
        change_status(ticket, Status.RESOLVED, Actor.staff(db.session.get(User, agent.id)))
        db.session.commit()
        number = ticket.number
    page = signed_in(browser, live_server, customer, portal=True)
    page.get_by_label("All").check()
    page.get_by_label("Search in subjects").fill("Login")
    page.wait_for_function("() => location.search.includes('q=Login')")
    assert_one_page(page)
    page.get_by_role("link", name="Login fails").click()
    page.wait_for_url(f"{live_server}/portal/tickets/{number}")
    assert_one_page(page)

    # A rating without stars: the conversation comes back with the reason, comment kept.
    page.evaluate(
        "() => document.querySelectorAll('input[name=score]')"
        ".forEach(i => i.removeAttribute('required'))"
    )
    page.get_by_label("Comment (optional)").fill("Quick and friendly")
    page.get_by_role("button", name="Send rating").click()
    page.locator("#ticket-main").get_by_text("Choose a number of stars.").wait_for()
    assert page.get_by_label("Comment (optional)").input_value() == "Quick and friendly"
    assert_one_page(page)

    # An empty message: the reason in the flash area; nothing else moves.
    page.get_by_label("Your message").evaluate("box => box.removeAttribute('required')")
    page.get_by_role("button", name="Send", exact=True).click()
    page.locator("#flash").get_by_text("Please write a message.").wait_for()
    assert_one_page(page)
