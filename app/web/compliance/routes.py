"""Compliance screens: the audit log, vault links and their revocation, the download audit.

Every action is a plain form POST that works without JavaScript (flash, then 303 back to
the page it came from); htmx swaps single rows in place, a refused row action coming back
as the row with its error (422). Bulk revocations are plain (non-boosted) forms on
purpose: they are rare and final, and their refusals re-render the whole page with the
form's errors and what was typed.
"""

from __future__ import annotations

from typing import Any, TypeVar

from flask import flash, redirect, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from werkzeug.wrappers import Response
from wtforms import SelectChoice

from app.actor import Actor
from app.extensions import db
from app.files import queries, vault_links
from app.htmx import render, wants_fragment
from app.models.audit import AuditLog
from app.models.files import VaultLink
from app.models.people import Contact
from app.models.types import utcnow
from app.pagination import paginate
from app.params import page_number
from app.tickets.lookup import ticket_by_number
from app.web.compliance import bp
from app.web.compliance.forms import (
    CONFIRM_WORD,
    AddressLinksForm,
    DownloadFilterForm,
    LinkFilterForm,
    ReasonForm,
    RevokeAllForm,
    TicketLinksForm,
)
from app.web.guards import safe_next

F = TypeVar("F", bound=FlaskForm)

PER_PAGE = 100
LINKS_PER_PAGE = 50
EVENTS_PER_PAGE = 100
CUSTOMERS_PER_PAGE = 50


@bp.get("/")
def home() -> Response:
    """The audit log, newest first, filtered by action prefix (``auth.``, ``ticket.``)."""
    action = (request.args.get("action") or "").strip()
    page = _page()
    stmt = select(AuditLog)
    if action:
        stmt = stmt.where(AuditLog.action.startswith(action, autoescape=True))
    result = paginate(stmt.order_by(AuditLog.id.desc()), page, PER_PAGE)
    return render(
        "compliance/home.html",
        "audit_table",
        rows=result.rows,
        action=action,
        page=result.page,
        pages=result.pages,
        total=result.total,
    )


# -- helpers -------------------------------------------------------------------------------


def _actor() -> Actor:
    return Actor.staff(current_user, request.remote_addr)


def _page() -> int:
    return page_number(request.args.get("page"))


def _blank(form_class: type[F], **data: Any) -> F:
    """A form that is not being submitted now (the page also shows another one's errors)."""
    return form_class(formdata=None, **data)


def _back(form: ReasonForm, fallback: str) -> Response:
    """303 to where the plain form came from, if that is a page of ours."""
    return redirect(safe_next(form.next.data, fallback), code=303)


def _links_revoked(count: int) -> str:
    return f"{count} link revoked." if count == 1 else f"{count} links revoked."


def _filter_args(data: dict[str, Any]) -> dict[str, Any]:
    """Filters for pager and form URLs, leaving out the empty ones."""
    return {key: value for key, value in data.items() if value not in (None, "")}


# -- links ---------------------------------------------------------------------------------


def _link_filters() -> tuple[LinkFilterForm, queries.LinkFilters]:
    form = LinkFilterForm(formdata=request.args)
    if form.state.data not in queries.LINK_STATES:
        form.state.data = "all"  # so the select shows what the list shows
    state = form.state.data
    filters = queries.LinkFilters(
        state=state,
        ticket=form.ticket.data or "",
        customer=form.customer.data or "",
        recipient=form.recipient.data or "",
        filename=form.filename.data or "",
    )
    return form, filters


def _links_page(
    *,
    status: int = 200,
    ticket_form: TicketLinksForm | None = None,
    all_form: RevokeAllForm | None = None,
) -> Response:
    filter_form, filters = _link_filters()
    now = utcnow()
    result = queries.links_page(filters, now, page=_page(), per_page=LINKS_PER_PAGE)
    args = _filter_args(
        {
            "state": None if filters.state == "all" else filters.state,
            "ticket": filters.ticket,
            "customer": filters.customer,
            "recipient": filters.recipient,
            "filename": filters.filename,
        }
    )
    here = url_for("compliance.links", **args, page=result.page)
    return render(
        "compliance/links.html",
        "link_table" if request.method == "GET" else None,
        status=status,
        filter_form=filter_form,
        result=result,
        filter_args=args,
        now=now,
        back=here,
        ticket_form=ticket_form or _blank(TicketLinksForm, number=filters.ticket, next=here),
        all_form=all_form or _blank(RevokeAllForm, next=here),
        confirm_word=CONFIRM_WORD,
    )


@bp.get("/links")
def links() -> Response:
    """Every link, newest first, narrowed by state, ticket, customer, recipient, file name."""
    return _links_page()


def _link_row(
    link: VaultLink, *, form: ReasonForm | None = None, back: str, status: int = 200
) -> Response:
    """The row component: the list renders it per link, row actions answer with it."""
    return render(
        "compliance/_link_row.html",
        status=status,
        link=link,
        now=utcnow(),
        back=back,
        row_form=form,
    )


def _link_detail(link: VaultLink, form: ReasonForm, status: int = 200) -> Response:
    events = queries.link_events(link, page=_page(), per_page=EVENTS_PER_PAGE)
    return render(
        "compliance/link.html",
        "events" if request.method == "GET" else None,
        status=status,
        link=link,
        form=form,
        events=events,
        now=utcnow(),
    )


@bp.get("/links/<link_id>")
def link_detail(link_id: str) -> Response:
    """One link's facts and its download audit, newest first."""
    link = queries.link_row(link_id)
    here = url_for("compliance.link_detail", link_id=link.id)
    return _link_detail(link, _blank(ReasonForm, next=here))


@bp.post("/links/<link_id>/revoke")
def revoke_link(link_id: str) -> Response:
    """Revoke one link; htmx gets the row back, a plain POST a flash and a 303."""
    link = queries.link_row(link_id)
    form = ReasonForm()
    fallback = url_for("compliance.link_detail", link_id=link.id)
    back = safe_next(form.next.data, fallback)
    if not form.validate_on_submit():
        if wants_fragment():
            return _link_row(link, form=form, back=back, status=422)
        return _link_detail(link, form, status=422)
    if link.revoked_at is None:
        vault_links.revoke_link(link, _actor(), form.reason.data or "")
        db.session.commit()
        message = "Link revoked."
    else:
        # A second click must not add an audit row whose reason the link does not carry.
        message = "That link was already revoked."
    if wants_fragment():
        return _link_row(queries.link_row(link_id), back=back)
    flash(message, "success")
    return _back(form, fallback)


@bp.post("/links/revoke-all")
def revoke_all_links() -> Response:
    """The emergency switch: every link, after a reason and the typed confirmation."""
    form = RevokeAllForm()
    if not form.validate_on_submit():
        return _links_page(status=422, all_form=form)
    count = vault_links.revoke_all(_actor(), form.reason.data or "")
    db.session.commit()
    flash(_links_revoked(count), "success")
    return _back(form, url_for("compliance.links"))


@bp.post("/tickets/revoke-links")
@bp.post("/tickets/<number>/revoke-links")
def revoke_ticket_links(number: str | None = None) -> Response:
    """Every link of one ticket; the links page posts the number as a field instead."""
    if number is not None:
        ticket_by_number(number)  # an unknown ticket is a 404 before anything else
    form = TicketLinksForm()
    if number is not None:
        form.number.data = number
    if not form.validate_on_submit():
        return _links_page(status=422, ticket_form=form)
    ticket = ticket_by_number(form.number.data or "")
    count = vault_links.revoke_ticket_links(ticket, _actor(), form.reason.data or "")
    db.session.commit()
    flash(f"{_links_revoked(count)} Ticket {ticket.number} has no usable link left.", "success")
    return _back(form, url_for("compliance.links", ticket=ticket.number))


# -- files and downloads ---------------------------------------------------------------------


@bp.get("/files/<public_id>")
def file_detail(public_id: str) -> Response:
    """One file: its links and every attempt on it, through a link or by staff."""
    file = queries.file_by_public_id(public_id)
    here = url_for("compliance.file_detail", public_id=file.public_id)
    return render(
        "compliance/file.html",
        "events",
        file=file,
        links=queries.links_of_file(file),
        events=queries.file_events(file, page=_page(), per_page=EVENTS_PER_PAGE),
        now=utcnow(),
        back=here,
        ticket_form=_blank(ReasonForm, next=here),
    )


@bp.get("/downloads")
def downloads() -> Response:
    """The global download audit, by outcome and refusal reason."""
    form = DownloadFilterForm(formdata=request.args)
    if form.outcome.data not in queries.OUTCOMES:
        form.outcome.data = ""
    outcome = form.outcome.data
    # A reason nobody has hit yet still filters (to nothing): a shared URL must not widen.
    reason = (form.reason.data or "")[:40]
    reasons = queries.download_reasons()
    form.reason.choices = [
        SelectChoice("", "Any"),
        *(SelectChoice(r, r.replace("_", " ")) for r in sorted({*reasons, reason} - {""})),
    ]
    result = queries.download_events(
        outcome=outcome, reason=reason, page=_page(), per_page=EVENTS_PER_PAGE
    )
    return render(
        "compliance/downloads.html",
        "download_table",
        form=form,
        result=result,
        filter_args=_filter_args({"outcome": outcome, "reason": reason}),
    )


# -- customers -------------------------------------------------------------------------------


def _customers_page(
    *,
    status: int = 200,
    address_form: AddressLinksForm | None = None,
    row_form: ReasonForm | None = None,
    error_contact: int | None = None,
) -> Response:
    search = (request.args.get("q") or "").strip()
    result = queries.customers_page(search, utcnow(), page=_page(), per_page=CUSTOMERS_PER_PAGE)
    here = url_for("compliance.customers", **_filter_args({"q": search}), page=result.page)
    return render(
        "compliance/customers.html",
        "customer_table" if request.method == "GET" else None,
        status=status,
        q=search,
        result=result,
        back=here,
        row_form=row_form,
        error_contact=error_contact,
        address_form=address_form or _blank(AddressLinksForm, next=here),
    )


@bp.get("/customers")
def customers() -> Response:
    """Contacts by name or address, with how many links each can still use."""
    return _customers_page()


@bp.post("/customers/<int:contact_id>/revoke-links")
def revoke_customer_links(contact_id: int) -> Response:
    """Every link of one contact: made for them or sent to their address."""
    contact = queries.contact_by_id(contact_id)
    form = ReasonForm()
    fallback = url_for("compliance.customers", q=contact.email)
    back = safe_next(form.next.data, fallback)
    if not form.validate_on_submit():
        if wants_fragment():
            return _customer_row(contact, back=back, form=form, status=422)
        return _customers_page(status=422, row_form=form, error_contact=contact.id)
    count = vault_links.revoke_customer_links(_actor(), form.reason.data or "", contact=contact)
    db.session.commit()
    if wants_fragment():
        return _customer_row(contact, back=back, message=_links_revoked(count))
    flash(f"{_links_revoked(count)} {contact.name} has no usable link left.", "success")
    return _back(form, fallback)


def _customer_row(
    contact: Contact,
    *,
    back: str,
    form: ReasonForm | None = None,
    message: str | None = None,
    status: int = 200,
) -> Response:
    return render(
        "compliance/_customer_row.html",
        status=status,
        contact=contact,
        active=queries.active_link_count(utcnow(), contact=contact),
        back=back,
        row_form=form,
        error_contact=contact.id if form is not None else None,
        message=message,
    )


@bp.post("/revoke-by-address")
def revoke_by_address() -> Response:
    """Links sent to an address that is no contact's (a forwarded mail, a typo)."""
    form = AddressLinksForm()
    if not form.validate_on_submit():
        return _customers_page(status=422, address_form=form)
    email = (form.email.data or "").lower()
    count = vault_links.revoke_customer_links(_actor(), form.reason.data or "", email=email)
    db.session.commit()
    flash(f"{_links_revoked(count)} Nothing sent to {email} can be fetched now.", "success")
    return _back(form, url_for("compliance.customers"))
