"""Extensions created unbound; ``create_app`` binds them with ``init_app``."""

from __future__ import annotations

import redis
from flask import Flask
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect
from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase

# Named constraints keep Alembic revisions stable and let SQLite batch migrations find them.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class RedisClient:
    """One Redis connection pool per app, created from ``REDIS_URL``.

    Kept here so views, jobs and the limiter share one place that knows the URL; nothing
    is stored in process memory that a second web process would need.
    """

    def init_app(self, app: Flask) -> None:
        app.extensions["vaultdesk_redis"] = redis.Redis.from_url(
            app.config["REDIS_URL"], socket_connect_timeout=2, socket_timeout=5
        )

    @property
    def connection(self) -> redis.Redis:
        from flask import current_app

        return current_app.extensions["vaultdesk_redis"]


db = SQLAlchemy(model_class=Base)
migrate = Migrate()
login_manager = LoginManager()
csrf = CSRFProtect()
limiter = Limiter(key_func=get_remote_address)
redis_client = RedisClient()
