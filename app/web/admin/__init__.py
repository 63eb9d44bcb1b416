"""Administration (/admin): users, roles, identities, mailboxes, policies."""

from flask import Blueprint

from app.models.people import Role
from app.web.guards import guard_blueprint

bp = Blueprint("admin", __name__, url_prefix="/admin")
guard_blueprint(bp, Role.ADMIN)

from app.web.admin import (  # noqa: E402,F401
    mail_log,
    mailboxes,
    outbox,
    routes,
    system_mail,
    two_factor,
)
