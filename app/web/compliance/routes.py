from __future__ import annotations

from flask import request
from sqlalchemy import func, select
from werkzeug.wrappers import Response

from app.extensions import db
from app.htmx import render
from app.models.audit import AuditLog
from app.web.compliance import bp

PER_PAGE = 100


@bp.get("/")
def home() -> Response:
    """The audit log, newest first, filtered by action prefix (``auth.``, ``ticket.``)."""
    action = (request.args.get("action") or "").strip()
    page = max(request.args.get("page", 1, type=int) or 1, 1)
    stmt = select(AuditLog)
    if action:
        stmt = stmt.where(AuditLog.action.startswith(action, autoescape=True))
    total = db.session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = db.session.scalars(
        stmt.order_by(AuditLog.id.desc()).limit(PER_PAGE).offset((page - 1) * PER_PAGE)
    ).all()
    pages = max((total + PER_PAGE - 1) // PER_PAGE, 1)
    return render(
        "compliance/home.html",
        "audit_table",
        rows=rows,
        action=action,
        page=page,
        pages=pages,
        total=total,
    )
