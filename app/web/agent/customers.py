"""Customer and account pages for agents, and the searches the new-ticket form uses.

URL names for links from elsewhere (the ticket page's customer card, the lists):
``agent.contact`` (``contact_id``) and ``agent.account`` (``account_id``). Staff only, like
all of ``/agent``: the blueprint's guard turns a customer session away before any of
these views runs. The portal invitation button posts to the existing ``agent.invite``.
"""

from __future__ import annotations

from flask import request
from werkzeug.wrappers import Response

from app.accounts import customers
from app.htmx import render
from app.models.types import utcnow
from app.params import page_number
from app.web.agent import bp
from app.web.agent.contacts import InviteForm


@bp.get("/contacts/<int:contact_id>")
def contact(contact_id: int) -> Response:
    """A contact: their tickets, portal access, links issued to them and their downloads."""
    page = customers.contact_page(
        contact_id,
        links_page=page_number(request.args.get("links_page")),
        downloads_page=page_number(request.args.get("downloads_page")),
    )
    return render("agent/contact.html", page=page, invite_form=InviteForm(), now=utcnow())


@bp.get("/accounts/<int:account_id>")
def account(account_id: int) -> Response:
    """An account: its contacts, account managers (ours and the customer's) and tickets."""
    return render("agent/account.html", page=customers.account_page(account_id))


@bp.get("/customers/contact-choices")
def contact_choices() -> Response:
    """Contacts matching the new-ticket form's search, as radio buttons (htmx fragment)."""
    text = (request.args.get("contact_q") or "").strip()[:200]
    return render(
        "agent/new_ticket.html",
        "contact_choices",
        found=customers.search_contacts(text),
        searched=text,
        chosen=None,
        values={"contact_q": text},
        **_page_basics(),
    )


@bp.get("/customers/account-names")
def account_names() -> Response:
    """Account names matching what is typed, as the options of a datalist (htmx fragment)."""
    text = (request.args.get("account_name") or "").strip()[:200]
    return render(
        "agent/new_ticket.html",
        "account_names",
        accounts=customers.search_accounts(text),
        found=[],
        searched="",
        chosen=None,
        values={"account_name": text},
        **_page_basics(),
    )


def _page_basics() -> dict[str, object]:
    from app.web.agent.new_ticket import page_basics

    return page_basics()
