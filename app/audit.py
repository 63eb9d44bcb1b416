"""Writing audit rows; always in the caller's transaction, never committed here."""

from __future__ import annotations

import ipaddress
from typing import Any

from sqlalchemy import insert

from app.actor import Actor
from app.extensions import db
from app.models.audit import AuditLog


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
    """Add an audit row to the session; it commits (or rolls back) with the change it records."""
    row = AuditLog(**values(actor, action, object_type, object_id, ticket_id=ticket_id, **details))
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
    """
    db.session.connection().execute(
        _INSERT, values(actor, action, object_type, object_id, ticket_id=ticket_id, **details)
    )
