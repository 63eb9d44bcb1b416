"""Attachment previews: raster images after the content sniff, inline, behind the same
checks as downloads; SVG and everything else stay a download."""

from __future__ import annotations

import base64
import io
from typing import Any

import pytest
from sqlalchemy import func, select

from app.actor import Actor
from app.extensions import db
from app.files.store import store_upload
from app.models import Role
from app.models.files import DownloadEvent
from tests import factories
from tests.conftest import sign_in

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
)
GIF = (
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00"
    b"\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)
SVG = (
    b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">'
    b"<script>alert(document.cookie)</script><rect width='10' height='10'/></svg>"
)


@pytest.fixture
def files(app: Any) -> dict[str, Any]:
    with app.app_context():
        ticket = factories.ticket("Screenshots")
        other = factories.ticket("Someone else's")
        system = Actor.system()
        stored = {}
        for name, content in (
            ("screen.png", PNG),
            ("anim.gif", GIF),
            ("logo.svg", SVG),
            ("disguised.png", b"<html><script>alert(1)</script></html>"),  # text, not PNG
            ("renamed.txt", PNG),  # a PNG whatever its name says
        ):
            row = store_upload(io.BytesIO(content), name, system, ticket=ticket)
            row.entry = ticket.entries[0]
            stored[name] = row.public_id
        foreign = store_upload(io.BytesIO(PNG), "theirs.png", system, ticket=other)
        foreign.entry = other.entries[0]
        db.session.commit()
        return {
            "number": ticket.number,
            "other": other.number,
            "foreign": foreign.public_id,
            **stored,
        }


def preview_url(number: str, public_id: str) -> str:
    return f"/agent/tickets/{number}/files/{public_id}/preview"


def test_a_raster_image_is_served_inline_with_the_guard_headers(
    app: Any, client: Any, files: dict[str, Any], make_user: Any
) -> None:
    sign_in(client, make_user(Role.AGENT))
    for name, mime in (
        ("screen.png", "image/png"),
        ("anim.gif", "image/gif"),
        ("renamed.txt", "image/png"),
    ):
        response = client.get(preview_url(files["number"], files[name]))
        assert response.status_code == 200, name
        assert response.headers["Content-Type"] == mime
        assert response.headers["Content-Disposition"].startswith("inline;")
        assert response.headers["Content-Security-Policy"].startswith("sandbox")
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        response.close()
    with app.app_context():  # a preview is a read of the file: it is in the download audit
        assert db.session.scalar(select(func.count()).select_from(DownloadEvent)) == 3
    page = client.get(f"/agent/tickets/{files['number']}").get_data(as_text=True)
    assert preview_url(files["number"], files["screen.png"]) in page


def test_svg_and_other_files_never_come_inline(
    client: Any, files: dict[str, Any], make_user: Any
) -> None:
    sign_in(client, make_user(Role.AGENT))
    for name in ("logo.svg", "disguised.png"):
        assert client.get(preview_url(files["number"], files[name])).status_code == 404, name
        download = client.get(f"/agent/tickets/{files['number']}/files/{files[name]}")
        assert download.headers["Content-Disposition"].startswith("attachment;")
        assert not download.headers["Content-Type"].startswith("image/svg")
        download.close()
    page = client.get(f"/agent/tickets/{files['number']}").get_data(as_text=True)
    assert preview_url(files["number"], files["logo.svg"]) not in page
    assert preview_url(files["number"], files["disguised.png"]) not in page


def test_another_tickets_file_is_not_previewed_through_this_ticket(
    client: Any, files: dict[str, Any], make_user: Any
) -> None:
    sign_in(client, make_user(Role.AGENT))
    assert client.get(preview_url(files["number"], files["foreign"])).status_code == 404
    assert client.get(preview_url("T-000000", files["screen.png"])).status_code == 404


@pytest.mark.parametrize("role", [Role.CUSTOMER, Role.COMPLIANCE])
def test_people_without_an_agents_rights_are_refused(
    client: Any, files: dict[str, Any], make_user: Any, role: Role
) -> None:
    person = make_user(role)
    sign_in(client, person, portal=role is Role.CUSTOMER)
    for url in (
        preview_url(files["number"], files["screen.png"]),
        f"/agent/tickets/{files['number']}/leads?q=a",
    ):
        response = client.get(url)
        assert response.status_code in (302, 403, 404), url
        assert not response.headers.get("Content-Type", "").startswith("image/")


def test_signed_out_visitors_are_sent_to_sign_in(client: Any, files: dict[str, Any]) -> None:
    response = client.get(preview_url(files["number"], files["screen.png"]))
    assert response.status_code in (302, 401)
    assert not response.headers.get("Content-Type", "").startswith("image/")
