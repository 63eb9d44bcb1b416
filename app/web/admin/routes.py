"""The administration home: where each part of setting up the desk lives."""

from __future__ import annotations

from sqlalchemy import func, select
from werkzeug.wrappers import Response

from app.accounts.admin_users import UserKind, user_query
from app.extensions import db
from app.htmx import render
from app.models.people import Team
from app.pagination import count_of
from app.web.admin import bp


@bp.get("/")
def home() -> Response:
    return render(
        "admin/home.html",
        None,
        staff=count_of(user_query(UserKind.STAFF)),
        customers=count_of(user_query(UserKind.CUSTOMERS)),
        teams=db.session.scalar(select(func.count()).select_from(Team)) or 0,
    )
