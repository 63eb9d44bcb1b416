"""Files in tickets: upload into the vault, staff download, names, rotation, erasure."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from app.actor import Actor
from app.extensions import db
from app.files.names import content_disposition, display_name
from app.files.store import store_upload
from app.models import AuditLog, DownloadEvent, Role, StreamEntry, VaultFile
from tests import factories
from tests.conftest import csrf_from, sign_in

MARKER = b"VAULTDESK-PLAINTEXT-MARKER-" * 4000  # ~108 KB that must never appear in clear


def post_note(
    client: Any, number: str, files: list[tuple[bytes, str]], body: str = "See files"
) -> Any:
    page = client.get(f"/agent/tickets/{number}").get_data(as_text=True)
    data: dict[str, Any] = {"csrf_token": csrf_from(page), "visibility": "internal", "body": body}
    data["files"] = [(io.BytesIO(content), name) for content, name in files]
    return client.post(
        f"/agent/tickets/{number}/answer", data=data, content_type="multipart/form-data"
    )


@pytest.fixture
def ticket_number(app: Any) -> str:
    with app.app_context():
        number = factories.ticket().number
        db.session.commit()
        return number


def test_agent_attaches_files_to_a_note_and_downloads_them(
    app: Any, client: Any, make_user: Any, ticket_number: str
) -> None:
    sign_in(client, make_user(Role.AGENT))
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
    response = post_note(client, ticket_number, [(MARKER, "notes.txt"), (png, "screen.png")])
    assert response.status_code == 303
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Note added with 2 file(s)." in page and "notes.txt" in page and "screen.png" in page
    with app.app_context():
        files = db.session.scalars(select(VaultFile).order_by(VaultFile.id)).all()
        assert [(f.display_name, f.mime_type) for f in files] == [
            ("notes.txt", "text/plain; charset=utf-8"),
            ("screen.png", "image/png"),
        ]
        assert files[0].sha256 == hashlib.sha256(MARKER).hexdigest()
        entry = db.session.get(StreamEntry, files[0].entry_id)
        assert entry.kind == "note" and entry.is_internal and entry.body_text == "See files"
        path = f"/agent/tickets/{ticket_number}/files/{files[0].public_id}"
    download = client.get(path)
    assert download.status_code == 200 and download.data == MARKER
    assert download.headers["Content-Type"] == "text/plain; charset=utf-8"
    with app.app_context():
        event = db.session.scalar(select(DownloadEvent))
        assert event.outcome == "served" and event.user_id is not None and event.link_id is None


def test_no_plaintext_byte_lands_under_the_instance_folder(
    app: Any, client: Any, make_user: Any, ticket_number: str
) -> None:
    sign_in(client, make_user(Role.AGENT))
    assert post_note(client, ticket_number, [(MARKER, "secret.txt")]).status_code == 303
    needle = MARKER[:64]
    scanned = 0
    for root, _dirs, names in os.walk(app.instance_path):
        for name in names:
            data = (Path(root) / name).read_bytes()
            scanned += 1
            assert needle not in data, f"plaintext found in {name}"
    assert scanned >= 3  # the database, a blob header and body at least
    blobs = list(Path(app.config["VAULT_DIR"]).rglob("*.body"))
    assert len(blobs) == 1 and blobs[0].stat().st_size > len(MARKER)


def test_an_upload_over_the_limit_is_refused_and_leaves_nothing(
    app: Any, client: Any, make_user: Any, ticket_number: str
) -> None:
    app.config["VAULT_MAX_UPLOAD_BYTES"] = 100_000
    sign_in(client, make_user(Role.AGENT))
    response = post_note(client, ticket_number, [(b"small", "ok.txt"), (MARKER, "big.txt")])
    assert response.status_code == 422
    assert "“big.txt” is larger than the limit of 97.7 KB." in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(VaultFile)) == 0
        assert (
            db.session.scalar(
                select(func.count()).select_from(StreamEntry).where(StreamEntry.kind == "note")
            )
            == 0
        )
    leftovers = [p for p in Path(app.config["VAULT_DIR"]).rglob("*") if p.is_file()]
    assert leftovers == []


def test_empty_file_and_odd_names(
    app: Any, client: Any, make_user: Any, ticket_number: str
) -> None:
    sign_in(client, make_user(Role.AGENT))
    odd = "../../etc/pass\x07wd\u202egnp.exe"
    long_name = "x" * 300 + ".pdf"
    assert (
        post_note(
            client, ticket_number, [(b"", "empty.txt"), (b"abc", odd), (b"d", long_name)]
        ).status_code
        == 303
    )
    with app.app_context():
        files = db.session.scalars(select(VaultFile).order_by(VaultFile.id)).all()
        assert files[0].size == 0 and files[0].display_name == "empty.txt"
        assert files[1].original_name == odd  # kept as given
        assert files[1].display_name == "passwdgnp.exe"  # shown safely, no RTL override
        assert len(files[2].display_name) <= 255 and files[2].display_name.endswith(".pdf")
        empty_path = f"/agent/tickets/{ticket_number}/files/{files[0].public_id}"
    empty = client.get(empty_path)
    assert empty.status_code == 200 and empty.data == b"" and empty.headers["Content-Length"] == "0"


def test_note_upload_without_csrf_token_stores_nothing(
    app: Any, client: Any, make_user: Any, ticket_number: str
) -> None:
    sign_in(client, make_user(Role.AGENT))
    response = client.post(
        f"/agent/tickets/{ticket_number}/answer",
        data={"body": "x", "files": [(io.BytesIO(MARKER), "a.txt")]},
        content_type="multipart/form-data",
    )
    assert response.status_code == 400
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(VaultFile)) == 0
    assert not [p for p in Path(app.config["VAULT_DIR"]).rglob("*") if p.is_file()]


def test_staff_download_needs_the_right_ticket_and_a_staff_role(
    app: Any, client: Any, make_user: Any
) -> None:
    with app.app_context():
        mine, other = factories.ticket(), factories.ticket()
        file = store_upload(io.BytesIO(b"contract"), "c.pdf", Actor.system(), ticket=mine)
        db.session.commit()
        good = f"/agent/tickets/{mine.number}/files/{file.public_id}"
        crossed = f"/agent/tickets/{other.number}/files/{file.public_id}"
    assert client.get(good).status_code == 302  # anonymous: sign in first
    customer = make_user(Role.CUSTOMER)
    sign_in(client, customer, portal=True)
    assert client.get(good).status_code == 403
    client.post(
        "/logout", data={"csrf_token": csrf_from(client.get("/portal/").get_data(as_text=True))}
    )
    sign_in(client, make_user(Role.COMPLIANCE))
    assert client.get(good).status_code == 403  # compliance reads audits, not files
    client.post(
        "/logout", data={"csrf_token": csrf_from(client.get("/compliance/").get_data(as_text=True))}
    )
    sign_in(client, make_user(Role.AGENT))
    assert client.get(crossed).status_code == 404  # a file of another ticket does not exist here
    assert client.get(f"/agent/tickets/{mine.number}/files/{'0' * 32}").status_code == 404
    assert client.get(good).data == b"contract"


def test_agent_issues_a_link_from_the_ticket(app: Any, client: Any, make_user: Any) -> None:
    with app.app_context():
        ticket = factories.ticket()
        file = store_upload(io.BytesIO(b"offer"), "offer.pdf", Actor.system(), ticket=ticket)
        db.session.commit()
        path = f"/agent/tickets/{ticket.number}/files/{file.public_id}/links"
        contact_email = ticket.contact.email
    sign_in(client, make_user(Role.AGENT))
    panel = client.get(path, headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "<html" not in panel and f'value="{contact_email}"' in panel
    response = client.post(
        path,
        data={
            "csrf_token": csrf_from(panel),
            "days": "3",
            "max_downloads": "2",
            "recipient": contact_email,
        },
        headers={"HX-Request": "true"},
    )
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and "Link created." in html
    url = html.split('class="link-url" readonly value="')[1].split('"')[0]
    assert url.startswith("http://localhost:5000/v/")
    landing = client.get(url.removeprefix("http://localhost:5000"))
    assert landing.status_code == 200 and "offer.pdf" in landing.get_data(as_text=True)
    bad = client.post(
        path, data={"csrf_token": csrf_from(panel), "days": "0"}, headers={"HX-Request": "true"}
    )
    assert bad.status_code == 422 and "Valid for (days)" in bad.get_data(as_text=True)
    with app.app_context():
        row = db.session.scalar(select(AuditLog).where(AuditLog.action == "link.issue"))
        assert row.details["days"] == 3 and row.details["max_downloads"] == 2


def test_rotate_key_keeps_files_readable_and_retire_waits_for_rewrap(app: Any) -> None:
    from app.files.store import get_vault

    runner = app.test_cli_runner()
    with app.app_context():
        file = store_upload(io.BytesIO(MARKER), "m.txt", Actor.system(), ticket=factories.ticket())
        db.session.commit()
        blob_id = file.blob_id
        old_key = get_vault().keyring.current_id
    rotated = runner.invoke(args=["vault", "rotate-key"])
    assert rotated.exit_code == 0 and "1 files re-wrapped" in rotated.output
    with app.app_context():
        vault = get_vault()
        assert vault.keyring.current_id != old_key
        assert b"".join(vault.iter_plaintext(blob_id)) == MARKER
        assert vault.key_ids_in_use() == {vault.keyring.current_id}
    status = runner.invoke(args=["vault", "status"])
    assert "not needed by any file" in status.output
    assert runner.invoke(args=["vault", "retire-key", old_key]).exit_code == 0
    with app.app_context():
        current = get_vault().keyring.current_id
    refused = runner.invoke(args=["vault", "retire-key", current])
    assert refused.exit_code != 0
    keys = list(Path(app.config["VAULT_KEY_DIR"]).glob("*.key"))
    assert all(oct(k.stat().st_mode & 0o777) == "0o600" for k in keys)


def test_display_names_and_content_disposition() -> None:
    assert display_name("C:\\Users\\me\\Rechnung.pdf") == "Rechnung.pdf"
    assert display_name("\u202eexe.pdf") == "exe.pdf"
    assert display_name("   ") == "unnamed"
    assert display_name("a\nb\tc.txt") == "abc.txt"  # control characters go
    header = content_disposition('quote".pdf')
    assert header.startswith('attachment; filename="quote_.pdf"') and "quote%22.pdf" in header


def test_s3_backend_is_configuration_only(
    tmp_path: Path, redis_server: Any, migrated_template: Path, s3_endpoint: str
) -> None:
    """Same app, files in S3-compatible storage: upload, link download, no local blobs."""
    import shutil

    import boto3

    from app import create_app
    from app.files import vault_links
    from tests.conftest import base_config

    boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1").create_bucket(
        Bucket="desk-files"
    )
    shutil.copy(migrated_template, tmp_path / "vaultdesk.db")
    app = create_app(
        {
            **base_config(tmp_path, redis_server.url),
            "VAULT_STORAGE_URL": f"s3://desk-files/vault?endpoint_url={s3_endpoint}&region=us-east-1",
        }
    )
    with app.app_context():
        file = store_upload(io.BytesIO(MARKER), "m.txt", Actor.system(), ticket=factories.ticket())
        link = vault_links.issue_link(file, Actor.system())
        db.session.commit()
        path = vault_links.link_url(link).removeprefix("http://localhost:5000")
    client = app.test_client()
    token = csrf_from(client.get(path).get_data(as_text=True))
    grant = client.post(path, data={"csrf_token": token}).headers["Location"]
    assert client.get(grant).data == MARKER
    assert not (tmp_path / "vault").exists()
    objects = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1").list_objects_v2(
        Bucket="desk-files"
    )
    assert {o["Key"].rsplit(".", 1)[1] for o in objects["Contents"]} == {"hdr", "body"}
    with app.app_context():
        db.engine.dispose()


def test_key_ring_from_the_environment(
    tmp_path: Path, redis_server: Any, migrated_template: Path
) -> None:
    import shutil

    from app import create_app
    from tests.conftest import base_config
    from vault import KeyRing

    ring = KeyRing.generate()
    shutil.copy(migrated_template, tmp_path / "vaultdesk.db")
    app = create_app({**base_config(tmp_path, redis_server.url), "VAULT_KEYS": ring.to_string()})
    with app.app_context():
        file = store_upload(
            io.BytesIO(b"hello"), "h.txt", Actor.system(), ticket=factories.ticket()
        )
        db.session.commit()
        from app.files.store import get_vault

        assert get_vault().key_id_of(file.blob_id) == ring.current_id
        db.engine.dispose()
    assert not (tmp_path / "keys").exists()  # nothing written where the ring did not come from
    refused = app.test_cli_runner().invoke(args=["vault", "rotate-key"])
    assert refused.exit_code != 0 and "VAULTDESK_VAULT_KEYS" in refused.output
