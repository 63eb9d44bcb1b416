"""Staff sign-in and sign-out; the portal reuses the same sign-in flow."""

from flask import Blueprint

bp = Blueprint("auth", __name__)

from app.web.auth import routes, second_factor, security  # noqa: E402,F401
