"""The settings page: every setting, its value and where it came from; read-only.

Settings are changed where they live (``instance/config.py`` or ``VAULTDESK_*``
variables) and take effect on restart: a page that edited them would have to write
files on the server or disagree with the other web processes. Secrets are shown as set
or unset only (``app.config.is_secret``).
"""

from __future__ import annotations

from flask import current_app
from werkzeug.wrappers import Response

from app import config as settings
from app.htmx import render
from app.web.admin import bp


@bp.get("/settings")
def settings_page() -> Response:
    return render("admin/settings.html", None, rows=settings.describe(current_app.config))
