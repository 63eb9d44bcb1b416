"""Vaultdesk: the application factory."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask
from sqlalchemy import event
from sqlalchemy.engine import Engine

from app import config as settings
from app.extensions import csrf, db, limiter, login_manager, migrate, redis_client


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app: defaults, then instance/config.py, then VAULTDESK_* env, then ``config``."""
    overrides = dict(config or {})
    folder = settings.instance_path(overrides)
    folder.mkdir(parents=True, exist_ok=True)
    app = Flask(
        __name__,
        instance_path=str(folder),
        instance_relative_config=True,
        template_folder=str(settings.TEMPLATES),
    )
    app.config.update(settings.defaults())
    app.config.from_pyfile("config.py", silent=True)
    app.config.update(settings.from_environment())
    app.config.update(overrides)
    app.config["INSTANCE_PATH"] = str(folder)
    app.config.update(settings.finalise(app.config, folder))

    if app.config.get("PROXY_COUNT"):
        from werkzeug.middleware.proxy_fix import ProxyFix

        count = int(app.config["PROXY_COUNT"])
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=count, x_proto=count, x_host=count)  # type: ignore[method-assign]

    db.init_app(app)
    migrate.init_app(
        app,
        db,
        directory=str(settings.MIGRATIONS),
        render_as_batch=True,  # SQLite can only ALTER by copying tables
        compare_type=True,
    )
    login_manager.init_app(app)
    csrf.init_app(app)
    limiter.init_app(app)
    redis_client.init_app(app)
    from app import i18n

    i18n.init_app(app)

    from app import models  # noqa: F401  (every model registered before anything queries)
    from app.cli import register_commands
    from app.web import register_web

    register_web(app)
    register_commands(app)
    return app


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection: Any, connection_record: Any) -> None:
    """SQLite defaults are unsafe for a web app: no FK checks, readers block writers."""
    module = type(dbapi_connection).__module__
    if not module.startswith("sqlite3"):
        return
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()
