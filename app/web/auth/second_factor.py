"""The second step of a staff sign-in, and the gate that makes every door go through it.

A staff member who needs a second factor (``two_factor.applies``: they have one, or their
role requires one) is *not signed in* after the password. The session only carries a
pending sign-in (user id, their session token, expiry, where to go next), and the
visitor is sent to ``/login/code``, or to ``/login/enrol`` when a required role has no
second factor yet. Being anonymous until then is what keeps them away from everything
else: no view needs to know about the second step.

Doors: the password form calls ``begin_sign_in``; any other way of signing staff in
(an invitation or emailed sign-in link for staff) must call it too. As a safety net the
gate (``_second_factor_gate``, before every request) turns any signed-in staff session
that has not passed the second step into a pending sign-in: a door that forgot, a
"keep me signed in" cookie opening a new browser session, a role that became required
while signed in. So with two-factor sign-in every new browser session asks for a code;
"keep me signed in" only remembers the password step for accounts without one.

A pending sign-in expires after ``PENDING_SECONDS`` and dies with the user's session
token (a password change, a deactivation, an admin reset).
"""

from __future__ import annotations

import time
from typing import Any

from flask import (
    Response,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _
from flask_login import current_user, login_user, logout_user

from app.accounts import two_factor
from app.accounts.two_factor import SecondFactorUnavailable, WrongCode
from app.extensions import db
from app.htmx import is_htmx
from app.models.people import User
from app.web.auth import bp
from app.web.auth.forms import CodeForm
from app.web.auth.limits import FAILED, second_step_limits
from app.web.guards import home_for, safe_next

PENDING = "two_factor_pending"
PASSED = "two_factor_passed"
CANDIDATE = "two_factor_candidate"
PENDING_SECONDS = 15 * 60
# Reachable by a signed-in staff member who still owes the second step.
_GATE_OPEN = frozenset({"static", "auth.logout", "auth.language"})


def begin_sign_in(user: User, *, remember: bool = False, next_url: str | None = None) -> Response:
    """Start a session for ``user`` whose first factor (password, link) was checked.

    Staff who need a second factor get a pending sign-in and the code (or enrolment)
    page; everyone else is signed in at once. The session is always a fresh one.
    """
    session.clear()  # no session fixation: nothing from before the sign-in survives
    if two_factor.applies(user):
        _set_pending(user, remember=remember, next_url=next_url)
        return redirect(url_for("auth.second_step"))
    login_user(user, remember=remember)
    return redirect(safe_next(next_url, home_for(user)))


def _set_pending(user: User, *, remember: bool, next_url: str | None) -> None:
    session[PENDING] = {
        "uid": user.id,
        "tok": user.session_token,
        "exp": int(time.time()) + PENDING_SECONDS,
        "remember": bool(remember),
        "next": next_url,
    }


def pending_user_id() -> int | None:
    pending = session.get(PENDING)
    if not isinstance(pending, dict) or not isinstance(pending.get("uid"), int):
        return None
    return pending["uid"]


def pending_user() -> User | None:
    """The user waiting for their second step, if the pending sign-in is still good."""
    pending = session.get(PENDING)
    if not isinstance(pending, dict):
        return None
    uid, expires = pending.get("uid"), pending.get("exp")
    if not isinstance(uid, int) or not isinstance(expires, int) or expires < time.time():
        return None
    user = db.session.get(User, uid)
    if user is None or not user.active or user.session_token != pending.get("tok"):
        return None
    return user


def _finish(user: User) -> None:
    """The second step is passed: a fresh session, signed in, marked as passed."""
    pending = session.get(PENDING) or {}
    session.clear()
    login_user(user, remember=bool(pending.get("remember")))
    session[PASSED] = user.id


def _next_of(user: User) -> str:
    pending = session.get(PENDING) or {}
    return safe_next(pending.get("next"), home_for(user))


def _expired() -> Response:
    session.pop(PENDING, None)
    session.pop(CANDIDATE, None)
    flash(_("Your sign-in took too long or is no longer valid. Please sign in again."), "info")
    return redirect(url_for("auth.login"))


def no_store(response: Any, status: int = 200) -> Response:
    """Pages with codes or secrets on them are never kept by the browser or a proxy."""
    response = make_response(response, status)
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/login/code", methods=["GET", "POST"])
@second_step_limits
def second_step() -> Response:
    """Ask for the authenticator code (or a recovery code) of the pending sign-in."""
    user = pending_user()
    if user is None:
        return _expired()
    if not user.has_second_factor:
        return redirect(url_for("auth.enrol_at_sign_in"))
    form = CodeForm()
    if form.validate_on_submit():
        method = two_factor.verify(user, form.code.data, request.remote_addr)
        db.session.commit()  # the sign-in or the failure is audited either way
        if method is not None:
            target = _next_of(user)
            _finish(user)
            if method is two_factor.Method.RECOVERY_CODE:
                flash(
                    _(
                        "You signed in with a recovery code. %(count)d are left; you can "
                        "make new ones on your security page.",
                        count=two_factor.recovery_codes_left(user),
                    ),
                    "info",
                )
            return redirect(target)
        form.code.errors.append(_("That code is not right, or it was used already."))
        return no_store(render_template("auth/second_step.html", form=form), FAILED)
    return no_store(render_template("auth/second_step.html", form=form))


def candidate_secret(user: User) -> str:
    """The secret being enrolled, kept sealed in the session so a reload shows the same QR."""
    kept = session.get(CANDIDATE)
    if isinstance(kept, dict) and kept.get("uid") == user.id:
        try:
            return two_factor.unseal(kept.get("sealed"), user.id)
        except SecondFactorUnavailable:
            pass
    secret = two_factor.new_secret()
    session[CANDIDATE] = {"uid": user.id, "sealed": two_factor.seal(secret, user.id)}
    return secret


def enrol_response(user: User, form: CodeForm, *, action: str, signing_in: bool) -> Response:
    """Shared by the sign-in enrolment and the security page: the QR page, or the codes.

    Returns the page to answer with; on success the recovery codes (shown this once).
    """
    secret = candidate_secret(user)
    status = 200
    if form.validate_on_submit():
        try:
            codes = two_factor.confirm_enrolment(
                user, secret, form.code.data, request.remote_addr, signing_in=signing_in
            )
        except WrongCode as error:
            db.session.commit()  # keep the audited failure
            form.code.errors.append(error.message)
            status = FAILED
        else:
            db.session.commit()
            target = _next_of(user) if signing_in else url_for("auth.security")
            if signing_in:
                _finish(user)
            else:
                session[PASSED] = user.id
            session.pop(CANDIDATE, None)
            page = render_template("auth/recovery_codes.html", codes=codes, target=target)
            return no_store(page)
    page = render_template(
        "auth/enrol.html",
        form=form,
        enrolment=two_factor.enrolment_for(user, secret),
        action=action,
        signing_in=signing_in,
        required=two_factor.is_required(user),
    )
    return no_store(page, status)


@bp.route("/login/enrol", methods=["GET", "POST"])
@second_step_limits
def enrol_at_sign_in() -> Response:
    """A required role without a second factor sets one up before anything else."""
    user = pending_user()
    if user is None:
        return _expired()
    if user.has_second_factor:
        return redirect(url_for("auth.second_step"))
    return enrol_response(
        user, CodeForm(), action=url_for("auth.enrol_at_sign_in"), signing_in=True
    )


@bp.before_app_request
def _second_factor_gate() -> Response | None:
    """Signed-in staff who owe the second step are turned back into a pending sign-in."""
    if request.endpoint is None or request.endpoint in _GATE_OPEN:
        return None
    if not current_user.is_authenticated or not current_user.is_staff:
        return None
    user: User = current_user._get_current_object()  # type: ignore[attr-defined]
    if session.get(PASSED) == user.id or not two_factor.applies(user):
        return None
    plain_get = request.method == "GET" and not is_htmx()
    wanted = request.full_path.rstrip("?") if plain_get else None
    logout_user()
    session.clear()
    session["_remember"] = "clear"  # Flask-Login drops the cookie that restored this session
    _set_pending(user, remember=False, next_url=wanted)
    target = url_for("auth.second_step")
    if is_htmx():
        response = make_response("", 401)
        response.headers["HX-Redirect"] = target
        return response
    return redirect(target)
