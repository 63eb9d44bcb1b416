"""Public file links (/v/<token>): for recipients outside the desk, no sign-in."""

from flask import Blueprint

bp = Blueprint("links", __name__, url_prefix="/v")

from app.web.links import routes  # noqa: E402,F401
