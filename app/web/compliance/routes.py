"""Compliance screens: the audit log, vault links and their revocation, the download audit.

Every action is a plain form POST that works without JavaScript (flash, then 303 back to
the page it came from); htmx swaps single rows in place, a refused row action coming back
as the row with its error (422). Bulk revocations are plain (non-boosted) forms on
purpose: they are rare and final, and their refusals re-render the whole page with the
form's errors and what was typed.

Every list (audit log, links, downloads) keeps its filters in the URL and exports them as
CSV (``export.py``). Tickets opened by data-subject requests are readable here, read-only
and with their internal notes (see ``request_ticket``); every other ticket is a 404.
"""

from __future__ import annotations

from typing import Any, TypeVar

from flask import flash, redirect, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response
from wtforms import SelectChoice

from app import audit_queries
from app.actor import Actor
from app.audit_display import OBJECT_KINDS, Named, action_label, describe, download_actor
from app.extensions import db
from app.files import queries, vault_links
from app.htmx import render, wants_fragment
from app.i18n import format_when, viewer_zone
from app.models.files import VaultLink
from app.models.people import Contact
from app.models.tickets import DataSubjectRequest
from app.models.types import utcnow
from app.params import page_number
from app.tickets.lookup import ticket_by_number
from app.web.compliance import bp
from app.web.compliance.export import csv_response
from app.web.compliance.forms import (
    CONFIRM_WORD,
    OUTCOME_LABELS,
    STATE_LABELS,
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


def _period() -> tuple[audit_queries.Period, dict[str, str], list[str]]:
    """The ``from``/``to`` days of the URL in the viewer's zone, and what was not a date."""
    raw = {key: (request.args.get(key) or "").strip()[:10] for key in ("from", "to")}
    days = {key: audit_queries.parse_day(value) for key, value in raw.items()}
    errors = [
        _("“%(value)s” is not a date; that end of the period is open.", value=value)
        for key, value in raw.items()
        if value and days[key] is None
    ]
    kept = {key: value for key, value in raw.items() if days[key] is not None}
    return audit_queries.period(days["from"], days["to"], viewer_zone().key), kept, errors


def _audit_filters() -> tuple[audit_queries.AuditFilters, dict[str, str], list[str]]:
    period, days, errors = _period()
    args = {key: (request.args.get(key) or "").strip()[:200] for key in ("actor", "object")}
    args["kind"] = (request.args.get("kind") or "").strip()[:32]
    args["action"] = (request.args.get("action") or "").strip()[:64]
    filters = audit_queries.AuditFilters(period=period, **args)
    return filters, _filter_args({**args, **days}), errors


@bp.get("/")
def home() -> Response:
    """The audit log, newest first: who, what, on which object, in words; filters in the URL."""
    filters, args, errors = _audit_filters()
    result = audit_queries.audit_page(filters, _page(), PER_PAGE)
    actions = audit_queries.audit_actions()
    groups = sorted({a.partition(".")[0] + "." for a in actions} | {"auth.", "ticket.", "link."})
    kinds = sorted(set(audit_queries.audit_object_kinds()) | set(OBJECT_KINDS) - {""})
    return render(
        "compliance/home.html",
        "audit_table",
        rows=describe(result.rows),
        result=result,
        args=args,
        errors=errors,
        action_choices=[(g, _("%(group)s (all)", group=action_label(g[:-1]))) for g in groups]
        + [(a, action_label(a)) for a in actions],
        kind_choices=[(k, str(OBJECT_KINDS.get(k, k.replace("_", " ")))) for k in kinds],
    )


@bp.get("/audit.csv")
def audit_export() -> Response:
    """The audit log with the screen's filters, every row, as CSV."""
    filters, _args, _errors = _audit_filters()

    def rows() -> Any:
        for chunk in audit_queries.audit_chunks(filters):
            for item in describe(chunk):
                obj = item.object or Named("")
                ticket = item.ticket or (obj if item.row.object_type == "ticket" else None)
                yield (
                    item.row.at.isoformat(),
                    format_when(item.row.at),
                    item.actor.label,
                    item.actor.detail or "",
                    item.row.action,
                    item.sentence,
                    obj.kind,
                    obj.label,
                    obj.detail or "",
                    ticket.label if ticket else "",
                    item.facts_text,
                    item.row.client_address or "",
                )

    header = (
        _("Time (UTC)"), _("Time"), _("Who"), _("Address of who"), _("Action"), _("What"),
        _("Object type"), _("Object"), _("About the object"), _("Ticket"), _("Details"),
        _("Network"),
    )  # fmt: skip
    return csv_response("audit-log", header, rows())


# -- helpers -------------------------------------------------------------------------------


@bp.app_template_global()
def state_label(state: str) -> str:
    """A link's state in the reader's language."""
    return str(STATE_LABELS.get(state, state))


@bp.app_template_global()
def outcome_label(outcome: str) -> str:
    """A download attempt's outcome in the reader's language."""
    return str(OUTCOME_LABELS.get(outcome, outcome))


@bp.app_template_global()
def request_kind_label(kind: str | None) -> str:
    """What a data-subject request asks for, in the reader's language."""
    if kind == DataSubjectRequest.ACCESS:
        return _("A copy of their personal data (GDPR Art. 15)")
    return kind or ""


bp.add_app_template_global(download_actor, "download_actor")


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
    return _("1 link revoked.") if count == 1 else _("%(count)s links revoked.", count=count)


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


@bp.get("/links.csv")
def links_export() -> Response:
    """The links list with the screen's filters, every row, as CSV."""
    _form, filters = _link_filters()
    now = utcnow()

    def rows() -> Any:
        for chunk in audit_queries.link_chunks(filters, now):
            for link in chunk:
                yield (
                    link.id,
                    link.file.display_name,
                    link.ticket.number if link.ticket else "",
                    link.contact.name if link.contact else "",
                    link.contact.email if link.contact else "",
                    link.recipient_email or "",
                    link.issued_by.name if link.issued_by else "",
                    link.created_at.isoformat(),
                    link.expires_at.isoformat() if link.expires_at else "",
                    link.download_count,
                    "" if link.max_downloads is None else link.max_downloads,
                    link.state(now).value,
                    link.revoked_at.isoformat() if link.revoked_at else "",
                    link.revoked_by.name if link.revoked_by else "",
                    link.revoke_reason or "",
                )

    header = (
        _("Link"), _("File"), _("Ticket"), _("Customer"), _("Customer address"), _("Sent to"),
        _("Issued by"), _("Created (UTC)"), _("Expires (UTC)"), _("Downloads"),
        _("Download limit"), _("State"), _("Revoked (UTC)"), _("Revoked by"), _("Reason"),
    )  # fmt: skip
    return csv_response("links", header, rows())


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
        message = _("Link revoked.")
    else:
        # A second click must not add an audit row whose reason the link does not carry.
        message = _("That link was already revoked.")
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
    flash(
        _(
            "%(revoked)s Ticket %(number)s has no usable link left.",
            revoked=_links_revoked(count),
            number=ticket.number,
        ),
        "success",
    )
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


def _download_filters() -> tuple[DownloadFilterForm, audit_queries.DownloadFilters, dict, list]:
    form = DownloadFilterForm(formdata=request.args)
    if form.outcome.data not in queries.OUTCOMES:
        form.outcome.data = ""
    outcome = form.outcome.data
    # A reason nobody has hit yet still filters (to nothing): a shared URL must not widen.
    reason = (form.reason.data or "")[:40]
    reasons = queries.download_reasons()
    form.reason.choices = [
        SelectChoice("", _("Any")),
        *(SelectChoice(r, r.replace("_", " ")) for r in sorted({*reasons, reason} - {""})),
    ]
    period, days, errors = _period()
    who = (form.who.data or "")[:200]
    file = (form.file.data or "")[:255]
    filters = audit_queries.DownloadFilters(outcome, reason, who, file, period)
    args = _filter_args({"outcome": outcome, "reason": reason, "who": who, "file": file, **days})
    return form, filters, args, errors


@bp.get("/downloads")
def downloads() -> Response:
    """The global download audit: by outcome, refusal reason, person, file and period."""
    form, filters, args, errors = _download_filters()
    result = audit_queries.downloads_page(filters, _page(), EVENTS_PER_PAGE)
    return render(
        "compliance/downloads.html",
        "download_table",
        form=form,
        result=result,
        filter_args=args,
        errors=errors,
    )


@bp.get("/downloads.csv")
def downloads_export() -> Response:
    """The download audit with the screen's filters, every row, as CSV."""
    _form, filters, _args, _errors = _download_filters()

    def rows() -> Any:
        for chunk in audit_queries.download_chunks(filters):
            for event in chunk:
                who = download_actor(event)
                yield (
                    event.at.isoformat(),
                    format_when(event.at),
                    event.outcome,
                    event.reason or "",
                    event.file.display_name if event.file else "",
                    event.link_id or "",
                    who.kind,
                    who.label,
                    who.detail or "",
                    event.byte_range or "",
                    event.client_address or "",
                    event.user_agent or "",
                )

    header = (
        _("Time (UTC)"), _("Time"), _("Outcome"), _("Reason"), _("File"), _("Link"),
        _("Through"), _("Who"), _("Address of who"), _("Range"), _("Network"), _("User agent"),
    )  # fmt: skip
    return csv_response("downloads", header, rows())


# -- data-subject requests -------------------------------------------------------------------


@bp.get("/requests")
def requests() -> Response:
    """Tickets opened by data-subject requests ("a copy of my data"), newest first."""
    result = audit_queries.request_tickets(_page(), CUSTOMERS_PER_PAGE)
    return render("compliance/requests.html", "request_table", result=result)


@bp.get("/requests/<number>")
def request_ticket(number: str) -> Response:
    """One data-subject request's ticket, read-only: facts and the whole stream.

    Internal notes are shown (marked as such): the officer answers for how the desk
    handled the request, and the notes are part of that record; the audit log already
    names every note. There is no form on this page and no route here writes to a ticket;
    any ticket not opened by a data-subject request is a 404 (``request_ticket`` query).
    """
    ticket = audit_queries.request_ticket(number)
    return render("compliance/request.html", ticket=ticket)


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
    flash(
        _(
            "%(revoked)s %(name)s has no usable link left.",
            revoked=_links_revoked(count),
            name=contact.name,
        ),
        "success",
    )
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
    flash(
        _(
            "%(revoked)s Nothing sent to %(email)s can be fetched now.",
            revoked=_links_revoked(count),
            email=email,
        ),
        "success",
    )
    return _back(form, url_for("compliance.customers"))
