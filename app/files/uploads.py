"""Reading a multipart form whose files stream into the vault.

Flask-WTF's global CSRF check reads ``request.form``, which makes werkzeug spool uploads
to clear-text temporary files; upload views are therefore exempt from it and check the
token here instead, before the first byte of any file is stored: the header an htmx
request sends, or the ``csrf_token`` field, which the form puts before its file inputs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from flask import request
from flask_wtf.csrf import CSRFError, validate_csrf
from wtforms import ValidationError

from app.actor import Actor
from app.extensions import db
from app.files.multipart import FilePart, FormField, iter_parts
from app.files.store import discard, store_upload
from app.models.files import VaultFile
from app.models.tickets import Ticket

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


class VaultUpload:
    """The files one request stored in the vault, so a failed request can take them back.

    Blobs are written while the form streams in, before the database transaction commits;
    if anything after that fails (or the view refuses the form), the rows roll back and
    the blobs are shredded, so no unreferenced encrypted file stays behind.
    """

    def __init__(self, actor: Actor, ticket: Ticket | None) -> None:
        self._actor = actor
        self._ticket = ticket
        self.stored: list[VaultFile] = []

    def _store(self, part: FilePart) -> VaultFile:
        row = store_upload(part, part.filename, self._actor, ticket=self._ticket)
        self.stored.append(row)
        return row

    def read(self) -> tuple[dict[str, str], list[VaultFile]]:
        """The form's fields, and its files already stored (see ``receive_form``)."""
        return receive_form(self._store)

    def abandon(self) -> None:
        """Roll back and shred what was stored; safe to call more than once."""
        db.session.rollback()
        discard([f.blob_id for f in self.stored])
        self.stored.clear()


@contextmanager
def vault_upload(actor: Actor, ticket: Ticket | None = None) -> Iterator[VaultUpload]:
    """Read an upload form inside this block; an exception abandons its files."""
    upload = VaultUpload(actor, ticket)
    try:
        yield upload
    except BaseException:
        upload.abandon()
        raise
