"""Sender identities and their templates, as admins configure them."""

from __future__ import annotations

from sqlalchemy import func, select, update

from app import audit
from app.actor import Actor
from app.errors import Conflict, InvalidInput
from app.extensions import db
from app.mail.addresses import normalise_address
from app.models.mail import ReplyTemplate, SenderIdentity


def save_identity(
    actor: Actor,
    *,
    address: str,
    name: str,
    language: str = "en",
    signature: str = "",
    is_default: bool = False,
    identity: SenderIdentity | None = None,
) -> SenderIdentity:
    """Create or change an identity; exactly one identity is the default once any exists."""
    address = normalise_address(address)
    if not name.strip():
        raise InvalidInput("An identity needs a name, shown as the sender.")
    clash = db.session.scalar(
        select(SenderIdentity).where(func.lower(SenderIdentity.address) == address)
    )
    if clash is not None and clash is not identity:
        raise Conflict(f"{address} is already an identity.")
    first = db.session.scalar(select(func.count()).select_from(SenderIdentity)) == 0
    if identity is None:
        identity = SenderIdentity(address=address, name=name.strip())
        db.session.add(identity)
    identity.address, identity.name = address, name.strip()
    identity.language, identity.signature = language or "en", signature
    if is_default or first:
        db.session.execute(update(SenderIdentity).values(is_default=False))
        identity.is_default = True
    db.session.flush()
    audit.record(actor, "identity.save", "identity", identity.id, address=address)
    return identity


def add_template(actor: Actor, identity: SenderIdentity, name: str, body: str) -> ReplyTemplate:
    if not name.strip() or not body.strip():
        raise InvalidInput("A template needs a name and a text.")
    if any(t.name == name.strip() for t in identity.templates):
        raise Conflict(f"{identity.address} already has a template called {name.strip()!r}.")
    template = ReplyTemplate(name=name.strip(), body=body.strip())
    identity.templates.append(template)
    db.session.flush()
    audit.record(actor, "template.add", "template", template.id, identity=identity.address)
    return template
