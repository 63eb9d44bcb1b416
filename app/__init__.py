"""Vaultdesk: the application factory."""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Mapping
from typing import Any

from flask import Flask
from sqlalchemy import event
from sqlalchemy.engine import Engine

from app import config as settings
from app.extensions import csrf, db, limiter, login_manager, migrate, redis_client

log = logging.getLogger(__name__)


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
    app.config["SETTING_ORIGINS"] = settings.origins(overrides, folder / "config.py")
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


# How long a SQLite statement waits for another connection's write lock before failing.
BUSY_TIMEOUT_MS = 30_000
# SQLite's statistics upkeep (https://sqlite.org/lang_analyze.html#pragopt): a pooled
# connection is long-lived, so PRAGMA optimize runs when it opens, then again when it is
# handed back to the pool after this long, and once more before the pool closes it.
OPTIMIZE_EVERY_SECONDS = 3600.0
# ANALYZE started by PRAGMA optimize reads about this many entries per index: without a
# limit (SQLite before 3.46 sets none itself) a million stream entries would stall the
# request that triggers it. It reads the first entries of each index, so a small limit
# makes a column with four values look as selective as one with thousands: with 1,000 the
# planner counted a filtered list through the priority index (30 ms instead of 3 on
# bench/agent_views.py). 10,000 analyses that whole desk in well under 0.1 s.
ANALYSIS_LIMIT = 10_000
_OPTIMIZED_AT = "vaultdesk_sqlite_optimized_at"


def _is_sqlite(dbapi_connection: Any) -> bool:
    return type(dbapi_connection).__module__.startswith("sqlite3")


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection: Any, connection_record: Any) -> None:
    """SQLite defaults are unsafe for a web app: no FK checks, readers block writers.

    Also the first PRAGMA optimize of the connection, as SQLite advises at open.
    """
    if not _is_sqlite(dbapi_connection):
        return
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cursor.execute(f"PRAGMA analysis_limit={ANALYSIS_LIMIT}")
    cursor.close()
    # 0x10002: also look at tables this connection has not used yet (SQLite 3.46+; older
    # versions ignore the bit and only look at tables used, so this is a no-op for them).
    _sqlite_optimize(dbapi_connection, "0x10002")
    connection_record.info[_OPTIMIZED_AT] = time.monotonic()


@event.listens_for(Engine, "checkin")
def _sqlite_optimize_now_and_then(dbapi_connection: Any, connection_record: Any) -> None:
    """The periodic PRAGMA optimize, on a connection back in the pool (no transaction)."""
    if dbapi_connection is None or not _is_sqlite(dbapi_connection):
        return
    last = connection_record.info.get(_OPTIMIZED_AT, 0.0)
    if time.monotonic() - last >= OPTIMIZE_EVERY_SECONDS:
        _sqlite_optimize(dbapi_connection)
        connection_record.info[_OPTIMIZED_AT] = time.monotonic()


@event.listens_for(Engine, "close")
def _sqlite_optimize_before_close(dbapi_connection: Any, connection_record: Any) -> None:
    """SQLite's advice for a connection about to close (pool disposed or recycled)."""
    if dbapi_connection is not None and _is_sqlite(dbapi_connection):
        _sqlite_optimize(dbapi_connection)


def _sqlite_optimize(dbapi_connection: Any, mask: str = "") -> None:
    """Usually a no-op; now and then an ANALYZE of a table whose statistics went stale.

    Skipped rather than waited for when another connection holds the write lock: the
    statistics can wait for the next turn, the request handing its connection back cannot.
    """
    pragma = f"PRAGMA optimize={mask}" if mask else "PRAGMA optimize"
    try:
        dbapi_connection.execute("PRAGMA busy_timeout=100")
        try:
            dbapi_connection.execute(pragma).fetchall()
        finally:
            dbapi_connection.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    except sqlite3.Error as error:
        log.info("SQLite %s skipped: %s", pragma, error)
