"""What the speed-ups of mail ingestion must not change (``bench/mail_ingest.py``).

- A batch's blobs are written without a flush each and flushed together: every blob a
  committed row names must have been flushed *before* that commit (crash safety).
- Per-batch lookups (staff, throttle, contact) answer as the per-message queries did.
- The base64 shortcut of the parser gives exactly the parts the plain parser gives.
"""

from __future__ import annotations

import email
import os
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session

from app.extensions import db
from app.files.store import get_vault
from app.mail import parsing
from app.mail.ingest import file_batch
from app.models import Role
from app.models.files import FileKind, VaultFile
from app.models.inbound import InboundMail, Mailbox, MailOutcome, MailSource
from app.models.mail import SenderIdentity
from app.models.people import Contact
from app.models.tickets import StreamEntry, Ticket
from tests import factories
from tests.test_mail_ingest import mail
from vault import LocalDirectoryStorage, Part

SUPPORT = "support@desk.test"


@pytest.fixture
def desk(ctx: None) -> Mailbox:
    identity = SenderIdentity(address=SUPPORT, name="Support", is_default=True)
    box = Mailbox(
        name="Support", address=SUPPORT, host="imap.test", username="s", identity=identity
    )
    db.session.add_all([identity, box])
    db.session.commit()
    return box


@pytest.fixture
def flushes(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every path the process fsyncs, in order (the real fsync still runs)."""
    seen: list[str] = []
    real = os.fsync

    def recording(fd: int) -> None:
        seen.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(os, "fsync", recording)
    yield seen


def _blob_paths(storage: LocalDirectoryStorage, blob_id: str) -> list[str]:
    return [str(storage.path(blob_id, part)) for part in (Part.HEADER, Part.BODY)]


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc to name fds")
def test_every_blob_a_batch_commits_is_flushed_before_the_commit(
    desk: Mailbox, app: Flask, flushes: list[str]
) -> None:
    attachment = os.urandom(300_000)
    items = [(mail(subject=f"n{i}"), f"m{i}") for i in range(4)]
    items.append((mail(subject="files", attachments=[("a.bin", "application/x-a", attachment)]),
                  "f"))  # fmt: skip
    at_commit: list[set[str]] = []

    def before_commit(session: Session) -> None:
        if not session.in_nested_transaction():  # savepoints commit nothing to disk
            at_commit.append(set(flushes))

    event.listen(Session, "before_commit", before_commit)
    try:
        results = file_batch(items, source=MailSource.IMPORT, mailbox=desk)
    finally:
        event.remove(Session, "before_commit", before_commit)
    assert [r.outcome for r in results] == [MailOutcome.CREATED] * 5
    assert len(at_commit) == 1
    flushed = at_commit[0]
    storage = get_vault().storage
    assert isinstance(storage, LocalDirectoryStorage)
    files = db.session.execute(select(VaultFile)).scalars().all()
    assert len(files) == 6  # five originals, one attachment
    for file in files:
        for path in _blob_paths(storage, file.blob_id):
            assert path in flushed, f"{path} committed before it was flushed"
            assert str(Path(path).parent) in flushed, "its directory entry was not flushed"
    # Each file flushed once, not once per write: the deferral is in effect.
    blob_flushes = [p for p in flushes if p.endswith((".hdr", ".body"))]
    assert len(blob_flushes) == len(set(blob_flushes)) == 12
    # And what was flushed is complete: the originals and the attachment read back whole.
    originals = {f.blob_id: f for f in files if f.kind == FileKind.MAIL_ORIGINAL.value}
    raws = {raw for raw, _ in items}
    for blob_id in originals:
        assert b"".join(get_vault().iter_plaintext(blob_id)) in raws
    (stored,) = [f for f in files if f.kind == FileKind.ATTACHMENT.value]
    assert b"".join(get_vault().iter_plaintext(stored.blob_id)) == attachment


def test_a_failed_batch_commits_nothing_and_leaves_at_most_orphan_blobs(
    desk: Mailbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.mail import ingest

    calls = {"n": 0}
    real = ingest.finish

    def lose_the_database_on_the_third(*args: object, **kwargs: object) -> object:
        calls["n"] += 1
        if calls["n"] == 3:
            raise ingest.OperationalError("UPDATE", {}, Exception("database is gone"))
        return real(*args, **kwargs)

    monkeypatch.setattr(ingest, "finish", lose_the_database_on_the_third)
    with pytest.raises(ingest.OperationalError):
        file_batch([(mail(subject=f"n{i}"), None) for i in range(4)], source=MailSource.IMPORT,
                   mailbox=desk)  # fmt: skip
    assert db.session.execute(select(func.count(InboundMail.id))).scalar_one() == 0
    assert db.session.execute(select(func.count(VaultFile.id))).scalar_one() == 0


def test_a_batch_answers_staff_throttle_and_contacts_as_single_messages_do(
    desk: Mailbox, app: Flask
) -> None:
    app.config["MAIL_SENDER_LIMIT_PER_HOUR"] = 2
    agent = factories.staff_user(Role.AGENT)
    known = Contact(name="Known Ann", email="ann@customer.test", verified=True)
    db.session.add(known)
    db.session.commit()
    first = file_batch([(mail(subject="opened"), None)], source=MailSource.IMPORT, mailbox=desk)
    number = first[0].ticket_number
    items = [
        (mail(subject=f"again {i}"), None)
        for i in range(3)  # ann: 1 earlier + 3 = over 2
    ]
    items.append((mail("stranger@elsewhere.test", "hello"), None))
    items.append((mail("stranger@elsewhere.test", "hello again"), None))
    items.append((mail(agent.email, f"Re: [#{number}] on it", "looking"), None))
    results = file_batch(items, source=MailSource.IMPORT, mailbox=desk)
    assert [r.outcome for r in results] == [
        MailOutcome.CREATED,  # ann's second mail within the hour
        MailOutcome.QUARANTINED,  # third: over the limit of two
        MailOutcome.QUARANTINED,
        MailOutcome.CREATED,
        MailOutcome.CREATED,
        MailOutcome.APPENDED,  # staff: never throttled, filed on the ticket
    ]
    assert all("throttled" in (r.reason or "") for r in results[1:3])
    # Ann's tickets are on her existing contact; the stranger got one new contact, not two.
    ann = db.session.execute(select(Ticket).where(Ticket.number == results[0].ticket_number))
    assert ann.scalar_one().contact_id == known.id
    strangers = (
        db.session.execute(select(Contact).where(Contact.email == "stranger@elsewhere.test"))
        .scalars()
        .all()
    )
    assert len(strangers) == 1 and not strangers[0].verified
    tickets = {results[3].ticket_number, results[4].ticket_number}
    for n in tickets:
        ticket = db.session.execute(select(Ticket).where(Ticket.number == n)).scalar_one()
        assert ticket.contact_id == strangers[0].id
    staff_entry = db.session.get(StreamEntry, db.session.execute(
        select(InboundMail.entry_id).where(InboundMail.id == results[5].inbound_id)
    ).scalar_one())  # fmt: skip
    assert staff_entry is not None and staff_entry.author_id == agent.id


def test_a_contact_made_in_a_rolled_back_savepoint_is_not_reused(
    desk: Mailbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A quarantined mail's new contact goes with its savepoint; the next mail makes one."""
    from app.mail import ingest

    real = ingest.store_parts
    calls = {"n": 0}

    def fail_first(*args: object, **kwargs: object) -> object:
        calls["n"] += 1
        if calls["n"] == 1:
            raise OSError("disk hiccup")
        return real(*args, **kwargs)

    monkeypatch.setattr(ingest, "store_parts", fail_first)
    items = [(mail("new@elsewhere.test", f"m{i}"), None) for i in range(2)]
    results = file_batch(items, source=MailSource.IMPORT, mailbox=desk)
    assert [r.outcome for r in results] == [MailOutcome.QUARANTINED, MailOutcome.CREATED]
    (contact,) = (
        db.session.execute(select(Contact).where(Contact.email == "new@elsewhere.test"))
        .scalars()
        .all()
    )
    ticket = db.session.execute(select(Ticket)).scalar_one()
    assert ticket.contact_id == contact.id


# --- the parser's base64 shortcut -------------------------------------------------------


def _shape(msg: email.message.Message) -> list[tuple[object, ...]]:
    return [
        (
            list(part.raw_items()),
            part._payload if isinstance(part._payload, str) else None,  # noqa: SLF001
            part.preamble,
            part.epilogue,
            [type(d).__name__ for d in part.defects],
        )
        for part in msg.walk()
    ]


def _big_messages() -> Iterator[bytes]:
    blob = os.urandom(400_000)
    plain = EmailMessage()
    plain["From"] = "ann@customer.test"
    plain["Subject"] = "logs"
    plain.set_content("see attached")
    plain.add_alternative("<p>see <b>attached</b></p>", subtype="html")
    plain.add_attachment(blob, maintype="application", subtype="octet-stream", filename="a.bin")
    plain.add_attachment(blob[:1000], maintype="image", subtype="png", filename="b.png")
    yield plain.as_bytes()
    yield plain.as_bytes().replace(b"\n", b"\r\n")  # CRLF line ends
    outer = EmailMessage()
    outer["From"] = "bob@customer.test"
    outer["Subject"] = "Fwd: logs"
    outer.set_content("forwarded")
    outer.add_attachment(plain)  # message/rfc822 holding the attachment
    yield outer.as_bytes()
    # A base64 run in the preamble and one that is the very last thing of a part.
    body = plain.as_bytes()
    head, _, rest = body.partition(b"\n\n")
    run = b"".join(b"QUJD" * 19 + b"\n" for _ in range(5000))
    yield head + b"\n\n" + run + rest
    yield b"From: x@y.test\nSubject: bare\nContent-Transfer-Encoding: base64\n\n" + run


@pytest.mark.parametrize("raw", list(_big_messages()), ids=lambda _: "msg")
def test_the_base64_shortcut_parses_exactly_like_the_plain_parser(
    raw: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    shortened, runs = parsing._shortcut_runs(raw)
    assert runs, "the message is big enough to take the shortcut"
    assert len(shortened) < len(raw) // 10
    plain = email.message_from_bytes(raw, policy=parsing.POLICY)
    quick = email.message_from_bytes(shortened, policy=parsing.POLICY)
    parsing._restore_runs(quick, runs)
    assert _shape(quick) == _shape(plain)
    fast = parsing.parse_message(raw)
    monkeypatch.setattr(parsing, "_SHORTCUT_FROM", 1 << 62)
    slow = parsing.parse_message(raw)
    assert [(a.filename, a.content_type, a.data) for a in fast.attachments] == [
        (a.filename, a.content_type, a.data) for a in slow.attachments
    ]
    assert (fast.text, fast.html, fast.defects, fast.subject) == (
        slow.text, slow.html, slow.defects, slow.subject
    )  # fmt: skip
