"""Portal pages for the signed-in customer: ticket list, new ticket, conversation.

Every view that names a ticket starts with ``portal.ticket_for``, before reading the
body: someone else's ticket is a 404 before any file byte is stored or any row written.
The rules live in ``app.tickets.portal``; views parse, call, commit and render.
"""

from __future__ import annotations

from typing import Any

from flask import current_app, flash, make_response, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Response
from wtforms import SelectChoice

from app.accounts.signin import Audience
from app.actor import Actor
from app.errors import InvalidInput
from app.extensions import csrf, db
from app.files import vault_links
from app.files.serving import DownloadAudit, file_response
from app.files.store import human_size
from app.files.uploads import vault_upload
from app.htmx import render, wants_fragment
from app.mail import display as mail_display
from app.models.tickets import Category, Priority, Ticket
from app.params import id_or_none, page_number
from app.tickets import portal
from app.tickets.customer_writes import reply_reopens
from app.tickets.inbox import mark_read
from app.web.auth.limits import sign_in_limits
from app.web.auth.routes import sign_in_page
from app.web.mail_view import MailView
from app.web.portal import bp
from app.web.portal.forms import CloseForm, NewTicketForm, RatingForm

TICKET = "portal/ticket.html"


@bp.route("/login", methods=["GET", "POST"])
@sign_in_limits
def login() -> Response | str | tuple[str, int]:
    return sign_in_page(Audience.CUSTOMER, "portal/login.html")


def _page_number() -> int:
    return page_number(request.args.get("page"))


@bp.get("/")
def home() -> Response:
    """My tickets: open/closed/all, search in subject; htmx swaps just the list."""
    listing = portal.visible_tickets(
        current_user,
        state=request.args.get("state", "open"),
        text=request.args.get("q", ""),
        page=_page_number(),
    )
    return render(
        "portal/home.html",
        "ticket_list",
        listing=listing,
        states=_state_labels(),
        status_words=portal.status_words,
    )


def _state_labels() -> list[tuple[str, str]]:
    return [("open", _("Open")), ("closed", _("Closed")), ("all", _("All"))]


def _client_address() -> str | None:
    return request.remote_addr


def _new_ticket_form(data: MultiDict[str, str] | None = None) -> NewTicketForm:
    form = NewTicketForm(formdata=data, meta={"csrf": False})
    form.category.choices = [SelectChoice("", _("Not sure"))] + [
        SelectChoice(str(c.id), c.name) for c in portal.active_categories()
    ]
    return form


def _category(value: str | None) -> Category | None:
    category_id = id_or_none(value)
    if category_id is None:
        return None
    category = db.session.get(Category, category_id)
    return category if category is not None and category.active else None


@bp.route("/new", methods=["GET", "POST"])
@csrf.exempt  # checked by receive_form before any file is stored (see app.files.uploads)
def new_ticket() -> Response:
    """Open a request; files stream into the vault, the ticket lands in the agents' inbox."""
    if request.method == "GET":
        return _new_ticket_page(_new_ticket_form())
    actor = Actor.customer(current_user, client_address=_client_address())
    with vault_upload(actor) as upload:
        fields, files = upload.read()
        form = _new_ticket_form(MultiDict(fields))
        if not form.validate():
            dropped = len(upload.stored)
            upload.abandon()
            return _new_ticket_page(form, dropped=dropped, status=422)
        ticket = portal.open_ticket(
            current_user,
            subject=form.subject.data or "",
            description=form.description.data or "",
            category=_category(form.category.data),
            priority=Priority(form.priority.data) if form.priority.data else None,
            files=files,
            client_address=_client_address(),
        )
        db.session.commit()
    flash(_("Your request %(number)s was received.", number=ticket.number), "success")
    return _go_to(url_for("portal.ticket", number=ticket.number))


def _go_to(target: str) -> Response:
    """After an htmx upload, a real navigation (the flash waits in the session)."""
    if wants_fragment():
        response = make_response("", 204)
        response.headers["HX-Redirect"] = target
        return response
    return redirect(target, code=303)


def _new_ticket_page(form: NewTicketForm, dropped: int = 0, status: int = 200) -> Response:
    return render(
        "portal/new.html",
        "ticket_form",
        status=status,
        form=form,
        dropped=dropped,
        max_size=_max_upload_label(),
    )


def _max_upload_label() -> str:
    return human_size(int(current_app.config["VAULT_MAX_UPLOAD_BYTES"]))


def _ticket_context(ticket: Ticket, **extra: Any) -> dict[str, Any]:
    rating = portal.rating_of(ticket)
    rating_form = RatingForm(
        formdata=None,
        data={"score": str(rating.score), "comment": rating.comment or ""} if rating else None,
    )
    entries = portal.public_entries(ticket)
    return {
        "ticket": ticket,
        "entries": entries,
        "mail_in": MailView(ticket, "portal", entries),
        "status_words": portal.status_words,
        "from_customer": portal.is_from_customer,
        "human_size": human_size,
        "rating": rating,
        "rating_form": extra.pop("rating_form", None) or rating_form,
        "close_form": CloseForm(),
        "can_close": portal.can_close(ticket),
        "can_rate": portal.can_rate(ticket),
        "reopens": reply_reopens(ticket),
        "max_size": _max_upload_label(),
        "notice": None,
        **extra,
    }


def _etag(ticket: Ticket) -> str:
    return f"v{ticket.version}"


@bp.get("/tickets/<number>")
def ticket(number: str) -> Response:
    """The conversation, oldest first; opening it marks the desk's replies read."""
    t = portal.ticket_for(current_user, number)
    # Rendered before the commit, which expires every loaded row: afterwards each entry,
    # its files and its author would be fetched again, one query each.
    response = make_response(render_template(TICKET, **_ticket_context(t)))
    mark_read(t, current_user)
    db.session.commit()
    response.headers["Cache-Control"] = "private, no-store"
    return response


@bp.get("/tickets/<number>/messages")
def messages(number: str) -> Response:
    """The live message list: 304 while the ticket's version is unchanged (polled, 5 s)."""
    t = portal.ticket_for(current_user, number)
    etag = _etag(t)
    if request.if_none_match.contains(etag):
        response = make_response("", 304)
    else:
        response = render(TICKET, "messages", **_ticket_context(t))  # before the commit
        mark_read(t, current_user)
        db.session.commit()
    response.set_etag(etag)
    response.headers["Cache-Control"] = "private, no-cache"
    response.vary.add("HX-Request")
    return response


def _after_action(t: Ticket, message: str, **extra: Any) -> Response:
    """htmx: the ticket's main region with a notice; plain forms: flash and redirect."""
    if wants_fragment():
        return render(TICKET, "ticket_main", **_ticket_context(t, notice=message, **extra))
    flash(message, "success")
    return redirect(url_for("portal.ticket", number=t.number), code=303)


@bp.post("/tickets/<number>/reply")
@csrf.exempt  # checked by receive_form before any file is stored (see app.files.uploads)
def reply(number: str) -> Response:
    """Answer from the reply box; an old closed ticket gets a new, linked ticket instead."""
    t = portal.ticket_for(current_user, number)
    actor = Actor.customer(current_user, client_address=_client_address())
    with vault_upload(actor, ticket=t) as upload:
        fields, files = upload.read()
        result = portal.reply(
            current_user, t, fields.get("body", ""), files, client_address=_client_address()
        )
        mark_read(result.ticket, current_user)
        db.session.commit()
    if result.new_ticket:
        flash(
            _(
                "Your ticket was closed long ago; we opened %(number)s for this.",
                number=result.ticket.number,
            ),
            "success",
        )
        return _go_to(url_for("portal.ticket", number=result.ticket.number))
    return _after_action(t, _("Your message was sent."))


@bp.post("/tickets/<number>/close")
def close(number: str) -> Response:
    """The customer needs nothing more."""
    t = portal.ticket_for(current_user, number)
    if not CloseForm().validate_on_submit():
        raise InvalidInput(_("The form was incomplete. Reload the page and try again."))
    portal.close(current_user, t, client_address=_client_address())
    db.session.commit()
    return _after_action(t, _("The ticket is closed. Reply any time to reopen it."))


@bp.post("/tickets/<number>/rating")
def rate(number: str) -> Response:
    """Rate the answer of a solved or closed ticket; again to change the rating."""
    t = portal.ticket_for(current_user, number)
    form = RatingForm()
    if not form.validate_on_submit():
        if wants_fragment():
            context = _ticket_context(t, rating_form=form)
            return render(TICKET, "ticket_main", status=422, **context)
        raise InvalidInput(_("Choose a number of stars."))
    portal.rate(
        current_user,
        t,
        int(form.score.data),
        form.comment.data or "",
        client_address=_client_address(),
    )
    db.session.commit()
    return _after_action(t, _("Thank you for your rating."))


@bp.get("/tickets/<number>/files/<public_id>")
def download(number: str, public_id: str) -> Response:
    """A file of a public message, through the customer's session; audited like links."""
    t = portal.ticket_for(current_user, number)
    file = portal.public_file(t, public_id)
    client = vault_links.Client(request.remote_addr, request.headers.get("User-Agent"))
    return file_response(file, request, DownloadAudit(client, user_id=current_user.id))


@bp.get("/tickets/<number>/inline/<public_id>")
def inline_image(number: str, public_id: str) -> Response:
    """An image inside a mail of the customer's own ticket (external entries only)."""
    t = portal.ticket_for(current_user, number)
    file = mail_display.inline_image(t, public_id, public_only=True)
    client = vault_links.Client(request.remote_addr, request.headers.get("User-Agent"))
    return file_response(file, request, DownloadAudit(client, user_id=current_user.id))
