from __future__ import annotations

from datetime import datetime

from flask import current_app, flash, redirect, request, url_for
from flask_login import current_user
from sqlalchemy import select
from werkzeug.wrappers import Response

from app.actor import Actor, ActorKind
from app.extensions import csrf, db
from app.files import queries as file_queries
from app.files import vault_links
from app.files.serving import DownloadAudit, file_response
from app.files.store import human_size
from app.files.uploads import vault_upload
from app.htmx import render, wants_fragment
from app.i18n import parse_local_datetime
from app.models.files import DownloadOutcome
from app.models.mail import SenderIdentity
from app.models.people import Lead, Role, Team, User, UserRole
from app.models.tickets import Category, Priority, Status, Ticket
from app.models.types import utcnow
from app.pagination import page_count
from app.tickets import (
    allowed_targets,
    assign,
    change_category,
    change_priority,
    change_status,
    set_leads,
    set_tags,
)
from app.tickets.inbox import check_version, is_unread, mark_read, set_in_inbox
from app.tickets.lookup import ticket_by_number, ticket_file, ticket_page
from app.tickets.queries import inbox as inbox_query
from app.tickets.replies import answer
from app.web.agent import bp
from app.web.agent.forms import LinkForm

PER_PAGE = 50


def _actor() -> Actor:
    return Actor.staff(current_user, request.remote_addr)


@bp.get("/")
def inbox() -> Response:
    page = max(request.args.get("page", 1, type=int) or 1, 1)
    rows, total = inbox_query(current_user, page=page, per_page=PER_PAGE)
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
        "categories": db.session.scalars(
            select(Category).where(Category.active.is_(True)).order_by(Category.name)
        ).all(),
        "staff": staff,
        "teams": db.session.scalars(select(Team).order_by(Team.name)).all(),
        "leads": db.session.scalars(select(Lead).order_by(Lead.name)).all(),
        "identities": db.session.scalars(
            select(SenderIdentity)
            .where(SenderIdentity.active.is_(True))
            .order_by(SenderIdentity.is_default.desc(), SenderIdentity.name)
        ).all(),
        "unread": is_unread(t, current_user),
    }


@bp.get("/tickets/<number>")
def ticket(number: str) -> Response:
    return render("agent/ticket.html", **_page_context(ticket_page(number)))


@bp.post("/tickets/<number>/answer")
@csrf.exempt  # checked by receive_form before any file is stored (see app.files.uploads)
def answer_view(number: str) -> Response:
    """Reply or note from the composer; files stream from the request into the vault."""
    t = ticket_by_number(number)
    actor = _actor()
    with vault_upload(actor, ticket=t) as upload:
        fields, files = upload.read()
        internal = fields.get("visibility", "internal") != "public"
        identity = None
        if not internal:
            identity = db.session.get(SenderIdentity, _int(fields.get("identity_id")) or 0)
        answer(
            t,
            actor,
            fields.get("body", ""),
            internal=internal,
            identity=identity,
            files=files,
            set_pending=fields.get("pending") == "on",
            pending_until=_local_datetime(fields.get("pending_until", "")),
        )
        db.session.commit()
    what = "Note added" if internal else "Reply queued for sending"
    flash(f"{what}{f' with {len(files)} file(s)' if files else ''}.", "success")
    return redirect(url_for("agent.ticket", number=t.number), code=303)


def _int(value: str | None) -> int | None:
    return int(value) if value and value.strip().isdigit() else None


def _local_datetime(value: str) -> datetime | None:
    """A datetime-local value in the agent's own time zone, as aware UTC."""
    return parse_local_datetime(value, current_user.timezone)


@bp.post("/tickets/<number>/fields")
def edit_fields(number: str) -> Response:
    """Change header fields in place; a stale page gets a conflict, not an overwrite."""
    t = ticket_by_number(number)
    actor = _actor()
    form = request.form
    check_version(t, _int(form.get("version")))
    if form.get("status") and form["status"] != t.status:
        change_status(t, Status(form["status"]), actor)
    if form.get("priority") and form["priority"] != t.priority:
        change_priority(t, Priority(form["priority"]), actor)
    if "category_id" in form and (_int(form["category_id"]) or None) != t.category_id:
        change_category(t, db.session.get(Category, _int(form["category_id"]) or 0), actor)
    if "tags" in form:
        set_tags(t, [n for n in form["tags"].split(",") if n.strip()], actor)
    if "leads_shown" in form:
        wanted = [i for i in (_int(v) for v in form.getlist("lead_ids")) if i]
        leads = db.session.scalars(select(Lead).where(Lead.id.in_(wanted))).all() if wanted else []
        set_leads(t, list(leads), actor)
    new_assignee = _int(form.get("assignee_id")) if "assignee_id" in form else t.assignee_id
    new_team = _int(form.get("team_id")) if "team_id" in form else t.team_id
    if new_assignee != t.assignee_id or new_team != t.team_id:
        # A team left as it was follows the new manager (their team), as dispatch expects.
        team = db.session.get(Team, new_team or 0) if new_team != t.team_id else None
        assign(
            t,
            actor,
            assignee=db.session.get(User, new_assignee or 0),
            team=team,
            note=form.get("note") or None,
        )
    db.session.commit()
    if wants_fragment():
        return _header(t)
    flash("Ticket updated.", "success")
    return redirect(url_for("agent.ticket", number=t.number), code=303)


def _header(t: Ticket, status: int = 200) -> Response:
    return render(
        "agent/ticket.html", "header", status=status, **_page_context(ticket_page(t.number))
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


@bp.get("/tickets/<number>/live")
def live(number: str) -> Response:
    """Polled by the page: 304 while nothing changed, else the fresh header and stream.

    The composer is outside the swapped region, so what the agent is typing survives.
    """
    t = ticket_by_number(number)
    etag = f"t{t.id}v{t.version}"
    if etag in request.if_none_match:
        response = Response(status=304)
    else:
        response = render("agent/ticket.html", "live", **_page_context(ticket_page(number)))
    response.set_etag(etag)
    response.headers["Cache-Control"] = "no-cache"
    response.vary.add("HX-Request")
    return response


@bp.get("/identities/templates")
def identity_templates() -> Response:
    """The template picker for the chosen identity (htmx swaps the options)."""
    identity = db.session.get(SenderIdentity, request.args.get("identity_id", 0, type=int) or 0)
    return render("agent/_templates.html", templates=identity.templates if identity else [])


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
        flash("That file was erased.", "error")
        return redirect(url_for("agent.ticket", number=t.number))

    return file_response(file, request, DownloadAudit(client, user_id=current_user.id))


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
