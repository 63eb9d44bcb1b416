"""An admin resets a user's second factor (a lost phone): /admin/users/<id>/two-factor.

The state and the reset button are one fragment, ``admin/_user_two_factor.html``, which
the admin user pages include (it needs only ``user``); this module also serves it on a
small page of its own. The reset is audited (``auth.two_factor_reset``), ends every session
of the user, and a role that requires a second factor enrols again at the next sign-in.
Admins cannot reset their own (``two_factor.reset`` says why).
"""

from __future__ import annotations

from flask import flash, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from werkzeug.wrappers import Response

from app.accounts import two_factor
from app.actor import Actor
from app.errors import NotFound
from app.extensions import db
from app.htmx import go_to, oob_flash, wants_fragment
from app.models.people import User
from app.web.admin import bp


def _user(user_id: int) -> User:
    user = db.session.get(User, user_id)
    if user is None or not user.is_staff:
        raise NotFound(_("There is no such member of staff."))
    return user


@bp.app_template_global()
def two_factor_state(user: User) -> dict[str, object]:
    """What the fragment shows about ``user`` (it gets nothing but the user)."""
    return {
        "enrolled": user.has_second_factor,
        "required": two_factor.is_required(user),
        "since": user.two_factor_since,
        "codes_left": two_factor.recovery_codes_left(user),
        "is_self": current_user.is_authenticated and current_user.id == user.id,
    }


@bp.get("/users/<int:user_id>/two-factor")
def user_two_factor(user_id: int) -> str:
    return render_template("admin/two_factor.html", user=_user(user_id))


@bp.post("/users/<int:user_id>/two-factor/reset")
def reset_two_factor(user_id: int) -> Response | str:
    user = _user(user_id)
    two_factor.reset(user, Actor.staff(current_user, request.remote_addr))
    db.session.commit()
    flash(
        _("The second factor of %(name)s is reset; they are signed out.", name=user.name), "success"
    )
    if wants_fragment():
        return render_template("admin/_user_two_factor.html", user=user) + oob_flash()
    return go_to(url_for("admin.user_two_factor", user_id=user.id))
