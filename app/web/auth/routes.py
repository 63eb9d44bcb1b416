from __future__ import annotations

from flask import flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required, logout_user
from werkzeug.wrappers import Response

from app import audit
from app.accounts.signin import Audience, authenticate
from app.actor import Actor
from app.extensions import db
from app.web.auth import bp
from app.web.auth.forms import LoginForm
from app.web.auth.limits import FAILED, sign_in_limits
from app.web.auth.second_factor import begin_sign_in
from app.web.guards import home_for, safe_next


def sign_in_page(audience: Audience, template: str) -> Response | str | tuple[str, int]:
    """Shared by /login and /portal/login: only the audience and the page differ."""
    if current_user.is_authenticated:
        return redirect(home_for(current_user))
    form = LoginForm()
    if form.validate_on_submit():
        user = authenticate(form.email.data, form.password.data, audience, request.remote_addr)
        db.session.commit()
        if user is not None:
            # A fresh session; staff who need a second factor are sent to that step first.
            return begin_sign_in(
                user, remember=bool(form.remember.data), next_url=request.args.get("next")
            )
        form.password.errors.append(_("Wrong email address or password."))
        return render_template(template, form=form), FAILED
    return render_template(template, form=form)


@bp.route("/login", methods=["GET", "POST"])
@sign_in_limits
def login() -> Response | str | tuple[str, int]:
    return sign_in_page(Audience.STAFF, "auth/login.html")


@bp.post("/logout")
@login_required
def logout() -> Response:
    back = url_for("auth.login") if current_user.is_staff else url_for("portal.login")
    audit.record(
        Actor.for_user(current_user, request.remote_addr), "auth.logout", "user", current_user.id
    )
    db.session.commit()
    logout_user()
    session.clear()
    flash(_("You are signed out."), "info")
    return redirect(back)


@bp.post("/language")
def language() -> Response:
    """Switch the interface language: for this browser, and for the account when signed in."""
    from app.i18n import LANGUAGES

    chosen = request.form.get("language", "")
    if chosen in LANGUAGES:
        session["language"] = chosen
        if current_user.is_authenticated:
            current_user.language = chosen
            db.session.commit()
    return redirect(safe_next(request.form.get("next"), url_for("auth.index")), code=303)


@bp.get("/")
def index() -> Response:
    if current_user.is_authenticated:
        return redirect(home_for(current_user))
    return redirect(url_for("auth.login"))
