"""An agent opens a ticket for a customer: phone call, walk-in, a mail received elsewhere.

The form picks a contact from a search (or creates one, with an account picked by name
or created), says how the customer reached us, and carries the subject, the first entry,
files, priority, category, manager and whether to send the customer a confirmation. Files
stream into the vault while the form is read (``app.files.uploads``: the CSRF token is
checked before the first byte is stored); a refused form shreds them and says so. The
rules live in ``app.tickets.creation.open_for_customer`` and ``app.accounts.customers``.
"""

from __future__ import annotations

from typing import Any

from flask import current_app, flash, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from werkzeug.wrappers import Response

from app.accounts import customers
from app.actor import Actor
from app.errors import DomainError, InvalidInput
from app.extensions import csrf, db
from app.files.store import human_size
from app.files.uploads import vault_upload
from app.htmx import go_to, render
from app.models.people import Contact
from app.models.tickets import Category, Priority
from app.params import choice, id_or_none
from app.tickets.creation import Intake, open_for_customer
from app.tickets.listing import choices, staff_member
from app.web.agent import bp

TEMPLATE = "agent/new_ticket.html"
FIELDS = (
    "contact_q",
    "contact_id",
    "name",
    "email",
    "phone",
    "account_name",
    "via",
    "subject",
    "body",
    "priority",
    "category",
    "assignee",
    "confirm",
)
INTAKE_LABELS = {
    Intake.PHONE: _l("Phone call"),
    Intake.WALK_IN: _l("Walk-in"),
    Intake.MAIL: _l("Mail received elsewhere"),
    Intake.OTHER: _l("Other"),
}
NEW = "new"  # the contact_id radio of "a new contact"


def page_basics() -> dict[str, Any]:
    """The form's choices: intakes, priorities, categories, managers, the upload limit."""
    listed = choices()
    return {
        "intakes": INTAKE_LABELS,
        "priorities": list(Priority),
        "categories": listed.categories,
        "staff": listed.staff,
        "max_size": human_size(int(current_app.config["VAULT_MAX_UPLOAD_BYTES"])),
    }


def _page(
    values: dict[str, str], *, error: str | None = None, dropped: int = 0, status: int = 200
) -> Response:
    text = values.get("contact_q", "")
    chosen_id = id_or_none(values.get("contact_id"))
    chosen = db.session.get(Contact, chosen_id) if chosen_id else None
    found = customers.search_contacts(text) if text else []
    return render(
        TEMPLATE,
        "ticket_form",
        status=status,
        values=values,
        found=[c for c in found if chosen is None or c.id != chosen.id],
        searched=text,
        chosen=chosen,
        error=error,
        dropped=dropped,
        accounts=[],
        **page_basics(),
    )


@bp.get("/new")
def new_ticket() -> Response:
    """The empty form; ``?contact=ID`` (from a contact page) starts with that contact."""
    values = {key: (request.args.get(key) or "")[:200] for key in FIELDS}
    if request.args.get("contact"):
        values["contact_id"] = request.args["contact"]
    values.setdefault("via", Intake.PHONE.value)
    values["via"] = values["via"] or Intake.PHONE.value
    values["priority"] = values["priority"] or Priority.NORMAL.value
    return _page(values)


@bp.post("/new")
@csrf.exempt  # checked by receive_form before any file is stored (see app.files.uploads)
def create_ticket_for_customer() -> Response:
    """Open the ticket; a refusal comes back in the form with everything typed kept."""
    actor = Actor.staff(current_user, request.remote_addr)
    with vault_upload(actor) as upload:
        fields, files = upload.read()
        values = {key: fields.get(key, "")[:20_000] for key in FIELDS}
        try:
            contact = _contact(values, actor)
            ticket = open_for_customer(
                actor,
                contact=contact,
                via=choice(Intake, values["via"], "channel") or Intake.OTHER,
                subject=values["subject"],
                body=values["body"],
                files=files,
                priority=choice(Priority, values["priority"], "priority") or Priority.NORMAL,
                category=_category(values["category"]),
                assignee=staff_member(id_or_none(values["assignee"])),
                confirm=values["confirm"] in ("1", "on", "true"),
            )
        except DomainError as refused:
            dropped = len(upload.stored)
            upload.abandon()
            return _page(values, error=refused.message, dropped=dropped, status=refused.status)
        number = ticket.number
        db.session.commit()
    if values["confirm"] in ("1", "on", "true"):
        flash(
            _("Ticket %(number)s opened; the customer's confirmation is queued.", number=number),
            "success",
        )
    else:
        flash(_("Ticket %(number)s opened.", number=number), "success")
    return go_to(url_for("agent.ticket", number=number))


def _contact(values: dict[str, str], actor: Actor) -> Contact:
    """The chosen contact, or a new one (with its account) from the form's fields."""
    if values["contact_id"] and values["contact_id"] != NEW:
        contact_id = id_or_none(values["contact_id"])
        if contact_id is None:
            raise InvalidInput(_("Choose the customer again: that choice was not understood."))
        return customers.contact_by_id(contact_id)
    if not (values["name"].strip() or values["email"].strip()):
        raise InvalidInput(_("Choose a customer from the search, or enter a new contact."))
    account_name = values["account_name"].strip()
    account = customers.account_named(actor, account_name) if account_name else None
    return customers.create_contact(
        actor,
        name=values["name"],
        email=values["email"],
        phone=values["phone"],
        account=account,
    )


def _category(value: str) -> Category | None:
    category_id = id_or_none(value)
    category = db.session.get(Category, category_id) if category_id else None
    return category if category is not None and category.active else None
