"""The real upload routes never put a file's clear text on disk, not even for a moment.

werkzeug's own form parser (``request.form`` / ``request.files``) spools any upload over
500 KB into a temporary file in the system temp folder, in clear, and deletes it when the
request ends, so a scan after the request finds nothing. These tests therefore send more
than 1 MB through each real route with ``TMPDIR`` pointing at a private folder, and look
at the process's open files while the request is still being answered (``after_request``):
a spooled upload is an open file in that folder then, even if it has no name.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app.actor import Actor
from app.extensions import db
from app.models import Role
from app.models.people import Contact, User
from app.models.tickets import Channel
from app.tickets import create_ticket
from tests import factories
from tests.conftest import Person, csrf_from, sign_in

MARKER = b"VAULTDESK-CLEAR-TEXT-MARKER:"
SECRET = (MARKER + os.urandom(64).hex().encode()) * 12_000  # about 2 MB, past every spool limit


def multipart(fields: dict[str, str], filename: str, content: bytes) -> tuple[bytes, str]:
    """A body encoded up front: the test client would spool a large dict body itself."""
    boundary = uuid.uuid4().hex
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields.items()
    ]
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{filename}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n".encode()
        + content
        + b"\r\n"
    )
    return b"".join(
        parts
    ) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def open_files_under(folder: Path) -> list[str]:
    """Paths of this process's open files inside ``folder`` (deleted ones included)."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(str(folder)):
            found.append(target)
    return found


@pytest.fixture
def private_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "system-tmp"
    folder.mkdir()
    monkeypatch.setenv("TMPDIR", str(folder))
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


@pytest.fixture
def watched(app: Flask, private_tmp: Path) -> list[str]:
    """Open temp files seen at the end of every request (before werkzeug closes them)."""
    seen: list[str] = []

    @app.after_request
    def _look(response: Any) -> Any:
        seen.extend(open_files_under(private_tmp))
        return response

    return seen


def _ticket_for(app: Flask, person: Person) -> str:
    with app.app_context():
        ticket = create_ticket(
            Channel.PORTAL,
            Actor.customer(db.session.get(User, person.id)),
            subject="Logs attached",
            body_text="See below.",
            contact=db.session.get(Contact, person.contact_id),
        )
        db.session.commit()
        return ticket.number


def _agent_note(app: Flask, client: FlaskClient, make_user: Callable[..., Person]) -> Any:
    sign_in(client, make_user(Role.AGENT))
    with app.app_context():
        number = factories.ticket().number
        db.session.commit()
    token = csrf_from(client.get(f"/agent/tickets/{number}").get_data(as_text=True))
    body, kind = multipart(
        {"csrf_token": token, "visibility": "internal", "body": "logs"}, "log.txt", SECRET
    )
    return client.post(f"/agent/tickets/{number}/answer", data=body, content_type=kind)


def _portal_new(app: Flask, client: FlaskClient, make_user: Callable[..., Person]) -> Any:
    sign_in(client, make_user(Role.CUSTOMER), portal=True)
    token = csrf_from(client.get("/portal/new").get_data(as_text=True))
    body, kind = multipart(
        {"csrf_token": token, "subject": "Crash", "description": "Log attached"}, "log.txt", SECRET
    )
    return client.post("/portal/new", data=body, content_type=kind)


def _portal_reply(app: Flask, client: FlaskClient, make_user: Callable[..., Person]) -> Any:
    customer = make_user(Role.CUSTOMER)
    sign_in(client, customer, portal=True)
    number = _ticket_for(app, customer)
    token = csrf_from(client.get(f"/portal/tickets/{number}").get_data(as_text=True))
    body, kind = multipart({"csrf_token": token, "body": "More logs"}, "log.txt", SECRET)
    return client.post(f"/portal/tickets/{number}/reply", data=body, content_type=kind)


@pytest.mark.parametrize("send", [_agent_note, _portal_new, _portal_reply])
def test_a_large_upload_never_touches_the_disk_in_clear(
    app: Flask,
    client: FlaskClient,
    make_user: Callable[..., Person],
    private_tmp: Path,
    watched: list[str],
    send: Callable[..., Any],
) -> None:
    response = send(app, client, make_user)
    assert response.status_code in {303, 204}, response.get_data(as_text=True)[:300]
    assert watched == [], f"the upload was spooled to a temporary file: {watched}"
    needle = MARKER
    for folder in (private_tmp, Path(app.instance_path)):
        for root, _dirs, names in os.walk(folder):
            for name in names:
                assert needle not in (Path(root) / name).read_bytes(), f"clear text in {name}"
    blobs = list(Path(app.config["VAULT_DIR"]).rglob("*.body"))
    assert len(blobs) == 1 and blobs[0].stat().st_size > len(SECRET)
