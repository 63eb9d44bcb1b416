"""Putting files into the vault and taking them out again, for the rest of the app.

The vault library knows blobs and keys; this module adds what the help desk knows:
who uploaded, where the file is attached, names, the size limit, and erasure.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

from flask import current_app
from flask_babel import gettext as _

from app import audit
from app.actor import Actor
from app.errors import InvalidInput
from app.extensions import db
from app.files.names import display_name
from app.i18n import format_size
from app.models.files import FileKind, VaultFile
from app.models.tickets import StreamEntry, Ticket
from app.models.types import utcnow
from vault import FileTooLarge, KeyRing, StoredFile, Vault, storage_from_url
from vault.vault import DEFAULT_MIME_TYPE

TEXT_MIME = "text/plain; charset=utf-8"


class _Batch:
    """A ``deferred_durability`` block in progress; its vault is made on first use."""

    vault: Vault | None = None


#: The batch in progress in this thread (``deferred_durability``), if any.
_BATCH: ContextVar[_Batch | None] = ContextVar("vaultdesk_vault_batch", default=None)


def get_vault() -> Vault:
    """The configured vault, built once per process (it holds no state others need).

    Inside ``deferred_durability`` it is that batch's vault, so every blob the batch
    stores (through ``store_upload`` too) is flushed with the others before the commit.
    """
    batch = _BATCH.get()
    if batch is None:
        return _configured_vault()
    if batch.vault is None:
        batch.vault = _configured_vault().deferred()
    return batch.vault


def _configured_vault() -> Vault:
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    vault = app.extensions.get("vaultdesk_vault")
    if vault is None:
        config = app.config
        url = config.get("VAULT_STORAGE_URL") or Path(config["VAULT_DIR"]).as_uri()
        keys = config.get("VAULT_KEYS")
        ring = (
            KeyRing.from_string(keys) if keys else KeyRing.from_directory(config["VAULT_KEY_DIR"])
        )
        vault = Vault(storage_from_url(url), ring)
        app.extensions["vaultdesk_vault"] = vault
    return vault


@contextmanager
def deferred_durability() -> Iterator[None]:
    """Store a batch's blobs without a flush each; make them all durable on leaving.

    Mail ingestion files up to hundreds of messages per transaction, each with its
    original and perhaps attachments: flushing every file and its directory one by one
    was most of the vault's share of the time (``bench/mail_ingest.py``). Inside the
    block ``get_vault()`` (in this thread; hand what it returns to other threads)
    writes without flushing; leaving it normally flushes them all, so **commit after the
    block**: rows then only ever name durable blobs, and a crash before the commit leaves
    orphan blobs for the orphan sweep. On an exception nothing is flushed (the caller
    rolls back). Nested use joins the outer batch.
    """
    if _BATCH.get() is not None:
        yield
        return
    batch = _Batch()
    token = _BATCH.set(batch)
    try:
        yield
    finally:
        _BATCH.reset(token)
    # Only reached without an exception. The vault is made lazily, when the block first
    # stores something: building it can create the key ring, which must not happen
    # before the message is claimed (two workers on one message would both create it).
    if batch.vault is not None:
        batch.vault.sync()


def human_size(size: int) -> str:
    """The size in the reader's language ("1,5 MB" in German); see ``app.i18n.format_size``."""
    return format_size(size)


def _looks_like_text(head: bytes) -> bool:
    if not head or b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as error:
        # A multi-byte character cut at the end of the sample is still text.
        return error.start >= len(head) - 3
    return True


def store_upload(
    stream: object,
    filename: str,
    actor: Actor,
    *,
    ticket: Ticket | None = None,
    entry: StreamEntry | None = None,
    kind: FileKind = FileKind.ATTACHMENT,
    enforce_limit: bool = True,
) -> VaultFile:
    """Encrypt ``stream`` into the vault and record it; refuse files over the limit.

    The blob is written before the row; if the caller's transaction later rolls back,
    ``discard`` removes the blobs so nothing unreferenced stays behind.

    ``enforce_limit=False`` is for mail that has already arrived: a received message and
    its parts are kept whole whatever the upload limit says (the MTA limits message size),
    because refusing them would drop mail nobody can send again.
    """
    limit = int(current_app.config["VAULT_MAX_UPLOAD_BYTES"]) if enforce_limit else 2**62
    vault = get_vault()
    try:
        stored = vault.put(stream, max_size=limit)  # type: ignore[arg-type]
    except FileTooLarge:
        raise InvalidInput(
            _(
                "“%(name)s” is larger than the limit of %(limit)s.",
                name=display_name(filename),
                limit=human_size(limit),
            )
        ) from None
    return record_stored(stored, filename, actor, ticket=ticket, entry=entry, kind=kind)


def record_stored(
    stored: StoredFile,
    filename: str,
    actor: Actor,
    *,
    ticket: Ticket | None = None,
    entry: StreamEntry | None = None,
    kind: FileKind = FileKind.ATTACHMENT,
    mime_type: str | None = None,
) -> VaultFile:
    """The row (and audit row) of a blob already in the vault.

    ``store_upload`` does both steps; mail ingestion puts a batch's originals into the
    vault concurrently first (the fsyncs overlap) and records each here, with the type it
    knows (``mime_type``) so nothing is read back to sniff it.
    """
    mime = mime_type or stored.mime_type
    if mime_type is None and mime == DEFAULT_MIME_TYPE and stored.size:
        head = b"".join(get_vault().read_range(stored.blob_id, 0, min(stored.size, 4096) - 1))
        if _looks_like_text(head):
            mime = TEXT_MIME
    row = VaultFile(
        blob_id=stored.blob_id,
        original_name=filename[:1024],
        display_name=display_name(filename),
        size=stored.size,
        mime_type=mime,
        sha256=stored.sha256,
        uploaded_by_id=actor.user_id,
        uploaded_by_label=actor.label,
        ticket=ticket,
        entry=entry,
        kind=FileKind(kind).value,
    )
    db.session.add(row)
    db.session.flush()
    audit.record(
        actor,
        "file.upload",
        "file",
        row.public_id,
        ticket_id=ticket.id if ticket else None,
        size=row.size,
        sha256=row.sha256,
    )
    return row


def discard(blob_ids: list[str]) -> None:
    """Remove blobs whose rows were never committed (a failed multi-file upload)."""
    vault = get_vault()
    for blob_id in blob_ids:
        vault.shred(blob_id)


def erase_file(file: VaultFile, actor: Actor, reason: str) -> None:
    """Crypto-shred: the data key goes first, then the body; the row stays as a record."""
    if file.erased_at is not None:
        return
    get_vault().shred(file.blob_id)
    file.erased_at = utcnow()
    file.erased_by_id = actor.user_id
    audit.record(
        actor, "file.erase", "file", file.public_id, ticket_id=file.ticket_id, reason=reason
    )
