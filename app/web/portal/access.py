"""Portal access without a password at hand: emailed sign-in links, resets, invitations.

Open to anonymous visitors (listed in ``open_endpoints``). The rules live in
``app.accounts.emailed_links``; these views parse forms and pick the page. Requests answer with one
page whatever the address, and a link's GET only shows a button: mail scanners fetch links,
so only the POST behind the button spends one.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import flash, make_response, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_limiter import RateLimitExceeded
from flask_login import login_user
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response
from wtforms import EmailField, PasswordField
from wtforms.validators import DataRequired, EqualTo, Length

from app.accounts import emailed_links
from app.accounts.emailed_links import EmailedLinkRefused
from app.accounts.people import MIN_PASSWORD
from app.extensions import db, limiter
from app.web.portal import bp

# Shared by the sign-in-link and reset forms: both put mail into the same inbox.
MAIL_REQUESTS_PER_HOUR = "5 per hour"


class EmailForm(FlaskForm):
    email = EmailField(_l("Email address"), validators=[DataRequired(), Length(max=254)])


class ConfirmForm(FlaskForm):
    """Only the CSRF token: the button that spends a sign-in link."""


class NewPasswordForm(FlaskForm):
    password = PasswordField(
        _l("New password"), validators=[DataRequired(), Length(min=MIN_PASSWORD, max=1024)]
    )
    repeat = PasswordField(
        _l("New password again"),
        validators=[DataRequired(), EqualTo("password", message=_l("The passwords differ."))],
    )


def _email_key() -> str:
    return "portal-mail-account:" + (request.form.get("email") or "").strip().lower()[:254]


def _too_many() -> tuple[str, int]:
    return render_template(
        "portal/link_notice.html",
        title=_("Too many requests"),
        message=_("Too many link requests. Wait an hour, then try again."),
    ), 429


def mail_request_limits(view: Callable[..., Any]) -> Callable[..., Any]:
    """At most five mail requests an hour per client address and per email address.

    Flask-Limiter checks decorated limits inside the view call, so catching its exception
    here answers in the portal's own words instead of the app-wide "failed sign-ins" page.
    """
    per_address = limiter.shared_limit(
        MAIL_REQUESTS_PER_HOUR, scope="portal-mail-address", methods=["POST"]
    )
    per_email = limiter.shared_limit(
        MAIL_REQUESTS_PER_HOUR, scope="portal-mail-account", key_func=_email_key, methods=["POST"]
    )
    limited = per_address(per_email(view))

    @wraps(view)
    def answer_politely(*args: Any, **kwargs: Any) -> Any:
        try:
            return limited(*args, **kwargs)
        except RateLimitExceeded:
            return _too_many()

    return answer_politely


def _refused(error: EmailedLinkRefused, purpose: str, retry_endpoint: str) -> tuple[str, int]:
    if request.method == "POST":
        emailed_links.record_refusal(purpose, error, request.remote_addr)
        db.session.commit()
    return render_template(
        "portal/link_refused.html", error=error, form=EmailForm(), retry=retry_endpoint
    ), error.status


@bp.post("/sign-in-link")
@mail_request_limits
def sign_in_link_request() -> str | tuple[str, int]:
    """Mail a sign-in link; the answer is the same whether or not the address has an account."""
    form = EmailForm()
    if not form.validate_on_submit():
        return render_template("portal/link_request.html", link_form=form), 422
    emailed_links.request_sign_in_link(form.email.data, request.remote_addr)
    db.session.commit()
    return render_template(
        "portal/link_notice.html",
        title=_("Check your mail"),
        message=_(
            "If the address belongs to a portal account, we sent a sign-in link. "
            "It works once, for 15 minutes."
        ),
    )


@bp.route("/sign-in/<token>", methods=["GET", "POST"])
def sign_in_with_link(token: str) -> Response | str | tuple[str, int]:
    """GET shows a "Sign me in" button; only the POST spends the link and signs in."""
    form = ConfirmForm()
    try:
        if form.validate_on_submit():
            user = emailed_links.consume_sign_in_link(token, request.remote_addr)
            db.session.commit()
            session.clear()  # no session fixation
            login_user(user)
            return redirect(url_for("portal.home"))
        user = emailed_links.check_sign_in_link(token)
    except EmailedLinkRefused as error:
        return _refused(error, emailed_links.SIGN_IN_SALT, "portal.sign_in_link_request")
    response = make_response(render_template("portal/link_confirm.html", form=form, user=user))
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/reset", methods=["GET", "POST"])
@mail_request_limits
def reset_request() -> str | tuple[str, int]:
    """Ask for a reset link; the answer is the same whether or not the address has an account."""
    form = EmailForm()
    if not form.validate_on_submit():
        status = 422 if request.method == "POST" else 200
        return render_template("portal/reset_request.html", form=form), status
    emailed_links.request_password_reset(form.email.data, request.remote_addr)
    db.session.commit()
    return render_template(
        "portal/link_notice.html",
        title=_("Check your mail"),
        message=_(
            "If the address belongs to a portal account, we sent a link to choose a new "
            "password. It works once, for 60 minutes."
        ),
    )


@bp.route("/reset/<token>", methods=["GET", "POST"])
def reset_with_link(token: str) -> Response | str | tuple[str, int]:
    """Choose a password from a reset or invitation link, then sign in with it."""
    form = NewPasswordForm()
    try:
        link = emailed_links.check_password_link(token)
        if form.validate_on_submit():
            emailed_links.reset_password(token, form.password.data, request.remote_addr)
            db.session.commit()
            session.clear()
            flash(_("Your password is set. Sign in with it."), "success")
            return redirect(url_for("portal.login"), code=303)
    except EmailedLinkRefused as error:
        return _refused(error, emailed_links.SET_PASSWORD_SALT, "portal.reset_request")
    status = 422 if request.method == "POST" else 200
    response = make_response(
        render_template(
            "portal/reset_password.html", form=form, link=link, min_length=MIN_PASSWORD
        ),
        status,
    )
    response.headers["Cache-Control"] = "no-store"
    return response
