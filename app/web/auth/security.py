"""A staff member's own security page (/security): set up, turn off, new recovery codes.

Agents and supervisors may choose two-factor sign-in here; roles in
``TWO_FACTOR_REQUIRED_ROLES`` have it already (the sign-in made them enrol) and cannot turn
it off: an admin resets it when a phone is lost. Customers have no such page (403).
"""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required
from werkzeug.wrappers import Response

from app.accounts import two_factor
from app.accounts.two_factor import WrongCode
from app.extensions import db
from app.models.people import User
from app.web.auth import bp
from app.web.auth.forms import CodeForm
from app.web.auth.limits import FAILED, second_step_limits
from app.web.auth.second_factor import enrol_response, no_store


def _staff() -> User:
    if not current_user.is_staff:
        abort(403)
    return current_user._get_current_object()  # type: ignore[attr-defined,no-any-return]


def _page(
    user: User, form: CodeForm | None = None, status: int = 200, failed: str | None = None
) -> Response:
    page = render_template(
        "auth/security.html",
        user=user,
        form=form or CodeForm(),
        failed=failed,
        required=two_factor.is_required(user),
        codes_left=two_factor.recovery_codes_left(user),
    )
    return no_store(page, status)


@bp.get("/security")
@login_required
def security() -> Response:
    return _page(_staff())


@bp.route("/security/enrol", methods=["GET", "POST"])
@login_required
@second_step_limits
def security_enrol() -> Response:
    user = _staff()
    if user.has_second_factor:
        return redirect(url_for("auth.security"))
    return enrol_response(user, CodeForm(), action=url_for("auth.security_enrol"), signing_in=False)


@bp.post("/security/disable")
@login_required
@second_step_limits
def security_disable() -> Response:
    user = _staff()
    form = CodeForm()
    if not form.validate_on_submit():
        return _page(user, form, 422, "disable")
    try:
        two_factor.disable_own(user, form.code.data, request.remote_addr)
    except WrongCode as error:
        db.session.commit()
        form.code.errors.append(error.message)
        return _page(user, form, FAILED, "disable")
    db.session.commit()
    flash(_("Two-factor sign-in is turned off."), "success")
    return redirect(url_for("auth.security"), code=303)


@bp.post("/security/recovery-codes")
@login_required
@second_step_limits
def security_recovery_codes() -> Response:
    user = _staff()
    form = CodeForm()
    if not form.validate_on_submit():
        return _page(user, form, 422, "regenerate")
    try:
        codes = two_factor.regenerate_recovery_codes(user, form.code.data, request.remote_addr)
    except WrongCode as error:
        db.session.commit()
        form.code.errors.append(error.message)
        return _page(user, form, FAILED, "regenerate")
    db.session.commit()
    page = render_template("auth/recovery_codes.html", codes=codes, target=url_for("auth.security"))
    return no_store(page)
