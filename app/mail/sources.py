"""Messages from files and folders, read lazily and cut into bounded batches.

What ``vaultdesk mail import PATH...`` accepts (the issue's rules):

- a file holds one message, whatever its extension (a leading mbox ``From `` line is
  tolerated by the parser);
- a ``.mbox`` file holds many, split on ``From `` lines that start the file or follow an
  empty line (mboxrd ``>From `` quoting is undone), read line by line so a mailbox of
  any size never sits in memory whole;
- a Maildir (a folder with ``cur``/``new``) is read from both, oldest name first;
  its ``tmp`` (deliveries in progress) and ``.Sub.Folders`` are left alone;
- any other folder is read whole, recursively, skipping hidden files and folders.

``batches`` groups messages by count and bytes, so ``file_batch`` commits often enough
and memory stays flat in the number of messages.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

MAX_BATCH_MESSAGES = 200
MAX_BATCH_BYTES = 16 * 1024 * 1024
_MBOXRD_QUOTED = re.compile(rb"^>(>*From )")


@dataclass(frozen=True)
class SourceMessage:
    """One message and where it came from."""

    file: str  # the path as the user gave it (or the file found under a folder given)
    raw: bytes
    ref: str  # what InboundMail.source_ref keeps: the path, with "#n" inside an mbox


def is_maildir(folder: Path) -> bool:
    return (folder / "cur").is_dir() or (folder / "new").is_dir()


def read_mbox(path: Path, label: str) -> Iterator[SourceMessage]:
    """The messages of an mbox file, one at a time."""
    number = 0
    current: list[bytes] = []
    started = False
    previous_blank = True

    def emit() -> SourceMessage | None:
        data = b"".join(current)
        if not data.strip():
            return None
        return SourceMessage(label, data, f"{label}#{number}")

    with path.open("rb") as handle:
        for line in handle:
            if line.startswith(b"From ") and previous_blank:
                if started:
                    message = emit()
                    if message is not None:
                        yield message
                number += 1
                started = True
                current = []
                previous_blank = False
                continue
            if not started:
                if line.strip():  # text before the first From line: a message anyway
                    started, number = True, 1
                else:
                    continue
            current.append(_MBOXRD_QUOTED.sub(rb"\1", line))
            previous_blank = line in (b"\n", b"\r\n")
    if started:
        message = emit()
        if message is not None:
            yield message


def _files_under(folder: Path) -> Iterator[Path]:
    if is_maildir(folder):
        for sub in ("new", "cur"):
            part = folder / sub
            if part.is_dir():
                yield from sorted(
                    p for p in part.iterdir() if p.is_file() and not p.name.startswith(".")
                )
        return
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if not name.startswith("."):
                yield Path(root) / name


def _read_file(path: Path, label: str) -> Iterator[SourceMessage]:
    if path.suffix.lower() == ".mbox":
        yield from read_mbox(path, label)
    else:
        yield SourceMessage(label, path.read_bytes(), label)


def iter_messages(paths: Sequence[str]) -> Iterator[SourceMessage]:
    """Every message under ``paths``, in order, read as it is needed."""
    for given in paths:
        path = Path(given)
        if path.is_dir():
            for found in _files_under(path):
                yield from _read_file(found, str(found))
        else:
            yield from _read_file(path, given)


def batches(
    messages: Iterable[SourceMessage],
    *,
    max_messages: int = MAX_BATCH_MESSAGES,
    max_bytes: int = MAX_BATCH_BYTES,
) -> Iterator[list[SourceMessage]]:
    """Groups of at most ``max_messages`` and about ``max_bytes`` (one big message alone)."""
    batch: list[SourceMessage] = []
    size = 0
    for message in messages:
        if batch and (len(batch) >= max_messages or size + len(message.raw) > max_bytes):
            yield batch
            batch, size = [], 0
        batch.append(message)
        size += len(message.raw)
    if batch:
        yield batch
