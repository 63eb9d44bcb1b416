from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import joinedload, selectinload
from werkzeug.wrappers import Response

from app.actor import Actor
from app.errors import NotFound
from app.extensions import db
from app.mail.identities import add_template, save_identity
from app.models.mail import SenderIdentity
from app.models.people import Team, User
from app.web.admin import bp


def _actor() -> Actor:
    return Actor.staff(current_user, request.remote_addr)


@bp.get("/")
def home() -> str:
    users = db.session.scalars(
        select(User).options(joinedload(User.team)).order_by(User.name)
    ).all()
    teams = db.session.scalars(select(Team).order_by(Team.name)).all()
    return render_template("admin/home.html", users=users, teams=teams)


@bp.route("/identities", methods=["GET", "POST"])
def identities() -> Response | str:
    """Sender identities: the addresses agents answer from, each with its templates."""
    if request.method == "POST":
        form = request.form
        save_identity(
            _actor(),
            address=form.get("address", ""),
            name=form.get("name", ""),
            language=form.get("language", "en"),
            signature=form.get("signature", ""),
            is_default=form.get("is_default") == "on",
        )
        db.session.commit()
        flash("Identity saved.", "success")
        return redirect(url_for("admin.identities"), code=303)
    rows = db.session.scalars(
        select(SenderIdentity)
        .options(selectinload(SenderIdentity.templates))
        .order_by(SenderIdentity.is_default.desc(), SenderIdentity.name)
    ).all()
    return render_template("admin/identities.html", identities=rows)


@bp.post("/identities/<int:identity_id>/templates")
def add_template_view(identity_id: int) -> Response:
    identity = db.session.get(SenderIdentity, identity_id)
    if identity is None:
        raise NotFound("There is no such identity.")
    add_template(_actor(), identity, request.form.get("name", ""), request.form.get("body", ""))
    db.session.commit()
    flash(f"Template added to {identity.address}.", "success")
    return redirect(url_for("admin.identities"), code=303)
