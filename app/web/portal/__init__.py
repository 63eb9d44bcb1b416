"""The customer portal (/portal)."""

from flask import Blueprint

from app.models.people import Role
from app.web.guards import guard_blueprint

bp = Blueprint("portal", __name__, url_prefix="/portal")
guard_blueprint(
    bp,
    Role.CUSTOMER,
    open_endpoints=(
        "portal.login",
        "portal.sign_in_link_request",
        "portal.sign_in_with_link",
        "portal.reset_request",
        "portal.reset_with_link",
    ),
)

from app.web.portal import access, gdpr, profile, routes  # noqa: E402,F401
