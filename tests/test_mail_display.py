"""Received mail as agents and customers see it, over HTTP: inline images, remote images,
"show original", and the files the portal and links may (never) offer.

Entries are made the way the ingest pipeline stores them (see app/mail/ingest.py's storage
conventions): a ``mail_in`` entry with ``sanitise_mail_html`` output, inline images as vault
files of kind ``inline`` on the entry, the raw message as kind ``mail_original`` referenced
only by its ``InboundMail`` row.
"""

from __future__ import annotations

import hashlib
import io
import re
import struct
import zlib
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import select

from app.actor import Actor
from app.errors import InvalidInput
from app.extensions import db
from app.files.store import store_upload
from app.files.vault_links import issue_link
from app.mail.content import sanitise_mail_html
from app.models.audit import AuditLog
from app.models.files import FileKind, VaultFile
from app.models.inbound import InboundMail, MailOutcome, MailSource
from app.models.people import Contact, Role
from app.models.tickets import Channel, EntryKind, StreamEntry, Ticket
from app.tickets import create_ticket
from app.tickets.stream import add_entry
from tests.conftest import Person, csrf_from, sign_in

RAW = (
    b"From: Customer <customer@example.org>\r\nTo: support@desk.example\r\n"
    b"Subject: Broken\r\nMessage-ID: <m1@example.org>\r\nContent-Type: text/html\r\n\r\n"
    b"<p>Hello <script>alert(1)</script></p>\r\n"
)


def png(width: int = 2, height: int = 2) -> bytes:
    """A real PNG (the vault sniffs types from bytes)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


@dataclass(frozen=True)
class Mail:
    number: str
    entry_id: int
    inline_id: str
    attachment_id: str
    original_id: str


def file_mail(
    app: Any,
    contact_id: int | None,
    html: str,
    *,
    text: str = "Hello",
    internal: bool = False,
    number: str | None = None,
) -> Mail:
    """A received mail on a (new) ticket of the contact, stored as the pipeline stores it."""
    with app.app_context():
        contact = db.session.get(Contact, contact_id)
        assert contact is not None
        actor = Actor.customer(name=contact.name, email=contact.email)
        if number is None:
            ticket = create_ticket(Channel.MAIL, actor, subject="Broken", contact=contact)
        else:
            ticket = db.session.scalar(select(Ticket).where(Ticket.number == number))
            assert ticket is not None
        entry = add_entry(ticket, EntryKind.MAIL_IN, actor, body_text=text, internal=internal)
        db.session.flush()
        inline = store_upload(io.BytesIO(png()), "logo.png", actor, ticket=ticket, entry=entry)
        inline.kind = FileKind.INLINE.value
        attachment = store_upload(
            io.BytesIO(b"report contents\n"), "report.txt", actor, ticket=ticket, entry=entry
        )
        original = store_upload(io.BytesIO(RAW), "message.eml", actor, ticket=ticket)
        original.kind = FileKind.MAIL_ORIGINAL.value
        entry.body_html = sanitise_mail_html(html, {"logo@x": inline.public_id})
        entry.data = {"inline": {"logo@x": inline.public_id}, "remote_images": True}
        db.session.add(
            InboundMail(
                dedupe_key=f"m{entry.id}@example.org",
                message_id=f"m{entry.id}@example.org",
                sha256=hashlib.sha256(RAW).hexdigest(),
                source=MailSource.PIPE.value,
                from_address=contact.email,
                subject="Broken",
                size=len(RAW),
                outcome=MailOutcome.CREATED.value,
                ticket_id=ticket.id,
                entry_id=entry.id,
                raw_file_id=original.id,
            )
        )
        db.session.commit()
        return Mail(
            ticket.number, entry.id, inline.public_id, attachment.public_id, original.public_id
        )


HTML = (
    '<p>Look: <img src="cid:logo@x" alt="logo"> and <img src="https://img.example/t.gif"></p>'
    '<div class="gmail_quote">On Monday Support wrote:<blockquote>old text</blockquote></div>'
)


@pytest.fixture
def people(make_user: Any) -> dict[str, Person]:
    return {
        "agent": make_user(Role.AGENT),
        "a": make_user(Role.CUSTOMER),
        "b": make_user(Role.CUSTOMER),
    }


def img_sources(page: str) -> list[str]:
    return re.findall(r"<img[^>]*\ssrc=\"([^\"]+)\"", page)


def test_agent_sees_the_mail_with_inline_image_and_remote_images_blocked(
    app: Any, client: Any, login: Any, people: dict[str, Person]
) -> None:
    mail = file_mail(app, people["a"].contact_id, HTML)
    login(people["agent"])
    response = client.get(f"/agent/tickets/{mail.number}")
    page = response.get_data(as_text=True)
    inline_url = f"/agent/tickets/{mail.number}/inline/{mail.inline_id}"
    assert img_sources(page) == [inline_url]
    assert "img.example" not in page  # not even as an attribute a script could read
    assert "Show remote images" in page
    assert re.search(r"img-src 'self' data:;", response.headers["Content-Security-Policy"])
    # Without remote images asked for, boosted navigation stays boosted.
    boosted = client.get(
        f"/agent/tickets/{mail.number}", headers={"HX-Request": "true", "HX-Boosted": "true"}
    )
    assert boosted.status_code == 200 and "HX-Redirect" not in boosted.headers
    # The quoted history is there, folded.
    assert re.search(r"<details class=\"mail-quoted\"><summary>Show quoted text</summary>.*"
                     r"old text.*</details>", page, re.S)  # fmt: skip
    image = client.get(inline_url)
    assert image.status_code == 200
    assert image.data == png()
    assert image.mimetype == "image/png"
    # Listed as files: the attachment, not the inline image, never the original.
    assert f"/files/{mail.attachment_id}" in page
    assert f"/files/{mail.inline_id}" not in page
    assert mail.original_id not in page


def test_show_remote_images_is_remembered_per_entry_and_widens_the_policy(
    app: Any, client: Any, login: Any, people: dict[str, Person]
) -> None:
    mail = file_mail(app, people["a"].contact_id, HTML)
    other = file_mail(
        app, people["a"].contact_id, '<img src="https://other.example/x.gif">', number=mail.number
    )
    login(people["agent"])
    page = client.get(f"/agent/tickets/{mail.number}").get_data(as_text=True)
    url = f"/agent/tickets/{mail.number}/mail/{mail.entry_id}/remote-images"
    assert client.post(url).status_code == 400  # no CSRF token: refused
    response = client.post(url, data={"csrf_token": csrf_from(page)})
    assert response.status_code == 303
    again = client.get(f"/agent/tickets/{mail.number}")
    page = again.get_data(as_text=True)
    assert "https://img.example/t.gif" in img_sources(page)
    assert "https://other.example/x.gif" not in page  # the other mail was not asked about
    policy = again.headers["Content-Security-Policy"]
    assert "img-src 'self' data: https://img.example;" in policy
    assert "other.example" not in policy
    with app.app_context():
        rows = db.session.scalars(
            select(AuditLog).where(AuditLog.action == "mail.remote_images")
        ).all()
        assert [r.object_id for r in rows] == [str(mail.entry_id)]
    # htmx asks for a full reload: the new policy only applies to a new document.
    hx = client.post(
        f"/agent/tickets/{mail.number}/mail/{other.entry_id}/remote-images",
        data={"csrf_token": csrf_from(page)},
        headers={"HX-Request": "true"},
    )
    assert hx.headers["HX-Refresh"] == "true"
    # Boosted navigation would keep the previous page's policy: it becomes a full load.
    boosted = client.get(
        f"/agent/tickets/{mail.number}", headers={"HX-Request": "true", "HX-Boosted": "true"}
    )
    assert boosted.headers["HX-Redirect"] == f"/agent/tickets/{mail.number}"
    assert (
        "other.example"
        in client.get(f"/agent/tickets/{mail.number}").headers["Content-Security-Policy"]
    )


def test_agent_opens_the_original_as_plain_text(
    app: Any, client: Any, login: Any, people: dict[str, Person]
) -> None:
    mail = file_mail(app, people["a"].contact_id, HTML)
    login(people["agent"])
    page = client.get(f"/agent/tickets/{mail.number}").get_data(as_text=True)
    url = f"/agent/tickets/{mail.number}/mail/{mail.entry_id}/original"
    assert f'href="{url}"' in page
    response = client.get(url)
    assert response.status_code == 200
    assert response.data == RAW
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert response.headers["Content-Disposition"].startswith("attachment")
    assert "sandbox" in response.headers["Content-Security-Policy"]
    # Another ticket's number does not reach this entry's original.
    other = file_mail(app, people["b"].contact_id, "<p>x</p>")
    assert (
        client.get(f"/agent/tickets/{other.number}/mail/{mail.entry_id}/original").status_code
        == 404
    )


def test_the_portal_never_offers_the_original_or_inline_images_as_files(
    app: Any, client: Any, people: dict[str, Person]
) -> None:
    mail = file_mail(app, people["a"].contact_id, HTML)
    assert sign_in(client, people["a"], portal=True).status_code == 302
    response = client.get(f"/portal/tickets/{mail.number}")
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert mail.original_id not in page
    assert "original" not in page.lower()
    assert img_sources(page) == [f"/portal/tickets/{mail.number}/inline/{mail.inline_id}"]
    assert "img.example" not in page
    assert f"/portal/tickets/{mail.number}/files/{mail.attachment_id}" in page
    assert f"/files/{mail.inline_id}" not in page
    base = f"/portal/tickets/{mail.number}"
    assert client.get(f"{base}/files/{mail.attachment_id}").status_code == 200
    assert client.get(f"{base}/files/{mail.original_id}").status_code == 404
    assert client.get(f"{base}/files/{mail.inline_id}").status_code == 404
    assert client.get(f"{base}/inline/{mail.original_id}").status_code == 404
    assert client.get(f"{base}/inline/{mail.attachment_id}").status_code == 404
    assert client.get(f"{base}/mail/{mail.entry_id}/original").status_code == 404
    assert client.get(f"{base}/inline/{mail.inline_id}").data == png()


def test_customer_b_cannot_fetch_customer_a_inline_image(
    app: Any, client: Any, people: dict[str, Person]
) -> None:
    mine = file_mail(app, people["a"].contact_id, HTML)
    theirs = file_mail(app, people["b"].contact_id, "<p>B's own</p>")
    assert sign_in(client, people["b"], portal=True).status_code == 302
    assert client.get(f"/portal/tickets/{mine.number}/inline/{mine.inline_id}").status_code == 404
    # Their own ticket's number with A's image: as absent as a made-up id.
    assert client.get(f"/portal/tickets/{theirs.number}/inline/{mine.inline_id}").status_code == 404
    assert (
        client.get(f"/portal/tickets/{theirs.number}/inline/{theirs.inline_id}").status_code == 200
    )
    # Nor through the agent side.
    assert client.get(f"/agent/tickets/{mine.number}/inline/{mine.inline_id}").status_code in (
        302,
        403,
        404,
    )


def test_customer_cannot_fetch_an_inline_image_of_an_internal_entry(
    app: Any, client: Any, people: dict[str, Person]
) -> None:
    public = file_mail(app, people["a"].contact_id, HTML)
    internal = file_mail(app, people["a"].contact_id, HTML, internal=True, number=public.number)
    assert sign_in(client, people["a"], portal=True).status_code == 302
    base = f"/portal/tickets/{public.number}/inline"
    assert client.get(f"{base}/{public.inline_id}").status_code == 200
    assert client.get(f"{base}/{internal.inline_id}").status_code == 404


def test_no_link_is_ever_made_for_an_original_or_an_inline_image(
    app: Any, people: dict[str, Person]
) -> None:
    mail = file_mail(app, people["a"].contact_id, HTML)
    with app.app_context():
        for public_id in (mail.original_id, mail.inline_id):
            file = db.session.scalar(select(VaultFile).where(VaultFile.public_id == public_id))
            assert file is not None
            with pytest.raises(InvalidInput):
                issue_link(file, Actor.system(), recipient_email="customer@example.org")
        attachment = db.session.scalar(
            select(VaultFile).where(VaultFile.public_id == mail.attachment_id)
        )
        assert attachment is not None
        assert issue_link(attachment, Actor.system()).file_id == attachment.id


def test_plain_text_mail_folds_its_history(
    app: Any, client: Any, login: Any, people: dict[str, Person]
) -> None:
    mail = file_mail(
        app, people["a"].contact_id, "", text="Fixed, thanks.\n\nOn Mon, S wrote:\n> old"
    )
    with app.app_context():
        entry = db.session.get(StreamEntry, mail.entry_id)
        assert entry is not None
        entry.body_html = None
        db.session.commit()
    login(people["agent"])
    page = client.get(f"/agent/tickets/{mail.number}").get_data(as_text=True)
    assert re.search(
        r"Fixed, thanks\.<details class=\"mail-quoted\"><summary>Show quoted text</summary>"
        r"On Mon, S wrote:\n&gt; old</details>",
        page,
    )
