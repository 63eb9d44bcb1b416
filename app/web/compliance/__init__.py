"""Compliance officers (/compliance): audit, links, data-subject requests."""

from flask import Blueprint

from app.models.people import Role
from app.web.guards import guard_blueprint

bp = Blueprint("compliance", __name__, url_prefix="/compliance")
guard_blueprint(bp, Role.COMPLIANCE)

from app.web.compliance import gdpr_requests, routes  # noqa: E402,F401
