"""Writing audit rows; always in the caller's transaction, never committed here."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event, insert
from sqlalchemy.orm import Session

from app.actor import Actor
from app.extensions import db
from app.models.audit import AuditLog
from app.models.types import utcnow


def truncate_address(address: str | None) -> str | None:
    """Keep enough of a client address to spot abuse, not enough to identify a person.

    IPv4 keeps the /24, IPv6 the /48, as analytics tools do under GDPR guidance.
    """
    if not address:
        return None

    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return None
    prefix = 24 if ip.version == 4 else 48
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))


def values(
    actor: Actor,
    action: str,
    object_type: str,
    object_id: Any = None,
    *,
    ticket_id: int | None = None,
    **details: Any,
) -> dict[str, Any]:
    """Column values of an audit row: one place decides what a row keeps about the actor."""
    return {
        "actor_id": actor.user_id,
        "actor_label": actor.label,
        "action": action,
        "object_type": object_type,
        "object_id": None if object_id is None else str(object_id),
        "ticket_id": ticket_id,
        "client_address": truncate_address(actor.client_address),
        "details": details or None,
    }


def record(
    actor: Actor,
    action: str,
    object_type: str,
    object_id: Any = None,
    *,
    ticket_id: int | None = None,
    **details: Any,
) -> AuditLog:
    """Add an audit row to the session; it commits (or rolls back) with the change it records.

    Inside ``deferred`` the row is queued for the batch's one INSERT instead, and the
    object returned is not in the session (no caller needs its id).
    """
    row_values = values(actor, action, object_type, object_id, ticket_id=ticket_id, **details)
    pending = _pending()
    if pending is not None:
        row_values["at"] = utcnow()
        pending.append(row_values)
        return AuditLog(**row_values)
    row = AuditLog(**row_values)
    db.session.add(row)
    return row


_INSERT = insert(AuditLog)


def record_now(
    actor: Actor,
    action: str,
    object_type: str,
    object_id: Any = None,
    *,
    ticket_id: int | None = None,
    **details: Any,
) -> None:
    """Insert an audit row at once, in the caller's transaction like ``record``.

    For paths that write their rows with plain INSERTs (ticket creation): there an ORM
    object would cost a unit-of-work flush of its own at commit, more than the insert.
    Inside ``deferred`` the row joins the batch's one INSERT.
    """
    row_values = values(actor, action, object_type, object_id, ticket_id=ticket_id, **details)
    pending = _pending()
    if pending is not None:
        row_values["at"] = utcnow()
        pending.append(row_values)
        return
    db.session.connection().execute(_INSERT, row_values)


# --- Batches: one INSERT for many rows ----------------------------------------------------
#
# Mail ingestion files up to a few hundred messages per transaction, each writing two or
# three audit rows; one INSERT per row was a tenth of its statements
# (``bench/mail_ingest.py``). Inside ``deferred`` the rows are collected on the session and
# written with a single executemany -- still in the same transaction as the changes they
# record: when the block ends, and in any case before the session commits (a listener
# below), so no commit can ever carry a change without its audit row. A rollback of the
# transaction drops them with everything else; a rollback to a savepoint must drop the
# rows recorded since it began (``pending_mark``/``discard_pending``: ingestion's
# ``attempt`` does so). The rows' ``at`` is taken when they are recorded, as before.

_PENDING = "vaultdesk_audit_pending"


def _pending() -> list[dict[str, Any]] | None:
    return db.session().info.get(_PENDING)


@contextmanager
def deferred() -> Iterator[None]:
    """Collect the audit rows recorded in the block and insert them together at its end.

    Nested use joins the outer block. An exception leaves the rows unwritten (the caller
    rolls back).
    """
    session = db.session()
    if _PENDING in session.info:
        yield
        return
    session.info[_PENDING] = []
    try:
        yield
        write_pending(session)
    finally:
        session.info.pop(_PENDING, None)


def write_pending(session: Session) -> None:
    """Insert the collected rows now, in one statement (executemany)."""
    rows = session.info.get(_PENDING)
    if rows:
        session.connection().execute(_INSERT, list(rows))
        rows.clear()


def pending_mark() -> int:
    """Where the collected rows stand now: give it to ``discard_pending`` on a rollback."""
    pending = _pending()
    return len(pending) if pending is not None else 0


def discard_pending(mark: int) -> None:
    """Forget the rows collected since ``mark`` (their savepoint was rolled back)."""
    pending = _pending()
    if pending is not None:
        del pending[mark:]


@event.listens_for(Session, "before_commit")
def _write_before_commit(session: Session) -> None:
    if not session.in_nested_transaction():
        write_pending(session)


@event.listens_for(Session, "after_soft_rollback")
def _drop_on_rollback(session: Session, previous_transaction: Any) -> None:
    if not session.in_transaction() and session.info.get(_PENDING):
        session.info[_PENDING].clear()
