from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_user
from werkzeug.wrappers import Response

from app.accounts.profile import change_own_password, request_data_copy, update_profile
from app.extensions import db
from app.i18n import LANGUAGES, zone_choices
from app.web.portal import bp


@bp.route("/profile", methods=["GET", "POST"])
def profile() -> Response | str:
    """Name, language, time zone; a separate form changes the password."""
    if request.method == "POST":
        update_profile(
            current_user,
            name=request.form.get("name", ""),
            language=request.form.get("language", ""),
            timezone=request.form.get("timezone", ""),
            client_address=request.remote_addr,
        )
        db.session.commit()
        flash(_("Your profile was saved."), "success")
        return redirect(url_for("portal.profile"), code=303)
    return render_template("portal/profile.html", zones=zone_choices(), languages=LANGUAGES)


@bp.post("/profile/password")
def password() -> Response:
    change_own_password(
        current_user,
        current=request.form.get("current", ""),
        new=request.form.get("new", ""),
        repeat=request.form.get("repeat", ""),
        client_address=request.remote_addr,
    )
    db.session.commit()
    # The password change ended every session, this one included: sign in again here.
    login_user(current_user._get_current_object())  # type: ignore[attr-defined]
    flash(_("Your password was changed. Other devices are signed out."), "success")
    return redirect(url_for("portal.profile"), code=303)


@bp.post("/profile/data-copy")
def data_copy() -> Response:
    ticket = request_data_copy(current_user, client_address=request.remote_addr)
    db.session.commit()
    flash(
        _("We received your request for a copy of your data as %(number)s.", number=ticket.number),
        "success",
    )
    return redirect(url_for("portal.profile"), code=303)
