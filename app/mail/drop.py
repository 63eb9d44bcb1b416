"""The drop folder: a directory an MTA, a script or a person puts message files into.

``MAIL_DROP_DIR`` (default ``instance/mail-drop``) is swept by a periodic job. Each file
holds one message; it is filed through the one ingest pipeline and, only after that
committed, moved to ``done/``. A message that cannot be parsed is quarantined by the
pipeline like any other, so it too goes to ``done/`` (its raw bytes are in the vault and
in the quarantine view). A file goes to ``failed/`` only when filing it raised something
other than an outage, i.e. when even quarantining it failed; a ``.error`` file beside it
says why. While the database or the vault storage is unreachable files stay where they
are and the next sweep tries again.

Writers should create files under a name starting with ``.`` (or ending in ``.tmp``)
and rename them when complete: such names are never read, so a half-written message is
never filed. Files that changed in the last ``SETTLE_SECONDS`` are left for the next
sweep for writers that do not.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from redis import Redis
from redis.exceptions import LockError

from app.extensions import db
from app.mail.imap import retry_later
from app.models.inbound import MailSource

log = logging.getLogger(__name__)

DONE = "done"
FAILED = "failed"
SETTLE_SECONDS = 2.0
LOCK_KEY = "vaultdesk:mail-drop"
LOCK_SECONDS = 30 * 60
MAX_FILES_PER_SWEEP = 5000


@dataclass
class DropReport:
    skipped: bool = False  # another worker is sweeping
    filed: int = 0
    failed: int = 0
    left: int = 0  # not filed now (database down, still being written)
    outcomes: dict[str, int] = field(default_factory=dict)


def _waiting(folder: Path, now: float, settle: float) -> list[Path]:
    files = []
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return []
    for entry in entries:
        name = entry.name
        if name.startswith(".") or name.endswith(".tmp"):
            continue
        if not entry.is_file(follow_symlinks=False):
            continue
        if now - entry.stat(follow_symlinks=False).st_mtime < settle:
            continue
        files.append(Path(entry.path))
    files.sort(key=lambda p: (p.stat().st_mtime, p.name))
    return files[:MAX_FILES_PER_SWEEP]


def _move(path: Path, folder: Path) -> Path:
    """Move ``path`` into ``folder``, never overwriting an earlier file of the same name."""
    folder.mkdir(mode=0o700, exist_ok=True)
    target = folder / path.name
    counter = 1
    while target.exists():
        target = folder / f"{path.stem}.{counter}{path.suffix}"
        counter += 1
    os.replace(path, target)
    return target


FileOne = Callable[[bytes, str], object]


def _file_message(raw: bytes, name: str) -> object:
    """The ingest pipeline (imported on first use: an empty folder needs none of it)."""
    from app.mail.ingest import file_message

    return file_message(raw, source=MailSource.DROP, source_ref=name)


def sweep_drop_folder(
    folder: Path, redis: Redis, *, settle: float = SETTLE_SECONDS, file_one: FileOne | None = None
) -> DropReport:
    """File every message waiting in ``folder`` (see the module docstring).

    ``file_one(raw, name)`` files one message and commits (the ingest pipeline's
    ``file_message`` by default).
    """
    report = DropReport()
    # Made on the first sweep (private: messages are personal data), so it is there to use.
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    lock = redis.lock(LOCK_KEY, timeout=LOCK_SECONDS)
    if not lock.acquire(blocking=False):
        report.skipped = True
        return report
    try:
        for path in _waiting(folder, time.time(), settle):
            try:
                raw = path.read_bytes()
            except FileNotFoundError:
                continue  # another process took it
            try:
                filed = (file_one or _file_message)(raw, path.name)
            except Exception as error:  # noqa: BLE001 - sorted below, never swallowed
                db.session.rollback()
                if retry_later(error):
                    log.warning("drop folder: database unavailable, %s waits: %s", path, error)
                    report.left += 1
                    break  # the rest would fail the same way
                log.exception("drop folder: %s could not be filed or quarantined", path.name)
                moved = _move(path, folder / FAILED)
                moved.with_name(moved.name + ".error").write_text(
                    f"{type(error).__name__}: {error}\n", encoding="utf-8"
                )
                report.failed += 1
                continue
            _move(path, folder / DONE)
            report.filed += 1
            outcome = str(getattr(getattr(filed, "outcome", None), "value", "unknown"))
            report.outcomes[outcome] = report.outcomes.get(outcome, 0) + 1
    finally:
        try:
            lock.release()
        except LockError:
            pass
    return report
