from __future__ import annotations

from flask import jsonify
from sqlalchemy import text
from werkzeug.wrappers import Response

from app.extensions import csrf, db, limiter, redis_client
from app.web.api import bp


@bp.get("/healthz")
@limiter.exempt
@csrf.exempt
def healthz() -> tuple[Response, int]:
    """For load balancers and the run script: 200 when database and Redis answer, else 503."""
    state: dict[str, str] = {}
    try:
        db.session.execute(text("SELECT 1"))
        state["database"] = "ok"
    except Exception as exc:  # any driver error means "not healthy", reported not raised
        db.session.rollback()
        state["database"] = f"error: {type(exc).__name__}"
    try:
        redis_client.connection.ping()
        state["redis"] = "ok"
    except Exception as exc:
        state["redis"] = f"error: {type(exc).__name__}"
    healthy = all(v == "ok" for v in state.values())
    return jsonify(status="ok" if healthy else "degraded", **state), 200 if healthy else 503
