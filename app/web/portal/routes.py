from __future__ import annotations

from flask import render_template
from flask_login import current_user
from werkzeug.wrappers import Response

from app.signin import Audience
from app.tickets.queries import customer_tickets
from app.web.auth.limits import sign_in_limits
from app.web.auth.routes import sign_in_page
from app.web.portal import bp


@bp.route("/login", methods=["GET", "POST"])
@sign_in_limits
def login() -> Response | str | tuple[str, int]:
    return sign_in_page(Audience.CUSTOMER, "portal/login.html")


@bp.get("/")
def home() -> str:
    return render_template("portal/home.html", tickets=customer_tickets(current_user))
