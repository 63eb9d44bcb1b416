"""The link pages: landing, recipient codes, the counted start and the bytes.

What a browser carries for links lives in its session: a random ``link_browser`` id
(made when it first asks for a code), when it last asked for a code per link, and the
proofs that right codes left per link. The rules are in ``app.files``; these views only
translate between the session, the forms and the domain.

The domain words its refusals in English (``app.files``); ``_said`` puts the ones a
visitor can meet into the page's language here, so a German recipient reads German
whatever refused the link, and an unknown sentence still shows in English.
"""

from __future__ import annotations

import secrets
import time

from flask import Response, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user

from app.extensions import db
from app.files import recipients, vault_links
from app.files.serving import DownloadAudit, file_response
from app.files.store import human_size
from app.models.files import DownloadOutcome, VaultLink
from app.web.links import bp

BROWSER_KEY = "link_browser"
CODES_KEY = "link_codes"
PROOFS_KEY = "link_proofs"
KEPT_PROOFS = 10  # the session is a cookie: keep it small
# Refusals that leave the visitor on the landing page, with the reason next to the form.
ON_LANDING = {"password", "recipient", "code", "limit", "unavailable"}
# The domain's refusals (English, see app.files) in the visitor's language.
SAID = {
    "This link is not valid.": _l("This link is not valid."),
    "This link was revoked by the sender.": _l("This link was revoked by the sender."),
    "This link has expired.": _l("This link has expired."),
    "This link has been used as often as it allows.": _l(
        "This link has been used as often as it allows."
    ),
    "The file behind this link was erased.": _l("The file behind this link was erased."),
    "Passwords cannot be checked right now. Try again shortly.": _l(
        "Passwords cannot be checked right now. Try again shortly."
    ),
    "The password is not right.": _l("The password is not right."),
    "This download has timed out. Open the link again.": _l(
        "This download has timed out. Open the link again."
    ),
    "This download does not belong to this link.": _l(
        "This download does not belong to this link."
    ),
    "There is no valid code for this browser. Ask for a new one.": _l(
        "There is no valid code for this browser. Ask for a new one."
    ),
    "This link is not bound to a recipient.": _l("This link is not bound to a recipient."),
    "This code was tried too often. Ask for a new one.": _l(
        "This code was tried too often. Ask for a new one."
    ),
    "That code is not right.": _l("That code is not right."),
    "No code can be sent now. Try again shortly.": _l(
        "No code can be sent now. Try again shortly."
    ),
    "Codes cannot be checked right now.": _l("Codes cannot be checked right now."),
    "Too many codes were sent for this link in the last hour. Try again later, "
    "or sign in to the portal.": _l(
        "Too many codes were sent for this link in the last hour. Try again later, "
        "or sign in to the portal."
    ),
    "Too many wrong attempts for this link from your network. Wait a while, then try again.": _l(
        "Too many wrong attempts for this link from your network. Wait a while, then try again."
    ),
}


def _said(message: str, link: VaultLink | None = None) -> str:
    """A refusal in the visitor's language; one we do not know stays as the domain said it."""
    if message in SAID:
        return str(SAID[message])
    if link is not None and link.recipient_email and message.startswith("This file is only for"):
        return _(
            "This file is only for %(address)s. Confirm a code mailed to that address first.",
            address=vault_links.mask_address(link.recipient_email),
        )
    return message


@bp.before_request
def _only_plain_paths() -> tuple[str, int] | None:
    """Refuse percent-encoded spellings of a link path before the token is even decoded.

    Tokens and grants consist of unreserved characters only, so the URLs we issue never
    contain ``%``. The server decodes ``%41`` to ``A`` before routing, which would give
    every token many more spellings; the raw request URI still shows them. (Servers that
    do not pass the raw URI still get the decoded token checked by ``LinkSigner``.)
    """
    raw = request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI") or ""
    if "%" in raw.partition("?")[0]:
        return _refused(vault_links.VaultLinkNotFound("This link is not valid."))
    return None


def _client() -> vault_links.Client:
    return vault_links.Client(request.remote_addr, request.headers.get("User-Agent"))


def _visitor(link: VaultLink) -> vault_links.Visitor:
    proofs = session.get(PROOFS_KEY) or {}
    return vault_links.Visitor(
        client=_client(),
        user=current_user if current_user.is_authenticated else None,
        browser=session.get(BROWSER_KEY),
        proof=proofs.get(link.id) if isinstance(proofs, dict) else None,
    )


def _code_pending(link: VaultLink) -> bool:
    """Whether this browser asked for a code for ``link`` recently enough to type it."""
    asked = (session.get(CODES_KEY) or {}).get(link.id)
    return isinstance(asked, int) and time.time() - asked < recipients.CODE_SECONDS


def _refused(
    error: vault_links.VaultLinkRefused | vault_links.VaultLinkNotFound,
) -> tuple[str, int]:
    db.session.commit()  # the refusal is audited even though nothing is served
    state = getattr(error, "state", "invalid")
    return (
        render_template("links/refused.html", message=_said(error.message), state=str(state)),
        error.status,
    )


def _landing(
    link: VaultLink, error: str | None = None, status: int = 200, notice: str | None = None
) -> tuple[str, int]:
    visitor = _visitor(link)
    return (
        render_template(
            "links/landing.html",
            link=link,
            token=request.view_args["token"] if request.view_args else "",
            file=link.file,
            size=human_size(link.file.size),
            error=error,
            notice=notice,
            recipient=(
                vault_links.mask_address(link.recipient_email) if link.recipient_email else None
            ),
            proven=vault_links.recipient_proof(link, visitor),
            code_pending=_code_pending(link),
            code_minutes=recipients.CODE_SECONDS // 60,
            sign_in_url=url_for("portal.login", next=request.path),
        ),
        status,
    )


def _answer(link: VaultLink, error: vault_links.VaultLinkRefused) -> tuple[str, int]:
    """A refusal: on the landing page when the visitor can do something about it."""
    db.session.commit()
    if str(error.state) in ON_LANDING:
        return _landing(link, _said(error.message, link), error.status)
    return _refused(error)


@bp.route("/<token>", methods=["GET", "HEAD"], merge_slashes=False)
def landing(token: str) -> tuple[str, int]:
    """Show what the link holds; opening it (people and mail scanners alike) counts nothing."""
    try:
        link = vault_links.resolve(token)
        vault_links.check_usable(link, _client())
    except (vault_links.VaultLinkNotFound, vault_links.VaultLinkRefused) as error:
        return _refused(error)
    vault_links.record(link, link.file, DownloadOutcome.VIEWED, _client())
    db.session.commit()
    notice = None
    if link.recipient_email and _code_pending(link):
        notice = _(
            "We mailed a code to %(address)s. If you asked more than once, only the newest "
            "code works.",
            address=vault_links.mask_address(link.recipient_email),
        )
    return _landing(link, notice=notice)


@bp.post("/<token>/code", merge_slashes=False)
def send_code(token: str) -> Response | tuple[str, int]:
    """Queue a code to the link's recipient for this browser; then back to the landing page."""
    try:
        link = vault_links.resolve(token)
    except vault_links.VaultLinkNotFound as error:
        return _refused(error)
    if not isinstance(session.get(BROWSER_KEY), str):
        session[BROWSER_KEY] = secrets.token_urlsafe(16)
    try:
        recipients.request_code(link, _visitor(link))
    except vault_links.VaultLinkRefused as error:
        return _answer(link, error)
    db.session.commit()  # hands the mail job to the queue
    now = int(time.time())
    codes = {
        key: asked
        for key, asked in (session.get(CODES_KEY) or {}).items()
        if isinstance(asked, int) and now - asked < recipients.CODE_SECONDS
    }
    codes[link.id] = now
    session[CODES_KEY] = codes
    return redirect(url_for("links.landing", token=token), code=303)


@bp.post("/<token>/confirm", merge_slashes=False)
def confirm(token: str) -> Response | tuple[str, int]:
    """Check a typed code; a right one opens the link in this browser."""
    try:
        link = vault_links.resolve(token)
    except vault_links.VaultLinkNotFound as error:
        return _refused(error)
    try:
        proof = recipients.confirm_code(link, _visitor(link), request.form.get("code", ""))
    except vault_links.VaultLinkRefused as error:
        return _answer(link, error)
    db.session.commit()
    proofs = dict(session.get(PROOFS_KEY) or {})
    proofs.pop(link.id, None)
    proofs[link.id] = proof
    session[PROOFS_KEY] = dict(list(proofs.items())[-KEPT_PROOFS:])
    codes = dict(session.get(CODES_KEY) or {})
    codes.pop(link.id, None)
    session[CODES_KEY] = codes
    return redirect(url_for("links.landing", token=token), code=303)


@bp.post("/<token>", merge_slashes=False)
def start(token: str) -> Response | tuple[str, int]:
    """Count one download and send the browser to it, with a grant for its ranges."""
    try:
        link = vault_links.resolve(token)
    except vault_links.VaultLinkNotFound as error:
        return _refused(error)
    try:
        grant = vault_links.start_download(link, request.form.get("password"), _visitor(link))
    except vault_links.VaultLinkRefused as error:
        return _answer(link, error)
    db.session.commit()
    return redirect(url_for("links.download", token=token, grant=grant), code=303)


@bp.route("/<token>/d/<grant>", methods=["GET", "HEAD"], merge_slashes=False)
def download(token: str, grant: str) -> Response | tuple[str, int]:
    """The bytes. Every request, each Range included, re-checks the link first."""
    client = _client()
    try:
        link = vault_links.resolve(token)
        vault_links.check_grant(link, grant, client)
    except (vault_links.VaultLinkNotFound, vault_links.VaultLinkRefused) as error:
        return _refused(error)
    user_id = current_user.id if current_user.is_authenticated else None
    return file_response(link.file, request, DownloadAudit(client, link=link, user_id=user_id))
