from __future__ import annotations

from flask import Response, redirect, render_template, request, url_for

from app.extensions import db, limiter
from app.files import vault_links
from app.files.serving import DownloadAudit, file_response
from app.files.store import human_size
from app.models.files import DownloadOutcome, VaultLink
from app.web.links import bp


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


def _refused(
    error: vault_links.VaultLinkRefused | vault_links.VaultLinkNotFound,
) -> tuple[str, int]:
    db.session.commit()  # the refusal is audited even though nothing is served
    state = getattr(error, "state", "invalid")
    return (
        render_template("links/refused.html", message=error.message, state=str(state)),
        error.status,
    )


def _landing(link: VaultLink, error: str | None = None, status: int = 200) -> tuple[str, int]:
    return (
        render_template(
            "links/landing.html",
            link=link,
            file=link.file,
            size=human_size(link.file.size),
            error=error,
        ),
        status,
    )


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
    return _landing(link)


def _wrong_password(response: Response) -> bool:
    """Only password guesses count towards the per-link limit; refusals guess nothing."""
    return response.status_code == 403


@bp.post("/<token>", merge_slashes=False)
@limiter.limit(
    "10 per minute",
    key_func=lambda: f"link:{request.view_args.get('token', '')[:80]}",  # type: ignore[union-attr]
    deduct_when=_wrong_password,
)
def start(token: str) -> Response | tuple[str, int]:
    """Count one download and send the browser to it, with a grant for its ranges."""
    try:
        link = vault_links.resolve(token)
        grant = vault_links.start_download(link, request.form.get("password"), _client())
    except vault_links.VaultLinkRefused as error:
        db.session.commit()
        if error.state == "password":
            return _landing(link, error.message, 403)
        return _refused(error)
    except vault_links.VaultLinkNotFound as error:
        return _refused(error)
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

    return file_response(link.file, request, DownloadAudit(client, link=link))
