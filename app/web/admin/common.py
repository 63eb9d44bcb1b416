"""What every admin screen shares: who acts, finding rows, answering a refusal."""

from __future__ import annotations

from typing import Any, TypeVar

from flask import request
from flask_babel import gettext as _
from flask_login import current_user

from app.actor import Actor
from app.errors import NotFound
from app.extensions import db

M = TypeVar("M")


def actor() -> Actor:
    return Actor.staff(current_user, request.remote_addr)


def get_or_404(model: type[M], row_id: int, message: str | None = None) -> M:
    row: Any = db.session.get(model, row_id)
    if row is None:
        raise NotFound(message or _("There is nothing at this address."))
    return row  # type: ignore[no-any-return]
