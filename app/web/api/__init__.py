"""Machine-facing endpoints: health now, the ticket API later."""

from flask import Blueprint

bp = Blueprint("api", __name__)

from app.web.api import routes  # noqa: E402,F401
