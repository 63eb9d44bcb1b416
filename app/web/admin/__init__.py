"""Administration (/admin): users, teams, identities, categories, mailboxes, settings.

One open page: ``admin.welcome``, where a new colleague (or someone an admin sent a
password reset) chooses a password from the emailed link; the link itself is the
credential there (``app.accounts.staff_links``).
"""

from flask import Blueprint

from app.models.people import Role
from app.web.guards import guard_blueprint

bp = Blueprint("admin", __name__, url_prefix="/admin")
guard_blueprint(bp, Role.ADMIN, open_endpoints=("admin.welcome",))

from app.web.admin import (  # noqa: E402,F401
    calendars,
    categories,
    identities,
    mail_log,
    mailboxes,
    outbox,
    routes,
    settings,
    sla,
    system_mail,
    teams,
    two_factor,
    users,
)
