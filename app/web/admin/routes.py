from __future__ import annotations

from flask import render_template
from sqlalchemy import select
from sqlalchemy.orm import joinedload

from app.extensions import db
from app.models.people import Team, User
from app.web.admin import bp


@bp.get("/")
def home() -> str:
    users = db.session.scalars(
        select(User).options(joinedload(User.team)).order_by(User.name)
    ).all()
    teams = db.session.scalars(select(Team).order_by(Team.name)).all()
    return render_template("admin/home.html", users=users, teams=teams)
