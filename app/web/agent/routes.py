from __future__ import annotations

from datetime import datetime
from typing import Any, TypeVar, cast

from flask import current_app, flash, redirect, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from jinja2_fragments.flask import render_block
from sqlalchemy import or_, select
from werkzeug.wrappers import Response

from app.actor import Actor, ActorKind
from app.errors import DomainError, InvalidInput, NotFound
from app.extensions import csrf, db
from app.files import queries as file_queries
from app.files import vault_links
from app.files.names import content_disposition
from app.files.previews import is_previewable, preview_response
from app.files.serving import DownloadAudit, file_response
from app.files.store import human_size
from app.files.uploads import vault_upload
from app.htmx import go_to, is_boosted, is_htmx, render, wants_fragment
from app.i18n import parse_local_datetime
from app.mail import display as mail_display
from app.mail.relay import mails_by_entry, send_again
from app.models.files import DownloadOutcome
from app.models.mail import OutboxMessage, SenderIdentity
from app.models.people import Role, Team, User, UserRole
from app.models.tickets import Category, Priority, Status, Ticket
from app.models.types import utcnow
from app.pagination import clamp_page, page_count
from app.params import choice, flag, int_id, int_ids, page_number
from app.tickets import (
    allowed_targets,
    assign,
    change_category,
    change_priority,
    change_status,
    set_tags,
)
from app.tickets.customer_card import customer_card
from app.tickets.inbox import check_version, is_unread, mark_read, set_in_inbox
from app.tickets.leads import lead_candidates, set_leads
from app.tickets.lookup import ticket_by_number, ticket_file, ticket_page
from app.tickets.queries import inbox as inbox_query
from app.tickets.replies import answer
from app.web import content_security_policy
from app.web.agent import bp
from app.web.agent.forms import LinkForm
from app.web.agent.notifications import tagged, with_bell
from app.web.mail_view import MailView

M = TypeVar("M")

PER_PAGE = 50


def _actor() -> Actor:
    return Actor.staff(current_user, request.remote_addr)


@bp.get("/")
def inbox() -> Response:
    page = page_number(request.args.get("page"))
    rows, total = inbox_query(current_user, page=page, per_page=PER_PAGE)
    page = clamp_page(page, total, PER_PAGE)
    pages = page_count(total, PER_PAGE)
    return render("agent/inbox.html", "ticket_list", rows=rows, total=total, page=page, pages=pages)


def _page_context(t: Ticket) -> dict[str, object]:
    staff = db.session.scalars(
        select(User)
        .join(User.role_rows)
        .where(User.active.is_(True), UserRole.role.in_([Role.AGENT.value, Role.SUPERVISOR.value]))
        .order_by(User.name)
        .distinct()
    ).all()
    return {
        "ticket": t,
        "human_size": human_size,
        "now": utcnow(),
        "statuses": [t.status_enum, *allowed_targets(t.status_enum, ActorKind.STAFF)],
        "priorities": list(Priority),
        # Active ones, and the ticket's own even when retired (it keeps it; see categories).
        "categories": db.session.scalars(
            select(Category)
            .where(or_(Category.active.is_(True), Category.id == t.category_id))
            .order_by(Category.name)
        ).all(),
        "staff": staff,
        "teams": db.session.scalars(select(Team).order_by(Team.name)).all(),
        "lead_candidates": lead_candidates(t),
        "card": customer_card(t),
        "identities": db.session.scalars(
            select(SenderIdentity)
            .where(SenderIdentity.active.is_(True))
            .order_by(SenderIdentity.is_default.desc(), SenderIdentity.name)
        ).all(),
        "unread": is_unread(t, current_user),
        "mail_in": MailView(t, "agent", t.entries),
        "mails": mails_by_entry(t),
        "previewable": is_previewable,
    }


@bp.get("/tickets/<number>")
def ticket(number: str) -> Response:
    """The ticket page; its policy admits the remote images agents asked for on it.

    A boosted navigation keeps the policy of the page it came from, so when this ticket
    needs image hosts of its own, a boosted request is sent on to a full page load.
    """
    context = _page_context(ticket_page(number))
    mail = cast(MailView, context["mail_in"])
    if mail.image_origins and is_boosted():
        return go_to(url_for("agent.ticket", number=cast(Ticket, context["ticket"]).number))
    response = render("agent/ticket.html", **context)
    if mail.image_origins:
        response.headers["Content-Security-Policy"] = content_security_policy(
            image_origins=mail.image_origins
        )
    return response


@bp.get("/tickets/<number>/inline/<public_id>")
def inline_image(number: str, public_id: str) -> Response:
    """An image from inside a received mail, shown in place (and in the download audit)."""
    t = ticket_by_number(number)
    file = mail_display.inline_image(t, public_id, public_only=False)
    client = vault_links.Client(request.remote_addr, request.headers.get("User-Agent"))
    return file_response(file, request, DownloadAudit(client, user_id=current_user.id))


@bp.get("/tickets/<number>/mail/<int:entry_id>/original")
def mail_original(number: str, entry_id: int) -> Response:
    """ "Show original": the message as it arrived, as plain text that the browser never runs."""
    t = ticket_by_number(number)
    entry = mail_display.mail_entry(t, entry_id)
    file = mail_display.original_of(entry)
    client = vault_links.Client(request.remote_addr, request.headers.get("User-Agent"))
    response = file_response(file, request, DownloadAudit(client, user_id=current_user.id))
    response.headers["Content-Type"] = "text/plain; charset=utf-8"
    response.headers["Content-Disposition"] = content_disposition(f"{t.number}-{entry.id}.eml.txt")
    return response


@bp.post("/tickets/<number>/mail/<int:entry_id>/remote-images")
def show_remote_images(number: str, entry_id: int) -> Response:
    """Load this mail's remote images from now on; the page reloads to widen its policy."""
    t = ticket_by_number(number)
    entry = mail_display.mail_entry(t, entry_id)
    mail_display.show_remote_images(entry, _actor())
    db.session.commit()
    target = url_for("agent.ticket", number=t.number, _anchor=f"entry-{entry.id}")
    if is_htmx():
        response = Response(status=204)
        response.headers["HX-Refresh"] = "true"
        response.vary.add("HX-Request")
        return response
    return redirect(target, code=303)


COMPOSER_FIELDS = (
    "visibility",
    "identity_id",
    "template",
    "body",
    "keep_unassigned",
    "pending",
    "pending_until",
)


@bp.post("/tickets/<number>/answer")
@csrf.exempt  # checked by receive_form before any file is stored (see app.files.uploads)
def answer_view(number: str) -> Response:
    """Reply or note from the composer; files stream from the request into the vault.

    A refusal (empty message, no sender address, a date in the past) comes back in the
    composer with everything typed kept: htmx swaps just the composer, a plain post gets
    the ticket page with the composer filled. Files already stored are shredded then, and
    the message says so, since no browser lets a page refill a file input.
    """
    t = ticket_by_number(number)
    actor = _actor()
    with vault_upload(actor, ticket=t) as upload:
        fields, files = upload.read()
        draft = {key: fields.get(key, "") for key in COMPOSER_FIELDS}
        internal = draft["visibility"] != "public"
        try:
            identity = None
            if not internal:
                identity_id = int_id(draft["identity_id"], _("answer from"))
                identity = db.session.get(SenderIdentity, identity_id) if identity_id else None
            answer(
                t,
                actor,
                draft["body"],
                internal=internal,
                identity=identity,
                files=files,
                set_pending=flag(draft["pending"]),
                pending_until=_local_datetime(draft["pending_until"]),
                take_ownership=not flag(draft["keep_unassigned"]),
            )
        except DomainError as refused:
            dropped = len(upload.stored)
            upload.abandon()
            return _composer(number, draft, refused, dropped)
        db.session.commit()
    if internal:
        done = _("Note added with %(n)s file(s).", n=len(files)) if files else _("Note added.")
    elif files:
        done = _("Reply queued for sending with %(n)s file(s).", n=len(files))
    else:
        done = _("Reply queued for sending.")
    flash(done, "success")
    return go_to(url_for("agent.ticket", number=t.number))


def _composer(number: str, draft: dict[str, str], refused: DomainError, dropped: int) -> Response:
    """The composer with the refusal and the draft: alone for htmx, in the page otherwise."""
    message = refused.message
    if dropped:
        message += " " + _(
            "The %(n)s attached file(s) were not kept: choose them again before sending.",
            n=dropped,
        )
    return render(
        "agent/ticket.html",
        "composer",
        status=refused.status,
        **_page_context(ticket_page(number)),
        draft=draft,
        composer_error=message,
    )


def _local_datetime(value: str) -> datetime | None:
    """A datetime-local value in the agent's own time zone, as aware UTC."""
    return parse_local_datetime(value, current_user.timezone)


def _chosen(model: type[M], value: str | None, what: str) -> M | None:
    """The row a select names: blank is "none", an id that names no row is refused.

    ``what`` is the field's name already in the reader's language (``_("category")``):
    German capitalises nouns, so it is not lower-cased here.
    """
    row_id = int_id(value, what)
    if row_id is None:
        return None
    row = db.session.get(model, row_id)
    if row is None:
        raise InvalidInput(
            _("There is no such %(what)s; reload the page and choose again.", what=what)
        )
    return row


@bp.post("/tickets/<number>/fields")
def edit_fields(number: str) -> Response:
    """Change header fields in place; a stale page gets a conflict, not an overwrite.

    A refused change answers with the header as it now is and the reason in it (409 for a
    conflict, 422 for a value it cannot take), so the selects show the truth again.
    """
    t = ticket_by_number(number)
    try:
        _apply_fields(t, request.form)
    except DomainError as refused:
        db.session.rollback()
        return _header(t, status=refused.status, header_error=refused.message)
    db.session.commit()
    if wants_fragment():
        return _header(t)
    flash(_("Ticket updated."), "success")
    return redirect(url_for("agent.ticket", number=t.number), code=303)


def _apply_fields(t: Ticket, form: Any) -> None:
    actor = _actor()
    check_version(t, int_id(form.get("version"), _("version")))
    status = choice(Status, form.get("status"), _("status"))
    if status is not None and status.value != t.status:
        change_status(t, status, actor)
    priority = choice(Priority, form.get("priority"), _("priority"))
    if priority is not None and priority.value != t.priority:
        change_priority(t, priority, actor)
    if "category_id" in form:
        category = _chosen(Category, form["category_id"], _("category"))
        if (category.id if category else None) != t.category_id:
            change_category(t, category, actor)
    if "tags" in form:
        set_tags(t, [n for n in form["tags"].split(",") if n.strip()], actor)
    if "leads_shown" in form:
        set_leads(t, int_ids(form.getlist("lead_ids"), "Leads"), actor)
    assignee = _chosen(User, form["assignee_id"], _("manager")) if "assignee_id" in form else None
    team = _chosen(Team, form["team_id"], _("team")) if "team_id" in form else None
    new_assignee = (assignee.id if assignee else None) if "assignee_id" in form else t.assignee_id
    new_team = (team.id if team else None) if "team_id" in form else t.team_id
    if new_assignee != t.assignee_id or new_team != t.team_id:
        # A team left as it was follows the new manager (their team), as dispatch expects.
        assign(
            t,
            actor,
            assignee=db.session.get(User, new_assignee) if new_assignee else None,
            team=team if new_team != t.team_id else None,
            note=form.get("note") or None,
        )


def _header(t: Ticket, status: int = 200, **extra: Any) -> Response:
    return render(
        "agent/ticket.html",
        "header",
        status=status,
        **_page_context(ticket_page(t.number)),
        **extra,
    )


@bp.post("/tickets/<number>/read")
def mark_read_view(number: str) -> Response | tuple[str, int]:
    """Sent by the page after a few seconds of viewing, or by the Mark as read button."""
    t = ticket_by_number(number)
    mark_read(t, current_user)
    db.session.commit()
    if wants_fragment():
        return "", 204
    return redirect(url_for("agent.ticket", number=t.number), code=303)


@bp.post("/tickets/<number>/inbox")
def inbox_view(number: str) -> Response:
    t = ticket_by_number(number)
    set_in_inbox(t, _actor(), request.form.get("in_inbox") == "1")
    db.session.commit()
    if wants_fragment():
        return _header(t)
    return redirect(url_for("agent.ticket", number=t.number), code=303)


@bp.post("/tickets/<number>/assign-me")
def assign_me(number: str) -> Response:
    """ "Assign to me" (button and the ``a`` key): the same assignment as the Manager field.

    A page older than the ticket gets the conflict beside the fields, not an overwrite of
    a colleague who took it a moment earlier.
    """
    t = ticket_by_number(number)
    try:
        check_version(t, int_id(request.form.get("version"), "version"))
        me = db.session.get(User, current_user.id)
        assign(t, _actor(), assignee=me, team=t.team)
    except DomainError as refused:
        db.session.rollback()
        return _header(t, status=refused.status, header_error=refused.message)
    db.session.commit()
    if wants_fragment():
        return _header(t)
    flash(_("You manage this ticket now."), "success")
    return redirect(url_for("agent.ticket", number=t.number), code=303)


@bp.get("/tickets/<number>/leads")
def lead_search(number: str) -> Response:
    """The lead picker's search: contacts of this ticket's account only (see tickets.leads)."""
    t = ticket_by_number(number)
    query = (request.args.get("q") or "").strip()[:100]
    return render(
        "agent/ticket.html",
        "lead_results",
        **_page_context(ticket_page(number)) | {"lead_candidates": lead_candidates(t, query)},
        lead_query=query,
    )


@bp.get("/tickets/<number>/live")
def live(number: str) -> Response:
    """Polled by the page: 304 while nothing changed, else the fresh stream and facts.

    The stream is the swap's target; the facts column (``#ticket-header``) comes along as
    an out-of-band swap so its version and values stay current. The composer is outside
    both, so what the agent is typing survives; app.js skips a poll while the agent is
    typing inside the facts (``data-live-guard``).
    """
    t = ticket_by_number(number)
    etag = tagged(f"t{t.id}v{t.version}")
    if etag in request.if_none_match:
        response = Response(status=304)
    else:
        context = _page_context(ticket_page(number))
        response = render("agent/ticket.html", "live", **context)
        if wants_fragment():
            facts = render_block("agent/ticket.html", "header", oob=True, **context)
            response.set_data(response.get_data() + facts.encode())
        with_bell(response)
    response.set_etag(etag)
    response.headers["Cache-Control"] = "no-cache"
    response.vary.add("HX-Request")
    return response


@bp.post("/tickets/<number>/mails/<int:outbox_id>/send-again")
def send_again_view(number: str, outbox_id: int) -> Response:
    """A failed reply back in the queue; htmx gets the stream entry with its new state."""
    t = ticket_by_number(number)
    message = db.session.get(OutboxMessage, outbox_id)
    if message is None or message.ticket_id != t.id or message.entry is None:
        raise NotFound(_("There is no such mail on this ticket."))
    send_again(message, _actor())
    db.session.commit()
    if wants_fragment():
        return render(
            "agent/_entry.html",
            ticket=t,
            entry=message.entry,
            mails=mails_by_entry(t),
            mail_in=MailView(t, "agent", [message.entry]),
            human_size=human_size,
            previewable=is_previewable,
        )
    flash(_("The mail is queued for sending again."), "success")
    return redirect(url_for("agent.ticket", number=t.number), code=303)


@bp.get("/identities/templates")
def identity_templates() -> Response:
    """The template picker for the chosen identity (htmx swaps the options)."""
    identity = _chosen(SenderIdentity, request.args.get("identity_id"), _("answer from"))
    number = request.args.get("number")
    t = ticket_by_number(number) if number else None  # placeholders filled in for it
    templates = identity.templates if identity else []
    return render("agent/_templates.html", templates=templates, ticket=t)


@bp.get("/tickets/<number>/files/<public_id>")
def download(number: str, public_id: str) -> Response:
    """Staff fetch a ticket's file through their session; recorded like link downloads."""
    t = ticket_by_number(number)
    file = ticket_file(t, public_id)
    client = vault_links.Client(request.remote_addr, request.headers.get("User-Agent"))
    if file.is_erased:
        vault_links.record(
            None, file, DownloadOutcome.REFUSED, client, reason="erased", user_id=current_user.id
        )
        db.session.commit()
        flash(_("That file was erased."), "error")
        return redirect(url_for("agent.ticket", number=t.number))

    return file_response(file, request, DownloadAudit(client, user_id=current_user.id))


@bp.get("/tickets/<number>/files/<public_id>/preview")
def preview(number: str, public_id: str) -> Response:
    """A raster image attachment inline, for its thumbnail (see app/files/previews.py).

    The same checks as ``download``: staff only (the blueprint's guard), and the file
    must belong to the ticket named in the URL.
    """
    t = ticket_by_number(number)
    file = ticket_file(t, public_id)
    client = vault_links.Client(request.remote_addr, request.headers.get("User-Agent"))
    return preview_response(file, request, DownloadAudit(client, user_id=current_user.id))


@bp.route("/tickets/<number>/files/<public_id>/links", methods=["GET", "POST"])
def file_links_view(number: str, public_id: str) -> Response:
    """The file's links and a form for a new one: a self-contained htmx component."""
    t = ticket_by_number(number)
    file = ticket_file(t, public_id)
    form = LinkForm()
    if request.method == "GET":
        form.days.data = current_app.config["LINK_DAYS"]
        if t.contact is not None:
            form.recipient.data = t.contact.email
    new_url = None
    status = 200
    if form.validate_on_submit():
        link = vault_links.issue_link(
            file,
            _actor(),
            days=form.days.data,
            max_downloads=form.max_downloads.data,
            recipient_email=form.recipient.data,
            password=form.password.data or None,
        )
        db.session.commit()
        new_url = vault_links.link_url(link)
    elif request.method == "POST":
        status = 422
    return render(
        "agent/file_links.html",
        "component",
        status=status,
        ticket=t,
        file=file,
        form=form,
        links=file_queries.links_of_file(file),
        new_url=new_url,
        now=utcnow(),
        link_url=vault_links.link_url,
    )
