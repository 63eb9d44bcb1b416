"""Reading a multipart form whose files stream into the vault.

Flask-WTF's global CSRF check reads ``request.form``, which makes werkzeug spool uploads
to clear-text temporary files; upload views are therefore exempt from it and check the
token here instead, before the first byte of any file is stored: the header an htmx
request sends, or the ``csrf_token`` field, which the form puts before its file inputs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from flask import request
from flask_wtf.csrf import CSRFError, validate_csrf
from wtforms import ValidationError

from app.uploads import FilePart, FormField, iter_parts

T = TypeVar("T")


def _check(token: str) -> None:
    try:
        validate_csrf(token)
    except ValidationError as error:
        raise CSRFError(str(error)) from None


def receive_form(store: Callable[[FilePart], T]) -> tuple[dict[str, str], list[T]]:
    """Parse the request body; hand each chosen file to ``store`` as it streams in."""
    checked = False
    header = request.headers.get("X-CSRFToken")
    if header:
        _check(header)
        checked = True
    fields: dict[str, str] = {}
    stored: list[T] = []
    for part in iter_parts(request.stream, request.content_type or ""):
        if isinstance(part, FormField):
            if part.name == "csrf_token" and not checked:
                _check(part.value)
                checked = True
            fields.setdefault(part.name, part.value)
            continue
        if not checked:
            raise CSRFError("The CSRF token is missing.")
        if part.is_empty_selection:
            continue  # a file input left empty: browsers still send an empty part
        stored.append(store(part))
    if not checked:
        raise CSRFError("The CSRF token is missing.")
    return fields, stored
