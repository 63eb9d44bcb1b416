"""Mail in over IMAP and the drop folder, end to end: real Dovecot, real Redis, real RQ.

A mailbox is created through the admin form, mail is appended to Dovecot over IMAP, the
periodic job enqueues the poll and a real (forked) RQ worker runs it; what the server
holds afterwards (flags, folders) is read back over IMAP.
"""

from __future__ import annotations

import multiprocessing
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from rq import Queue
from sqlalchemy import func, select

from app.extensions import db, redis_client
from app.jobs import enqueue
from app.jobs.mail import enqueue_due_polls, poll_mailbox, sweep_mail_drop
from app.mail.imap import FILED_KEYWORD, POLL_LOCK, ImapSettings, check_connection, folder_name
from app.models import Role
from app.models.inbound import InboundMail, Mailbox, MailSource
from app.models.tickets import Ticket
from tests.conftest import Person, run_jobs, sign_in
from tests.imap_tls import TlsDovecotServer, serve_tls
from tests.test_mailboxes import PASSWORD, form_data, imap_user, post_form


def message(subject: str, sender: str = "kunde@example.com", *, n: int = 0) -> bytes:
    mail = EmailMessage()
    mail["From"] = f"Kunde {n} <{sender}>"
    mail["To"] = "support@example.test"
    mail["Subject"] = subject
    mail["Message-ID"] = f"<{re.sub(r'[^a-z0-9]', '', subject.lower())}.{n}@example.com>"
    mail["Date"] = "Tue, 01 Dec 2026 09:00:00 +0000"
    mail.set_content(f"Hello support,\n\n{subject}, number {n}.\n")
    return bytes(mail)


@pytest.fixture
def admin(make_user: Any, client: FlaskClient) -> Person:
    person = make_user(Role.ADMIN)
    assert sign_in(client, person).status_code == 302
    return person


def add_mailbox(client: FlaskClient, imap_server: Any, user: str, **overrides: Any) -> int:
    response = post_form(client, "/admin/mailboxes/new", form_data(imap_server, user, **overrides))
    assert response.status_code == 303, response.get_data(as_text=True)[:800]
    with client.application.app_context():
        return db.session.scalars(select(Mailbox.id).order_by(Mailbox.id.desc())).first()


def server_state(
    imap_server: Any, user: str, folder: str = "INBOX", password: str = PASSWORD
) -> dict[str, set[str]]:
    """Subject -> flags of every message in ``folder``, read over IMAP (\\Recent left out:
    the server sets it for whichever session sees a message first)."""
    with imap_server.connect(user, password) as conn:
        typ, _ = conn.select(f'"{folder_name(folder)}"')
        assert typ == "OK", folder
        typ, data = conn.uid("FETCH", "1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        state: dict[str, set[str]] = {}
        for item in data:
            if not isinstance(item, tuple):
                continue
            flags = re.search(rb"FLAGS \(([^)]*)\)", item[0])
            subject = item[1].decode().split(":", 1)[1].strip()
            state[subject] = set(flags.group(1).decode().split()) - {"\\Recent"} if flags else set()
        return state


def subjects(app: Flask) -> list[str]:
    with app.app_context():
        return sorted(db.session.scalars(select(Ticket.subject)).all())


def inbound(app: Flask) -> list[tuple[str, str, str | None]]:
    with app.app_context():
        rows = db.session.scalars(select(InboundMail).order_by(InboundMail.id)).all()
        return [(r.subject, r.outcome, r.source) for r in rows]


def test_the_periodic_poll_files_new_mail_and_flags_it_after(
    app: Flask, client: FlaskClient, admin: Person, imap_server: Any
) -> None:
    user = imap_user(imap_server)
    imap_server.append(user, PASSWORD, message("Printer on fire", n=1))
    # Opened by a person in a mail client before the poll: \Seen, but not yet filed.
    imap_server.append(user, PASSWORD, message("Invoice question", n=2), flags="(\\Seen)")
    mailbox_id = add_mailbox(client, imap_server, user)
    with app.app_context():
        enqueue(enqueue_due_polls)
    run_jobs(app)
    assert subjects(app) == ["Invoice question", "Printer on fire"]
    assert {o for _s, o, _src in inbound(app)} == {"created"}
    assert {src for _s, _o, src in inbound(app)} == {MailSource.IMAP.value}
    state = server_state(imap_server, user)
    assert state == {
        "Printer on fire": {"\\Seen", FILED_KEYWORD},
        "Invoice question": {"\\Seen", FILED_KEYWORD},
    }
    listing = client.get("/admin/mailboxes").get_data(as_text=True)
    with app.app_context():
        mailbox = db.session.get(Mailbox, mailbox_id)
        assert mailbox.last_success_at is not None and mailbox.last_error is None
        assert mailbox.last_polled_at is not None
        rows = db.session.scalars(select(InboundMail)).all()
        assert {r.mailbox_id for r in rows} == {mailbox_id}
    assert "—" in listing  # no error shown
    # The next poll finds nothing new: nothing filed twice.
    imap_server.append(user, PASSWORD, message("A third one", n=3))
    with app.app_context():
        enqueue(poll_mailbox, args=(mailbox_id,))
    run_jobs(app)
    assert subjects(app) == ["A third one", "Invoice question", "Printer on fire"]
    assert len(inbound(app)) == 3


def test_a_poll_is_not_enqueued_again_before_its_interval(
    app: Flask, client: FlaskClient, admin: Person, imap_server: Any
) -> None:
    first = add_mailbox(client, imap_server, imap_user(imap_server))
    second = add_mailbox(
        client, imap_server, imap_user(imap_server), address="sales@example.test", name="Sales"
    )
    third = add_mailbox(
        client, imap_server, imap_user(imap_server), address="off@example.test", name="Off"
    )
    with app.app_context():
        db.session.get(Mailbox, third).active = False
        db.session.commit()
        assert sorted(enqueue_due_polls()) == [first, second]
        assert enqueue_due_polls() == []  # already queued, not yet run
        queued = Queue("mail", connection=redis_client.connection).get_jobs()
        assert sorted(j.args[0] for j in queued) == [first, second]
    run_jobs(app)
    with app.app_context():
        assert enqueue_due_polls() == []  # polled just now; interval 60 s not over


def test_move_after_import_moves_to_the_folder(
    app: Flask, client: FlaskClient, admin: Person, imap_server: Any
) -> None:
    user = imap_user(imap_server)
    for n in range(3):
        imap_server.append(user, PASSWORD, message(f"Moved mail {n}", n=n))
    mailbox_id = add_mailbox(
        client, imap_server, user, after_import="move", move_to="Erledigt – von Vaultdesk ✓"
    )
    with app.app_context():
        enqueue(poll_mailbox, args=(mailbox_id,))
    run_jobs(app)
    assert subjects(app) == ["Moved mail 0", "Moved mail 1", "Moved mail 2"]
    assert server_state(imap_server, user) == {}
    moved = server_state(imap_server, user, "Erledigt – von Vaultdesk ✓")
    assert sorted(moved) == ["Moved mail 0", "Moved mail 1", "Moved mail 2"]


def test_delete_after_import_expunges(
    app: Flask, client: FlaskClient, admin: Person, imap_server: Any
) -> None:
    user = imap_user(imap_server)
    imap_server.append(user, PASSWORD, message("Deleted after import"))
    mailbox_id = add_mailbox(client, imap_server, user, after_import="delete")
    with app.app_context():
        enqueue(poll_mailbox, args=(mailbox_id,))
    run_jobs(app)
    assert subjects(app) == ["Deleted after import"]
    assert server_state(imap_server, user) == {}


def test_many_messages_are_fetched_in_bounded_batches(
    app: Flask,
    client: FlaskClient,
    admin: Person,
    imap_server: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from app.mail import imap

    monkeypatch.setattr(imap, "BATCH_MAX_COUNT", 2)  # the forked worker inherits it
    user = imap_user(imap_server)
    for n in range(5):
        imap_server.append(user, PASSWORD, message(f"Batch mail {n}", n=n))
    mailbox_id = add_mailbox(client, imap_server, user)
    with app.app_context():
        job = enqueue(poll_mailbox, args=(mailbox_id,))
    run_jobs(app)
    job.refresh()
    assert job.return_value()["filed"] == 5 and job.meta["fetched"] == 5
    assert len(subjects(app)) == 5
    assert all(f == {"\\Seen", FILED_KEYWORD} for f in server_state(imap_server, user).values())


def test_a_message_already_filed_counts_as_filed_and_is_marked(
    app: Flask, client: FlaskClient, admin: Person, imap_server: Any
) -> None:
    """As after a worker killed between commit and marking: the duplicate is marked."""
    from app.mail.ingest import file_message

    raw = message("Filed before the poll", n=7)
    with app.app_context():
        file_message(raw, source=MailSource.PIPE)
    user = imap_user(imap_server)
    imap_server.append(user, PASSWORD, raw)
    mailbox_id = add_mailbox(client, imap_server, user)
    with app.app_context():
        job = enqueue(poll_mailbox, args=(mailbox_id,))
    run_jobs(app)
    assert job.return_value()["outcomes"] == {"duplicate": 1}
    assert subjects(app) == ["Filed before the poll"]
    assert server_state(imap_server, user)["Filed before the poll"] == {"\\Seen", FILED_KEYWORD}


def test_a_wrong_password_is_shown_in_the_admin_list(
    app: Flask, client: FlaskClient, admin: Person, imap_server: Any
) -> None:
    user = imap_user(imap_server)
    imap_server.append(user, PASSWORD, message("Waiting for a password"))
    mailbox_id = add_mailbox(client, imap_server, user)
    imap_server.add_user(user, "changed-on-the-server")
    with app.app_context():
        job = enqueue(poll_mailbox, args=(mailbox_id,))
    run_jobs(app)
    assert "AUTHENTICATIONFAILED" in job.return_value()["error"]
    listing = client.get("/admin/mailboxes").get_data(as_text=True)
    assert "LOGIN: NO [AUTHENTICATIONFAILED] Authentication failed." in listing
    assert subjects(app) == []
    assert server_state(imap_server, user, password="changed-on-the-server") == {
        "Waiting for a password": set()
    }
    with app.app_context():
        mailbox = db.session.get(Mailbox, mailbox_id)
        assert mailbox.last_success_at is None and mailbox.last_polled_at is not None


# -- crash between fetching and committing ------------------------------------------------


def hold_write_lock(path: str) -> subprocess.Popen[str]:
    """Another process holding SQLite's write lock until its stdin closes.

    Another process, not a connection of this one: SQLite keeps its lock bookkeeping per
    process, and a worker forked from a process whose connection holds the lock would
    inherit that bookkeeping and wait for a release it can never see.
    """
    script = (
        "import sqlite3, sys\n"
        "c = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
        "c.execute('BEGIN IMMEDIATE')\n"
        "print('locked', flush=True)\n"
        "sys.stdin.read()\n"
        "c.execute('ROLLBACK')\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", script, path],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    return holder


def _run_worker(app: Flask) -> None:
    """A real RQ worker; it forks a work horse per job (in a session of its own)."""
    run_jobs(app)


def _children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (the work horse of an RQ worker), from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rpartition(")")[2].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return True
    return state == "Z"


def test_a_worker_killed_before_the_commit_loses_and_duplicates_nothing(
    app: Flask, client: FlaskClient, admin: Person, imap_server: Any
) -> None:
    user = imap_user(imap_server)
    for n in range(3):
        imap_server.append(user, PASSWORD, message(f"Survives a crash {n}", n=n))
    mailbox_id = add_mailbox(client, imap_server, user)
    path = app.config["SQLALCHEMY_DATABASE_URI"].removeprefix("sqlite:///")
    lock = hold_write_lock(path)  # from here on the worker's commit has to wait
    try:
        with app.app_context():
            job = enqueue(poll_mailbox, args=(mailbox_id,))
        worker = multiprocessing.get_context("fork").Process(target=_run_worker, args=(app,))
        worker.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            job.refresh()
            if job.meta.get("fetched"):
                break
            time.sleep(0.05)
        assert job.meta.get("fetched") == 3, "the worker never fetched the messages"
        time.sleep(0.3)  # now inside file_batch, waiting for the write lock
        horses = _children(worker.pid)
        assert worker.is_alive() and len(horses) == 1, horses
        for pid in (*horses, worker.pid):  # the horse holding the fetched mail, then its worker
            os.kill(pid, signal.SIGKILL)
        worker.join(timeout=10)
        deadline = time.monotonic() + 10
        while not all(_gone(pid) for pid in horses) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert all(_gone(pid) for pid in horses) and worker.exitcode == -signal.SIGKILL
    finally:
        lock.communicate(timeout=10)  # end of input: it rolls back and exits
    time.sleep(0.5)  # a surviving horse would commit now that the lock is free
    assert subjects(app) == [] and inbound(app) == []
    assert set(map(frozenset, server_state(imap_server, user).values())) == {frozenset()}
    # The dead worker's poll lock would expire after POLL_LOCK_SECONDS; don't wait for it.
    redis_client_for(app).delete(POLL_LOCK.format(id=mailbox_id))
    with app.app_context():
        enqueue(poll_mailbox, args=(mailbox_id,))
    run_jobs(app)
    assert subjects(app) == [f"Survives a crash {n}" for n in range(3)]
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(InboundMail)) == 3
    assert all(f == {"\\Seen", FILED_KEYWORD} for f in server_state(imap_server, user).values())


def redis_client_for(app: Flask) -> Any:
    with app.app_context():
        return redis_client.connection


# -- TLS ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_imap_server() -> Iterator[TlsDovecotServer]:
    yield from serve_tls()


def tls_settings(server: Any, security: str, host: str = "localhost", **kw: Any) -> ImapSettings:
    user = imap_user(server)
    port = server.tls_port if security == "tls" else server.port
    return ImapSettings(host, port, security, user, PASSWORD, timeout=5, **kw)


def test_tls_and_starttls_verify_the_server(app: Flask, tls_imap_server: Any) -> None:
    ca = str(tls_imap_server.ca_file)
    with app.test_request_context():
        for security in ("tls", "starttls"):
            trusted = check_connection(tls_settings(tls_imap_server, security, ca_file=ca))
            assert trusted.ok, trusted.lines
            assert "LOGIN: Logged in" in trusted.lines
            unknown_ca = check_connection(tls_settings(tls_imap_server, security))
            assert not unknown_ca.ok
            assert "unable to get local issuer certificate" in " ".join(unknown_ca.lines)
            assert not any(line.startswith("LOGIN") for line in unknown_ca.lines)
            wrong_name = check_connection(
                tls_settings(tls_imap_server, security, host="127.0.0.1", ca_file=ca)
            )
            assert not wrong_name.ok and "mismatch" in " ".join(wrong_name.lines)
            assert not any(line.startswith("LOGIN") for line in wrong_name.lines)


def test_starttls_never_falls_back_to_plain_text(app: Flask, imap_server: Any) -> None:
    """The plain test server offers no STARTTLS: the password must not be sent anyway."""
    with app.test_request_context():
        result = check_connection(tls_settings(imap_server, "starttls", host=imap_server.host))
    assert not result.ok
    assert any(line.startswith("STARTTLS:") for line in result.lines)
    assert not any(line.startswith("LOGIN") for line in result.lines)


def test_a_mailbox_over_tls_is_polled_with_the_configured_ca(
    app: Flask, client: FlaskClient, admin: Person, tls_imap_server: Any
) -> None:
    app.config["MAIL_IMAP_CA_FILE"] = str(tls_imap_server.ca_file)
    user = imap_user(tls_imap_server)
    tls_imap_server.append(user, PASSWORD, message("Over TLS"))
    mailbox_id = add_mailbox(
        client,
        tls_imap_server,
        user,
        host="localhost",
        security="tls",
        port=tls_imap_server.tls_port,
    )
    with app.app_context():
        enqueue(poll_mailbox, args=(mailbox_id,))
    run_jobs(app)
    assert subjects(app) == ["Over TLS"]


# -- drop folder --------------------------------------------------------------------------


def test_the_drop_folder_files_messages_and_moves_them_to_done(app: Flask) -> None:
    drop = Path(app.config["MAIL_DROP_DIR"])
    with app.app_context():
        enqueue(sweep_mail_drop)
    run_jobs(app)
    assert drop.is_dir() and oct(drop.stat().st_mode & 0o777) == "0o700"  # made by the sweep
    (drop / "one.eml").write_bytes(message("Dropped in", n=1))
    (drop / "two").write_bytes(message("Dropped too", n=2))
    (drop / "garbage.bin").write_bytes(b"\x00\xff not a message at all \x00" * 20)
    (drop / ".writing.eml").write_bytes(message("Still being written", n=3))
    past = time.time() - 60
    for path in drop.iterdir():
        os.utime(path, (past, past))
    with app.app_context():
        job = enqueue(sweep_mail_drop)
    run_jobs(app)
    result = job.return_value()
    assert result["filed"] == 3 and result["failed"] == 0, result
    assert sorted(p.name for p in (drop / "done").iterdir()) == ["garbage.bin", "one.eml", "two"]
    assert sorted(p.name for p in drop.iterdir() if p.is_file()) == [".writing.eml"]
    assert {"Dropped in", "Dropped too"} <= set(subjects(app))
    # Nothing is silently dropped: the garbage is on record too (filed or quarantined).
    assert len(inbound(app)) == 3
    assert {src for _s, _o, src in inbound(app)} == {MailSource.DROP.value}


def test_imap_errors_do_not_leak_the_password(app: Flask, imap_server: Any) -> None:
    user = imap_user(imap_server)
    with app.test_request_context():
        result = check_connection(
            ImapSettings(imap_server.host, imap_server.port, "none", user, "wrong-pass-123")
        )
    assert not result.ok and "wrong-pass-123" not in " ".join(result.lines)


# -- a message the pipeline cannot even quarantine, an outage ------------------------------


class Poisoned(RuntimeError):
    """Stands for a bug in the pipeline that only one message triggers."""


def failing_on_poison(real: Any, error: BaseException | None = None) -> Any:
    """The real ``file_batch`` that raises for any batch holding a message marked POISON."""

    def file_batch(items: list[tuple[bytes, str | None]]) -> Any:
        if any(b"POISON" in raw for raw, _ref in items):
            raise error or Poisoned("the pipeline broke on this one")
        return real(items, source=MailSource.IMAP)

    return file_batch


def test_one_message_that_cannot_be_filed_does_not_hold_back_the_rest(
    app: Flask, imap_server: Any
) -> None:
    from app.mail.imap import ImapMailbox, poll
    from app.mail.imap import retry_later as transient
    from app.mail.ingest import file_batch

    user = imap_user(imap_server)
    for n, subject in enumerate(["Fine before", "POISON pill", "Fine after"]):
        imap_server.append(user, PASSWORD, message(subject, n=n))
    settings = ImapSettings(imap_server.host, imap_server.port, "none", user, PASSWORD)
    with app.test_request_context(), ImapMailbox(settings) as box:
        result = poll(
            box,
            failing_on_poison(file_batch),
            after_import="flag",
            move_to=None,
            transient=transient,
        )
    assert (result.found, result.filed, result.marked) == (3, 2, 2)
    assert len(result.unfiled) == 1 and "Poisoned" in result.unfiled[0]
    assert subjects(app) == ["Fine after", "Fine before"]
    state = server_state(imap_server, user)
    assert state["POISON pill"] == set()  # still there, unmarked, for the next poll
    assert state["Fine before"] == state["Fine after"] == {"\\Seen", FILED_KEYWORD}


def test_a_database_outage_ends_the_poll_with_nothing_marked(app: Flask, imap_server: Any) -> None:
    from sqlalchemy.exc import OperationalError

    from app.mail.imap import ImapMailbox, poll
    from app.mail.imap import retry_later as transient
    from app.mail.ingest import file_batch

    user = imap_user(imap_server)
    for n, subject in enumerate(["Fine", "POISON outage"]):
        imap_server.append(user, PASSWORD, message(subject, n=n))
    outage = OperationalError("INSERT", {}, Exception("database is locked"))
    settings = ImapSettings(imap_server.host, imap_server.port, "none", user, PASSWORD)
    with app.test_request_context(), ImapMailbox(settings) as box, pytest.raises(OperationalError):
        poll(
            box,
            failing_on_poison(file_batch, outage),
            after_import="flag",
            move_to=None,
            transient=transient,
        )
    assert subjects(app) == []
    assert set(map(frozenset, server_state(imap_server, user).values())) == {frozenset()}


def test_the_drop_folder_sets_aside_only_what_even_quarantine_could_not_take(
    app: Flask,
) -> None:
    from sqlalchemy.exc import OperationalError

    from app.mail.drop import sweep_drop_folder
    from app.mail.ingest import file_message

    drop = Path(app.config["MAIL_DROP_DIR"])
    drop.mkdir(parents=True)
    (drop / "a-fine.eml").write_bytes(message("Fine drop", n=1))
    (drop / "b-poison.eml").write_bytes(message("POISON drop", n=2))
    (drop / "c-outage.eml").write_bytes(message("OUTAGE drop", n=3))
    (drop / "d-after.eml").write_bytes(message("After the outage", n=4))
    past = time.time() - 60
    for path in drop.iterdir():
        os.utime(path, (past, past))

    def file_one(raw: bytes, name: str) -> Any:
        if b"POISON" in raw:
            raise Poisoned("the pipeline broke on this one")
        if b"OUTAGE" in raw:
            raise OperationalError("INSERT", {}, Exception("database is locked"))
        return file_message(raw, source=MailSource.DROP, source_ref=name)

    with app.app_context():
        report = sweep_drop_folder(drop, redis_client.connection, file_one=file_one)
    assert (report.filed, report.failed, report.left) == (1, 1, 1)
    assert [p.name for p in (drop / "done").iterdir()] == ["a-fine.eml"]
    failed = sorted(p.name for p in (drop / "failed").iterdir())
    assert failed == ["b-poison.eml", "b-poison.eml.error"]
    assert "Poisoned" in (drop / "failed" / "b-poison.eml.error").read_text()
    # The outage stops the sweep: that file and the ones after it wait for the next one.
    waiting = sorted(p.name for p in drop.iterdir() if p.is_file())
    assert waiting == ["c-outage.eml", "d-after.eml"]
    assert subjects(app) == ["Fine drop"]


def test_a_password_that_cannot_be_opened_is_reported_not_sent_elsewhere(
    app: Flask, client: FlaskClient, admin: Person, imap_server: Any
) -> None:
    """A row pointed at another server behind the app's back: no login is even tried."""
    user = imap_user(imap_server)
    imap_server.append(user, PASSWORD, message("Not fetched"))
    mailbox_id = add_mailbox(client, imap_server, user)
    with app.app_context():
        db.session.get(Mailbox, mailbox_id).username = user + "-other"
        db.session.commit()
        job = enqueue(poll_mailbox, args=(mailbox_id,))
    run_jobs(app)
    assert "enter the password again" in job.return_value()["error"]
    listing = client.get("/admin/mailboxes").get_data(as_text=True)
    assert "The stored password cannot be opened" in listing
    assert subjects(app) == []


def test_large_attachments_are_fetched_in_batches_bounded_by_bytes(
    app: Flask,
    client: FlaskClient,
    admin: Person,
    imap_server: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two 1 MB attachments and a small mail under a 2 MB batch limit: two batches."""
    from app.files.store import get_vault
    from app.mail import imap
    from app.models.files import FileKind, VaultFile

    monkeypatch.setattr(imap, "BATCH_MAX_BYTES", 2 * 1024 * 1024)
    user = imap_user(imap_server)
    payloads = {}
    for n in range(2):
        mail = EmailMessage()
        mail["From"] = "kunde@example.com"
        mail["To"] = "support@example.test"
        mail["Subject"] = f"Scan {n} attached"
        mail["Message-ID"] = f"<scan{n}@example.com>"
        mail.set_content("The scan is attached.")
        mail.add_alternative("<p>The scan is <b>attached</b>.</p>", subtype="html")
        payloads[n] = os.urandom(1024 * 1024)  # 1.4 MB once base64-encoded
        mail.add_attachment(
            payloads[n], maintype="application", subtype="pdf", filename=f"s{n}.pdf"
        )
        imap_server.append(user, PASSWORD, bytes(mail))
    imap_server.append(user, PASSWORD, message("Small one", n=9))
    mailbox_id = add_mailbox(client, imap_server, user)
    with app.app_context():
        job = enqueue(poll_mailbox, args=(mailbox_id,))
    run_jobs(app)
    assert job.return_value()["filed"] == 3
    job.refresh()
    assert (job.meta["batches"], job.meta["fetched"]) == (2, 3)  # [scan 0], [scan 1, small]
    assert subjects(app) == ["Scan 0 attached", "Scan 1 attached", "Small one"]
    with app.app_context():
        files = db.session.scalars(
            select(VaultFile).where(VaultFile.kind == FileKind.ATTACHMENT.value)
        ).all()
        assert sorted(f.display_name for f in files) == ["s0.pdf", "s1.pdf"]
        stored = {f.display_name: b"".join(get_vault().iter_plaintext(f.blob_id)) for f in files}
        assert stored == {"s0.pdf": payloads[0], "s1.pdf": payloads[1]}
    assert all(f == {"\\Seen", FILED_KEYWORD} for f in server_state(imap_server, user).values())


def test_a_password_beyond_ascii_logs_in(app: Flask, imap_server: Any) -> None:
    """imaplib's LOGIN is ASCII only; such passwords go over AUTHENTICATE PLAIN in UTF-8."""
    user = imap_user(imap_server, password="Grüße-zum-Passwort")
    settings = ImapSettings(imap_server.host, imap_server.port, "none", user, "Grüße-zum-Passwort")
    with app.test_request_context():
        result = check_connection(settings)
        wrong = check_connection(
            ImapSettings(imap_server.host, imap_server.port, "none", user, "Grüße-falsch")
        )
    assert result.ok, result.lines
    assert not wrong.ok and any("AUTHENTICATIONFAILED" in line for line in wrong.lines)
