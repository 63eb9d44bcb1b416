"""`vaultdesk mail pipe` and `vaultdesk mail import`, run as the real command on real files."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from app.extensions import db
from app.mail.sources import SourceMessage, batches, iter_messages
from app.models.inbound import InboundMail, Mailbox
from app.models.tickets import Ticket
from tests.services import free_port

VAULTDESK = str(Path(sys.executable).parent / "vaultdesk")
CHECKOUT = Path(__file__).resolve().parent.parent
KEYS = {"file", "outcome", "ticket", "subject", "from", "attachments", "reason"}


def message(
    subject: str = "Printer on fire",
    sender: str = "ann@customer.test",
    *,
    attachment: tuple[str, bytes] | None = None,
    message_id: bool = True,
) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = "support@desk.test"
    msg["Subject"] = subject
    if message_id:
        msg["Message-ID"] = make_msgid(domain="customer.test")
    msg.set_content(f"Body of {subject}\nFrom the start of a line in the body.\n")
    if attachment:
        msg.add_attachment(
            attachment[1], maintype="application", subtype="pdf", filename=attachment[0]
        )
    return msg.as_bytes()


def environment(app: Flask, database_url: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VAULTDESK_")}
    env.update(
        VAULTDESK_INSTANCE_PATH=app.config["INSTANCE_PATH"],
        VAULTDESK_DATABASE_URL=database_url or app.config["SQLALCHEMY_DATABASE_URI"],
        VAULTDESK_REDIS_URL=app.config["REDIS_URL"],
        VAULTDESK_SECRET_KEY=app.config["SECRET_KEY"],
    )
    return env


def vaultdesk(
    app: Flask, *args: str, stdin: bytes = b"", database_url: str | None = None
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [VAULTDESK, *args],
        input=stdin,
        capture_output=True,
        env=environment(app, database_url),
        cwd=CHECKOUT,
        timeout=120,
    )


def lines(result: subprocess.CompletedProcess[bytes]) -> list[dict[str, Any]]:
    assert result.returncode == 0, result.stderr.decode()
    return [json.loads(line) for line in result.stdout.decode().splitlines() if line.strip()]


def count(app: Flask, model: Any) -> int:
    with app.app_context():
        return db.session.execute(select(func.count(model.id))).scalar_one()


@pytest.fixture
def desk(app: Flask) -> Flask:
    with app.app_context():
        db.session.add(
            Mailbox(name="Support", address="support@desk.test", host="imap.test", username="s")
        )
        db.session.commit()
    return app


def test_pipe_files_a_message_and_prints_the_json_line(desk: Flask) -> None:
    raw = message(attachment=("invoice.pdf", b"%PDF-1.4 invoice"))
    result = vaultdesk(desk, "mail", "pipe", "--mailbox", "Support@Desk.test", "--json", stdin=raw)
    (line,) = lines(result)
    assert set(line) == KEYS
    assert line["file"] == "-" and line["outcome"] == "created"
    assert line["ticket"].startswith("T-") and line["subject"] == "Printer on fire"
    assert line["from"] == "ann@customer.test" and line["attachments"] == ["invoice.pdf"]
    assert line["reason"] is None
    with desk.app_context():
        inbound = db.session.execute(select(InboundMail)).scalar_one()
        assert inbound.source == "pipe" and inbound.mailbox.address == "support@desk.test"
        assert inbound.ticket.number == line["ticket"]
    # The MTA delivering it again (a retry after a timeout) files nothing twice.
    (again,) = lines(vaultdesk(desk, "mail", "pipe", "--json", stdin=raw))
    assert again["outcome"] == "duplicate" and again["ticket"] == line["ticket"]
    assert count(desk, Ticket) == 1


def test_pipe_quarantines_garbage_and_still_exits_zero(desk: Flask) -> None:
    (line,) = lines(vaultdesk(desk, "mail", "pipe", "--json", stdin=b"\x00\x01\x02 not mail"))
    assert line["outcome"] == "quarantined" and "unreadable" in line["reason"]
    assert line["ticket"] is None
    human = vaultdesk(desk, "mail", "pipe", stdin=message("Plain output"))
    assert human.returncode == 0
    assert "created T-" in human.stdout.decode() and "Plain output" in human.stdout.decode()


def test_pipe_files_the_mail_when_redis_is_down(desk: Flask) -> None:
    """Only the follow-up jobs need Redis: the mail is filed and the MTA told so.

    Answering "try again" would make the MTA deliver it again only to hear "duplicate".
    """
    env = environment(desk)
    env["VAULTDESK_REDIS_URL"] = f"redis://127.0.0.1:{free_port()}/0"  # nobody listens
    result = subprocess.run(
        [VAULTDESK, "mail", "pipe", "--json"],
        input=message("Filed without Redis"),
        capture_output=True,
        env=env,
        cwd=CHECKOUT,
        timeout=120,
    )
    (line,) = lines(result)
    assert line["outcome"] == "created"
    assert "follow-up jobs could not be queued" in result.stderr.decode()
    assert count(desk, Ticket) == 1


def test_pipe_says_try_again_when_the_sqlite_file_cannot_be_opened(
    desk: Flask, tmp_path: Path
) -> None:
    missing = f"sqlite:///{tmp_path / 'no' / 'such' / 'folder' / 'vaultdesk.db'}"
    result = vaultdesk(desk, "mail", "pipe", stdin=message(), database_url=missing)
    assert result.returncode == 75, result.stderr.decode()
    assert b"try again" in result.stderr


def test_pipe_says_try_again_when_postgres_is_not_listening(desk: Flask) -> None:
    nobody = f"postgresql+psycopg://test@127.0.0.1:{free_port()}/vaultdesk?connect_timeout=3"
    result = vaultdesk(desk, "mail", "pipe", "--json", stdin=message(), database_url=nobody)
    assert result.returncode == 75, result.stderr.decode()
    assert result.stdout == b""


def test_pipe_with_an_unknown_mailbox_defers_the_message(desk: Flask) -> None:
    result = vaultdesk(desk, "mail", "pipe", "--mailbox", "nobody@desk.test", stdin=message())
    assert result.returncode == 75 and b"no mailbox" in result.stderr
    assert count(desk, InboundMail) == 0


def test_a_pipe_killed_before_its_commit_loses_and_duplicates_nothing(
    desk: Flask, tmp_path: Path
) -> None:
    """SIGKILL while the pipe waits on a real write lock held by another connection."""
    raw = message("Killed half-way")
    spool = tmp_path / "queued.eml"  # the MTA's queue file
    spool.write_bytes(raw)
    database = desk.config["SQLALCHEMY_DATABASE_URI"].removeprefix("sqlite:///")
    blocker = sqlite3.connect(database, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # the desk's write lock, as a long transaction holds it
    try:
        with (
            spool.open("rb") as queued,
            subprocess.Popen(
                [VAULTDESK, "mail", "pipe", "--json"],
                stdin=queued,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=environment(desk),
                cwd=CHECKOUT,
            ) as proc,
        ):
            time.sleep(4)  # parsing takes milliseconds; it is now waiting to write its row
            still_running = proc.poll() is None
            proc.send_signal(signal.SIGKILL)
            out, err = proc.communicate(timeout=10)
        assert still_running, err.decode()
        assert out == b"" and proc.returncode == -signal.SIGKILL
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert count(desk, InboundMail) == 0 and count(desk, Ticket) == 0
    # The MTA delivers it again: filed once; and once more: a duplicate.
    (first,) = lines(vaultdesk(desk, "mail", "pipe", "--json", stdin=raw))
    (second,) = lines(vaultdesk(desk, "mail", "pipe", "--json", stdin=raw))
    assert (first["outcome"], second["outcome"]) == ("created", "duplicate")
    assert count(desk, Ticket) == 1 and count(desk, InboundMail) == 1


def test_import_reads_files_mboxes_maildirs_and_folders(desk: Flask, tmp_path: Path) -> None:
    single = tmp_path / "single.txt"
    single.write_bytes(b"From ann@customer.test Tue Mar  3 10:00:00 2026\n" + message("Single"))
    mbox = tmp_path / "archive.mbox"
    quoted = message("Quoted").replace(b"\nFrom the start", b"\n>From the start")
    mbox.write_bytes(
        b"From a@b Mon Jan  1 00:00:00 2026\n"
        + message("Mbox one")
        + b"\nFrom a@b Mon Jan  1 00:00:01 2026\n"
        + quoted
        + b"\nFrom a@b Mon Jan  1 00:00:02 2026\n"
        + message("Mbox three", message_id=False)
    )
    maildir = tmp_path / "Maildir"
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True)
    (maildir / "new" / "1.host").write_bytes(message("Maildir new"))
    (maildir / "cur" / "2.host:2,S").write_bytes(message("Maildir cur"))
    (maildir / "tmp" / "3.host").write_bytes(message("Still being delivered"))
    folder = tmp_path / "drop"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.eml").write_bytes(message("Folder a"))
    (folder / "sub" / "b").write_bytes(message("Folder b"))
    (folder / ".hidden").write_bytes(message("Hidden"))
    result = vaultdesk(
        desk, "mail", "import", "--mailbox", "support@desk.test", "--json",
        str(single), str(mbox), str(maildir), str(folder),
    )  # fmt: skip
    found = lines(result)
    assert [(f["file"], f["subject"]) for f in found] == [
        (str(single), "Single"),
        (str(mbox), "Mbox one"),
        (str(mbox), "Quoted"),
        (str(mbox), "Mbox three"),
        (str(maildir / "new" / "1.host"), "Maildir new"),
        (str(maildir / "cur" / "2.host:2,S"), "Maildir cur"),
        (str(folder / "a.eml"), "Folder a"),
        (str(folder / "sub" / "b"), "Folder b"),
    ]
    assert {f["outcome"] for f in found} == {"created"}
    with desk.app_context():
        refs = set(db.session.execute(select(InboundMail.source_ref)).scalars())
        assert f"{mbox}#2" in refs
        assert {m.address for m in db.session.execute(select(Mailbox)).scalars()} == {
            "support@desk.test"
        }
        assert set(db.session.execute(select(InboundMail.mailbox_id)).scalars()) != {None}
    # Run again (an import that was interrupted): everything is already there.
    again = lines(vaultdesk(desk, "mail", "import", "--json", str(mbox), str(folder)))
    assert {f["outcome"] for f in again} == {"duplicate"} and len(again) == 5
    assert count(desk, Ticket) == 8


def test_import_mbox_undoes_from_quoting(tmp_path: Path) -> None:
    mbox = tmp_path / "x.mbox"
    mbox.write_bytes(
        b"From a@b Mon Jan  1 00:00:00 2026\r\nSubject: one\r\n\r\n>From here\r\n\r\n"
        b"From a@b Mon Jan  1 00:00:01 2026\r\nSubject: two\r\n\r\nbody\r\n"
    )
    (one, two) = iter_messages([str(mbox)])
    assert one.raw == b"Subject: one\r\n\r\nFrom here\r\n\r\n" and one.ref == f"{mbox}#1"
    assert two.raw == b"Subject: two\r\n\r\nbody\r\n" and two.ref == f"{mbox}#2"


def test_batches_are_bounded_by_count_and_bytes() -> None:
    small = [SourceMessage("f", b"x" * 10, "f") for _ in range(7)]
    assert [len(b) for b in batches(small, max_messages=3, max_bytes=1000)] == [3, 3, 1]
    assert [len(b) for b in batches(small, max_messages=100, max_bytes=25)] == [2, 2, 2, 1]
    big = [SourceMessage("f", b"x" * 100, "f"), SourceMessage("g", b"y", "g")]
    assert [len(b) for b in batches(big, max_messages=100, max_bytes=50)] == [1, 1]


def test_import_of_a_missing_path_is_a_usage_error(desk: Flask, tmp_path: Path) -> None:
    result = vaultdesk(desk, "mail", "import", str(tmp_path / "nothing-here"))
    assert result.returncode == 2 and b"does not exist" in result.stderr


@pytest.mark.postgres
def test_a_pipe_killed_half_way_through_filing_loses_and_duplicates_nothing_on_postgres(
    tmp_path: Path, redis_server: Any, postgres_database: str
) -> None:
    """Killed after it claimed its row and stored the original, while opening the ticket.

    The test locks the ticket number table; the pipe gets as far as drawing a ticket
    number, which PostgreSQL shows as a lock wait, and is killed there. Had any earlier
    step committed on its own (the claimed row, say), the MTA's retry would be taken for a
    duplicate and the message would be lost: this is what the test would then catch.
    """
    from flask_migrate import upgrade
    from sqlalchemy import create_engine, text

    from app import create_app
    from tests.conftest import base_config

    instance = tmp_path / "instance"
    instance.mkdir()
    app = create_app(base_config(instance, redis_server.url, postgres_database))
    with app.app_context():
        upgrade()
        db.engine.dispose()
    raw = message("Killed while numbering")
    spool = tmp_path / "queued.eml"
    spool.write_bytes(raw)
    engine = create_engine(postgres_database)
    try:
        with engine.connect() as blocker:
            blocker.execute(text("LOCK TABLE ticket_number IN EXCLUSIVE MODE"))
            with (
                spool.open("rb") as queued,
                subprocess.Popen(
                    [VAULTDESK, "mail", "pipe", "--json"],
                    stdin=queued,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    env=environment(app),
                    cwd=CHECKOUT,
                ) as proc,
            ):
                waiting = False
                for _ in range(200):
                    with engine.connect() as probe:
                        waiting = bool(
                            probe.execute(
                                text(
                                    "SELECT count(*) FROM pg_stat_activity WHERE "
                                    "wait_event_type = 'Lock' AND query ILIKE "
                                    "'INSERT INTO ticket_number%'"
                                )
                            ).scalar_one()
                        )
                    if waiting or proc.poll() is not None:
                        break
                    time.sleep(0.1)
                proc.send_signal(signal.SIGKILL)
                out, err = proc.communicate(timeout=10)
            assert waiting, err.decode()
            blocker.rollback()
        assert count(app, InboundMail) == 0 and count(app, Ticket) == 0
        (first,) = lines(vaultdesk(app, "mail", "pipe", "--json", stdin=raw))
        (second,) = lines(vaultdesk(app, "mail", "pipe", "--json", stdin=raw))
        assert (first["outcome"], second["outcome"]) == ("created", "duplicate")
        assert count(app, Ticket) == 1 and count(app, InboundMail) == 1
    finally:
        engine.dispose()
        with app.app_context():
            db.engine.dispose()
