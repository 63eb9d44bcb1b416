"""Sender identities and their reply templates, as admins configure them.

Decisions:

- Exactly one active identity is the default once any exists: it is what replies,
  system mail and notifications fall back to. So the default cannot be deactivated or
  deleted; the admin makes another identity the default first.
- A deactivated identity is no longer offered to agents and no mail goes out from it;
  everything it sent stays as it was. Reactivating offers it again.
- Deleting an identity keeps the history readable: an outbox row keeps the sender
  address, name and signature it was sent with (``OutboxMessage.from_address``,
  ``from_name``, ``signature``), a reply's stream entry names the address in its data,
  and the foreign keys of outbox rows and mailboxes are ``SET NULL`` (a mailbox then
  answers from the default identity). Its reply templates and system-mail versions go
  with it. The audit row keeps the address and name.
- Reply templates take placeholders (``app.mail.reply_templates``), checked on save.

Every function writes its audit row into the session; the view commits.
"""

from __future__ import annotations

from flask_babel import gettext as _
from sqlalchemy import func, select, update

from app import audit
from app.actor import Actor
from app.errors import Conflict, InvalidInput
from app.extensions import db
from app.i18n import LANGUAGES
from app.mail import reply_templates
from app.mail.addresses import normalise_address
from app.models.mail import ReplyTemplate, SenderIdentity

TEMPLATE_NAME_LIMIT = 120


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
    if not name.strip() or len(name.strip()) > 200:
        raise InvalidInput(
            _("An identity needs a name, shown as the sender (up to 200 characters).")
        )
    if language not in LANGUAGES:
        language = "en"
    clash = db.session.scalar(
        select(SenderIdentity).where(func.lower(SenderIdentity.address) == address)
    )
    if clash is not None and clash is not identity:
        raise Conflict(_("%(address)s is already an identity.", address=address))
    first = db.session.scalar(select(func.count()).select_from(SenderIdentity)) == 0
    created = identity is None
    if identity is None:
        identity = SenderIdentity(address=address, name=name.strip())
        db.session.add(identity)
    if is_default and identity.active is False:  # None: new, active once inserted
        raise Conflict(_("A deactivated identity cannot be the default. Reactivate it first."))
    identity.address, identity.name = address, name.strip()
    identity.language, identity.signature = language or "en", signature
    if is_default or first:
        db.session.execute(update(SenderIdentity).values(is_default=False))
        identity.is_default = True
    db.session.flush()
    audit.record(
        actor,
        "identity.save",
        "identity",
        identity.id,
        address=address,
        created=created,
        default=identity.is_default,
    )
    return identity


def _not_the_default(identity: SenderIdentity) -> None:
    if identity.is_default:
        raise Conflict(
            _(
                "%(address)s is the default identity. Make another identity the default first.",
                address=identity.address,
            )
        )


def set_active(actor: Actor, identity: SenderIdentity, active: bool) -> bool:
    """Deactivate (no longer offered, nothing sent from it) or reactivate an identity."""
    if identity.active == active:
        return False
    if not active:
        _not_the_default(identity)
    identity.active = active
    audit.record(
        actor,
        "identity.activate" if active else "identity.deactivate",
        "identity",
        identity.id,
        address=identity.address,
    )
    return True


def delete_identity(actor: Actor, identity: SenderIdentity) -> None:
    """Delete an identity; what it sent stays readable (see the module doc)."""
    _not_the_default(identity)
    audit.record(
        actor,
        "identity.delete",
        "identity",
        identity.id,
        address=identity.address,
        name=identity.name,
        templates=[t.name for t in identity.templates],
    )
    db.session.delete(identity)
    db.session.flush()


def _template_fields(
    identity: SenderIdentity, name: str, body: str, template: ReplyTemplate | None
) -> tuple[str, str]:
    name = " ".join(name.split())
    if not name or not body.strip():
        raise InvalidInput(_("A template needs a name and a text."))
    if len(name) > TEMPLATE_NAME_LIMIT:
        raise InvalidInput(_("A template name may have up to 120 characters."))
    if any(t.name == name and t is not template for t in identity.templates):
        raise Conflict(
            _(
                "%(address)s already has a template called %(name)s.",
                address=identity.address,
                name=name,
            )
        )
    reply_templates.check(body)
    return name, body.strip()


def add_template(actor: Actor, identity: SenderIdentity, name: str, body: str) -> ReplyTemplate:
    name, body = _template_fields(identity, name, body, None)
    template = ReplyTemplate(name=name, body=body)
    identity.templates.append(template)
    db.session.flush()
    audit.record(actor, "template.add", "template", template.id, identity=identity.address)
    return template


def update_template(
    actor: Actor, template: ReplyTemplate, name: str, body: str, *, active: bool = True
) -> None:
    name, body = _template_fields(template.identity, name, body, template)
    template.name, template.body, template.active = name, body, active
    audit.record(
        actor,
        "template.save",
        "template",
        template.id,
        identity=template.identity.address,
        name=name,
        active=active,
    )


def delete_template(actor: Actor, template: ReplyTemplate) -> None:
    audit.record(
        actor,
        "template.delete",
        "template",
        template.id,
        identity=template.identity.address,
        name=template.name,
    )
    db.session.delete(template)
    db.session.flush()
