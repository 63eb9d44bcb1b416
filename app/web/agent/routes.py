from __future__ import annotations

from flask import current_app, flash, redirect, request, url_for
from flask_login import current_user
from werkzeug.wrappers import Response

from app.actor import Actor
from app.extensions import csrf, db
from app.files import links as file_links
from app.files.serving import file_response
from app.files.store import discard, human_size, store_upload
from app.htmx import render
from app.models.files import DownloadOutcome, VaultFile
from app.models.types import utcnow
from app.tickets import add_note
from app.tickets.lookup import file_links as links_of
from app.tickets.lookup import ticket_by_number, ticket_file, ticket_page
from app.tickets.queries import inbox as inbox_query
from app.uploads import FilePart
from app.web.agent import bp
from app.web.agent.forms import LinkForm
from app.web.upload_forms import receive_form

PER_PAGE = 50


def _actor() -> Actor:
    return Actor.staff(current_user, request.remote_addr)


@bp.get("/")
def inbox() -> Response:
    page = max(request.args.get("page", 1, type=int) or 1, 1)
    rows, total = inbox_query(current_user, page=page, per_page=PER_PAGE)
    pages = max((total + PER_PAGE - 1) // PER_PAGE, 1)
    return render("agent/inbox.html", "ticket_list", rows=rows, total=total, page=page, pages=pages)


@bp.get("/tickets/<number>")
def ticket(number: str) -> Response:
    t = ticket_page(number)
    return render("agent/ticket.html", ticket=t, human_size=human_size, now=utcnow())


@bp.post("/tickets/<number>/notes")
@csrf.exempt  # checked by receive_form before any file is stored (see upload_forms)
def add_note_view(number: str) -> Response:
    """An internal note with files; the files stream from the request into the vault."""
    t = ticket_by_number(number)
    actor = _actor()
    stored: list[VaultFile] = []

    def store(part: FilePart) -> VaultFile:
        row = store_upload(part, part.filename, actor, ticket=t)
        stored.append(row)
        return row

    try:
        fields, files = receive_form(store)
        entry = add_note(t, actor, fields.get("body", "").strip() or _files_text(files))
        for file in files:
            file.entry = entry
        db.session.commit()
    except Exception:
        db.session.rollback()
        discard([f.blob_id for f in stored])
        raise
    flash(f"Note added{f' with {len(files)} file(s)' if files else ''}.", "success")
    return redirect(url_for("agent.ticket", number=t.number), code=303)


def _files_text(files: list[VaultFile]) -> str:
    return "Attached " + ", ".join(f.display_name for f in files) if files else ""


@bp.get("/tickets/<number>/files/<public_id>")
def download(number: str, public_id: str) -> Response:
    """Staff fetch a ticket's file through their session; recorded like link downloads."""
    t = ticket_by_number(number)
    file = ticket_file(t, public_id)
    client = file_links.Client(request.remote_addr, request.headers.get("User-Agent"))
    if file.is_erased:
        file_links.record(
            None, file, DownloadOutcome.REFUSED, client, reason="erased", user_id=current_user.id
        )
        db.session.commit()
        flash("That file was erased.", "error")
        return redirect(url_for("agent.ticket", number=t.number))

    def served(byte_range: str | None) -> None:
        file_links.record(
            None,
            file,
            DownloadOutcome.SERVED,
            client,
            byte_range=byte_range,
            user_id=current_user.id,
        )
        db.session.commit()

    return file_response(file, request, on_serve=served)


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
        link = file_links.issue_link(
            file,
            _actor(),
            days=form.days.data,
            max_downloads=form.max_downloads.data,
            recipient_email=form.recipient.data,
            password=form.password.data or None,
        )
        db.session.commit()
        new_url = file_links.link_url(link)
    elif request.method == "POST":
        status = 422
    return render(
        "agent/file_links.html",
        "component",
        status=status,
        ticket=t,
        file=file,
        form=form,
        links=links_of(file),
        new_url=new_url,
        now=utcnow(),
        link_url=file_links.link_url,
    )
