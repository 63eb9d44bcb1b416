"""Blueprints (one per audience), error pages and what every template needs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from flask import Flask, Response, make_response, render_template
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf.csrf import CSRFError
from jinja2_fragments.flask import render_block
from werkzeug.exceptions import HTTPException, InternalServerError

from app.accounts.signin import load_user
from app.errors import DomainError
from app.extensions import db, login_manager
from app.htmx import install as install_htmx
from app.htmx import is_htmx, message_to_flash
from app.models.people import Role
from app.params import IdConverter
from app.web.guards import sign_in_redirect

NAVIGATION: tuple[tuple[Any, str, tuple[Role, ...]], ...] = (
    (_l("Inbox"), "agent.inbox", (Role.AGENT, Role.SUPERVISOR)),
    (_l("My tasks"), "agent.my_tasks", (Role.AGENT, Role.SUPERVISOR)),
    (_l("Mail to review"), "agent.mail_review", (Role.AGENT, Role.SUPERVISOR)),
    (_l("Absences"), "agent.absences", (Role.AGENT, Role.SUPERVISOR)),
    (_l("Compliance"), "compliance.home", (Role.COMPLIANCE,)),
    (_l("Admin"), "admin.home", (Role.ADMIN,)),
    (_l("Mail log"), "admin.mail_log", (Role.ADMIN,)),
    (_l("My tickets"), "portal.home", (Role.CUSTOMER,)),
    (_l("Profile"), "portal.profile", (Role.CUSTOMER,)),
)


def navigation() -> list[tuple[Any, str]]:
    """The menu a user sees: one entry per area their roles open."""
    if not current_user.is_authenticated:
        return []
    return [(label, ep) for label, ep, roles in NAVIGATION if current_user.has_role(*roles)]


def error_page(status: int, title: str, message: str) -> Response:
    """Errors as a full page, or as a message for the flash area for any htmx request.

    Boosted requests too: the page they came from stays, and says why nothing happened,
    instead of a second top bar drawn inside whatever the element targets.
    """
    if is_htmx():
        body = render_block("errors/error.html", "message", title=title, message=message)
        return message_to_flash(make_response(body, status))
    response = make_response(
        render_template("errors/error.html", title=title, message=message), status
    )
    response.vary.add("HX-Request")
    return response


def register_web(app: Flask) -> None:
    # Before any blueprint adds its rules: every <int:...> in a path is an id (see params).
    app.url_map.converters["int"] = IdConverter
    install_htmx(app)
    from app.web.admin import bp as admin_bp
    from app.web.agent import bp as agent_bp
    from app.web.api import bp as api_bp
    from app.web.auth import bp as auth_bp
    from app.web.compliance import bp as compliance_bp
    from app.web.links import bp as links_bp
    from app.web.portal import bp as portal_bp

    for blueprint in (auth_bp, portal_bp, agent_bp, compliance_bp, admin_bp, api_bp, links_bp):
        app.register_blueprint(blueprint)

    login_manager.user_loader(load_user)
    login_manager.unauthorized_handler(sign_in_redirect)
    login_manager.session_protection = "basic"

    @app.context_processor
    def _layout() -> dict[str, Any]:
        return {"navigation": navigation()}

    @app.errorhandler(DomainError)
    def _domain_error(error: DomainError) -> Response:
        db.session.rollback()
        return error_page(error.status, _("That did not work"), error.message)

    @app.errorhandler(CSRFError)
    def _csrf_error(error: CSRFError) -> Response:
        return error_page(
            400,
            _("The form has expired"),
            _("Your session changed or the page was open too long. Reload the page and try again."),
        )

    @app.errorhandler(429)
    def _too_many(error: HTTPException) -> Response:
        return error_page(
            429,
            _("Too many attempts"),
            _("Too many failed sign-ins. Wait a few minutes, then try again."),
        )

    @app.errorhandler(403)
    def _forbidden(error: HTTPException) -> Response:
        return error_page(403, _("Not for your role"), _("Your account cannot open this page."))

    @app.errorhandler(404)
    def _not_found(error: HTTPException) -> Response:
        return error_page(404, _("Not found"), _("There is nothing at this address."))

    @app.errorhandler(HTTPException)
    def _other_http_error(error: HTTPException) -> Response | HTTPException:
        """Every other refusal (400, 405, 413, ...) looks like ours, with werkzeug's sentence."""
        if error.code is None or error.code < 400:
            return error
        return error_page(error.code, _("That did not work"), error.description or error.name)

    @app.errorhandler(InternalServerError)
    def _server_error(error: InternalServerError) -> Response:
        db.session.rollback()
        return error_page(
            500,
            _("Something went wrong"),
            _("The error was logged. Try again in a moment, or tell your administrator."),
        )

    @app.after_request
    def _security_headers(response: Response) -> Response:
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("Content-Security-Policy", content_security_policy())
        return response


def content_security_policy(*, image_origins: Sequence[str] = ()) -> str:
    """The policy of every page; a ticket page may admit a few more image hosts.

    ``image_origins`` are the origins of remote images an agent asked to see on that ticket
    (see ``app.mail.display``): nothing else remote ever loads. ``style`` attributes are
    allowed everywhere (``style-src-attr``) because received mail keeps its sanitised inline
    styles, which are filtered to properties that load nothing, and htmx's boosted
    navigation keeps the first page's policy for the pages it swaps in: a policy that only
    ticket pages had would apply or not depending on how the agent got there. Scripts,
    style elements and style sheets from elsewhere stay forbidden.
    """
    images = " ".join(["'self'", "data:", *image_origins])
    return (
        f"default-src 'self'; img-src {images}; style-src 'self'; "
        "style-src-attr 'unsafe-inline'; "
        "script-src 'self'; frame-ancestors 'none'; form-action 'self'"
    )
