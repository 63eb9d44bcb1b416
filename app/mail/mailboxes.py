"""The IMAP mailboxes the desk polls, as admins configure them.

Passwords are sealed with the vault's key ring (AES-256-GCM under the ring's current
key-encryption key, the same keys that wrap every file's data key), stored as
``v1:<key id>:<base64 nonce+ciphertext>`` and never shown again: the edit form has an
empty password field, and leaving it empty keeps the sealed value.

The seal is bound (as associated data) to the server it was given for: host, port,
security and user name. A password cannot be moved to another mailbox row, and changing
where a mailbox connects to without typing the password again is refused, so nobody who
can change a row (or an admin's session) can send the stored password to a server of
their own, or downgrade a TLS mailbox to plain text and read it off the wire.

Key rotation: a seal names its key id, so passwords sealed before a rotation open as
long as the old key is in the ring; ``reseal_passwords`` moves them to the current key
(``vaultdesk vault rotate-key`` and ``rewrap`` call it) and ``key_ids_in_use`` keeps
``retire-key`` from deleting a key a mailbox still needs.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask_babel import gettext as _
from sqlalchemy import func, select

from app import audit
from app.actor import Actor
from app.errors import Conflict, InvalidInput
from app.extensions import db
from app.files.store import get_vault
from app.mail.addresses import normalise_address
from app.models.inbound import AfterImport, Mailbox, MailSecurity
from app.models.mail import SenderIdentity
from app.models.types import utcnow
from vault import VaultError

SEAL_VERSION = "v1"
_SEAL_DOMAIN = b"vaultdesk/mailbox-password/v1\x00"
MIN_INTERVAL_S = 30
MAX_INTERVAL_S = 24 * 3600
DEFAULT_PORTS = {MailSecurity.TLS: 993, MailSecurity.STARTTLS: 143, MailSecurity.NONE: 143}


class PasswordUnavailable(Exception):
    """The sealed password cannot be opened (no password yet, key retired, tampered)."""


@dataclass(frozen=True)
class Endpoint:
    """Where a mailbox connects to and as whom: what a sealed password is bound to."""

    host: str
    port: int
    security: str
    username: str

    def aad(self) -> bytes:
        parts = (self.host.lower(), str(self.port), self.security, self.username)
        return _SEAL_DOMAIN + b"\x00".join(p.encode() for p in parts)


def endpoint_of(mailbox: Mailbox) -> Endpoint:
    return Endpoint(mailbox.host, mailbox.port, mailbox.security, mailbox.username)


def seal_password(password: str, endpoint: Endpoint) -> str:
    """Seal ``password`` under the ring's current key, bound to ``endpoint``."""
    key_id, wrapped = get_vault().keyring.wrap(password.encode("utf-8"), endpoint.aad())
    return f"{SEAL_VERSION}:{key_id}:{base64.b64encode(wrapped).decode('ascii')}"


def _split_seal(sealed: str) -> tuple[str, bytes]:
    version, _sep, rest = (sealed or "").partition(":")
    key_id, _sep, encoded = rest.partition(":")
    if version != SEAL_VERSION or not key_id or not encoded:
        raise PasswordUnavailable(_("No password is stored for this mailbox."))
    try:
        return key_id, base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise PasswordUnavailable(_("The stored password is damaged; enter it again.")) from None


def sealed_key_id(sealed: str) -> str | None:
    """The key id a sealed password names, or None for no (or a damaged) seal."""
    try:
        return _split_seal(sealed)[0]
    except PasswordUnavailable:
        return None


def unseal_password(mailbox: Mailbox) -> str:
    """The mailbox's password in clear, for logging in; only the IMAP client calls this."""
    key_id, wrapped = _split_seal(mailbox.password_sealed)
    try:
        plain = get_vault().keyring.unwrap(key_id, wrapped, endpoint_of(mailbox).aad())
    except VaultError:
        raise PasswordUnavailable(
            _(
                "The stored password cannot be opened (its key is gone or the server "
                "settings changed); enter the password again."
            )
        ) from None
    return plain.decode("utf-8")


@dataclass
class MailboxForm:
    """What an admin types; ``password`` empty means "keep the stored one"."""

    name: str = ""
    address: str = ""
    host: str = ""
    port: int | None = None
    security: str = MailSecurity.TLS.value
    username: str = ""
    password: str = ""
    folder: str = "INBOX"
    after_import: str = AfterImport.FLAG.value
    move_to: str = ""
    identity_id: int | None = None
    poll_interval_s: int = 120
    active: bool = True

    @classmethod
    def of(cls, mailbox: Mailbox) -> MailboxForm:
        """The form for editing ``mailbox``: everything but the password."""
        return cls(
            name=mailbox.name,
            address=mailbox.address,
            host=mailbox.host,
            port=mailbox.port,
            security=mailbox.security,
            username=mailbox.username,
            folder=mailbox.folder,
            after_import=mailbox.after_import,
            move_to=mailbox.move_to or "",
            identity_id=mailbox.identity_id,
            poll_interval_s=mailbox.poll_interval_s,
            active=mailbox.active,
        )


def _choice(value: str, kind: type[MailSecurity] | type[AfterImport], what: str) -> str:
    try:
        return kind(value).value
    except ValueError:
        raise InvalidInput(_("Choose a valid %(what)s.", what=what)) from None


def _clean_folder(value: str, what: str) -> str:
    folder = value.strip()
    if not folder or len(folder) > 255 or any(c in folder for c in "\r\n\x00"):
        raise InvalidInput(_("Enter a folder name for %(what)s.", what=what))
    return folder


def _clean_host(value: str) -> str:
    host = value.strip()
    if not host or len(host) > 255 or any(c.isspace() or c in "/@:" for c in host):
        raise InvalidInput(_("Enter the IMAP server's host name, e.g. imap.example.com."))
    return host


def validate(form: MailboxForm, mailbox: Mailbox | None) -> MailboxForm:
    """The form with every value checked and normalised, or ``InvalidInput`` saying why."""
    name = form.name.strip()
    if not name or len(name) > 120:
        raise InvalidInput(_("Give the mailbox a name of up to 120 characters."))
    security = _choice(form.security, MailSecurity, _("connection security"))
    port = form.port or DEFAULT_PORTS[MailSecurity(security)]
    if not 1 <= port <= 65535:
        raise InvalidInput(_("The port must be between 1 and 65535."))
    username = form.username.strip()
    if not username or len(username) > 254 or any(c in username for c in "\r\n\x00"):
        raise InvalidInput(_("Enter the user name to sign in to the mailbox."))
    if any(c in form.password for c in "\r\n\x00"):
        raise InvalidInput(_("A password cannot contain line breaks."))
    after_import = _choice(form.after_import, AfterImport, _("action after import"))
    folder = _clean_folder(form.folder or "INBOX", _("the folder to read"))
    move_to = ""
    if after_import == AfterImport.MOVE.value:
        move_to = _clean_folder(form.move_to, _("the folder to move imported mail to"))
        if move_to == folder:
            raise InvalidInput(_("Imported mail must be moved to another folder."))
    interval = int(form.poll_interval_s or 0)
    if not MIN_INTERVAL_S <= interval <= MAX_INTERVAL_S:
        raise InvalidInput(
            _(
                "Poll every %(low)d seconds to %(high)d seconds.",
                low=MIN_INTERVAL_S,
                high=MAX_INTERVAL_S,
            )
        )
    if form.identity_id is not None and db.session.get(SenderIdentity, form.identity_id) is None:
        raise InvalidInput(_("Choose an existing sender identity."))
    return MailboxForm(
        name=name,
        address=normalise_address(form.address),
        host=_clean_host(form.host),
        port=port,
        security=security,
        username=username,
        password=form.password,
        folder=folder,
        after_import=after_import,
        move_to=move_to,
        identity_id=form.identity_id,
        poll_interval_s=interval,
        active=form.active,
    )


def password_for(form: MailboxForm, mailbox: Mailbox | None) -> str:
    """The password to use for ``form``: the one typed, else the stored one if still valid.

    The stored one is offered only for the server it was sealed for (see the module
    docstring); ``InvalidInput`` asks for it otherwise.
    """
    if form.password:
        return form.password
    if mailbox is None or not mailbox.password_sealed:
        raise InvalidInput(_("Enter the mailbox password."))
    endpoint = Endpoint(form.host, form.port or 0, form.security, form.username)
    if endpoint != endpoint_of(mailbox):
        raise InvalidInput(
            _("The server or user name changed: enter the password again to use it there.")
        )
    try:
        return unseal_password(mailbox)
    except PasswordUnavailable as error:
        raise InvalidInput(str(error)) from None


def save_mailbox(actor: Actor, form: MailboxForm, mailbox: Mailbox | None = None) -> Mailbox:
    """Create (``mailbox`` None) or change a mailbox; audit without the password."""
    clean = validate(form, mailbox)
    clash = db.session.scalar(select(Mailbox).where(func.lower(Mailbox.address) == clean.address))
    if clash is not None and clash is not mailbox:
        raise Conflict(_("%(address)s is already a mailbox.", address=clean.address))
    endpoint = Endpoint(clean.host, clean.port or 0, clean.security, clean.username)
    sealed = seal_password(password_for(clean, mailbox), endpoint)
    changed_password = bool(clean.password)
    if mailbox is None:
        mailbox = Mailbox()
        db.session.add(mailbox)
    mailbox.name, mailbox.address = clean.name, clean.address
    mailbox.host, mailbox.port = clean.host, clean.port or 0
    mailbox.security, mailbox.username = clean.security, clean.username
    mailbox.password_sealed = sealed
    mailbox.folder, mailbox.after_import = clean.folder, clean.after_import
    mailbox.move_to = clean.move_to or None
    mailbox.identity_id = clean.identity_id
    mailbox.poll_interval_s = clean.poll_interval_s
    if clean.active and not mailbox.active:
        mailbox.last_error = None  # a fresh start: the next poll says how it goes
    mailbox.active = clean.active
    db.session.flush()
    audit.record(
        actor,
        "mailbox.save",
        "mailbox",
        mailbox.id,
        address=mailbox.address,
        host=mailbox.host,
        port=mailbox.port,
        security=mailbox.security,
        username=mailbox.username,
        folder=mailbox.folder,
        after_import=mailbox.after_import,
        active=mailbox.active,
        password_changed=changed_password,
    )
    return mailbox


def deactivate(actor: Actor, mailbox: Mailbox) -> None:
    """Stop polling ``mailbox``; its settings, password and received mail stay."""
    if not mailbox.active:
        return
    mailbox.active = False
    audit.record(actor, "mailbox.deactivate", "mailbox", mailbox.id, address=mailbox.address)


def list_mailboxes() -> list[Mailbox]:
    return list(
        db.session.scalars(select(Mailbox).order_by(Mailbox.active.desc(), Mailbox.name)).all()
    )


def is_due(mailbox: Mailbox, now: datetime) -> bool:
    """Whether ``mailbox`` should be polled at ``now`` (active, its interval passed)."""
    if not mailbox.active:
        return False
    last = mailbox.last_polled_at
    # A few seconds of slack so a minute-interval poll is not skipped by a late cron tick.
    return last is None or now - last >= timedelta(seconds=max(mailbox.poll_interval_s - 5, 0))


def due_mailboxes(now: datetime | None = None) -> list[Mailbox]:
    now = now or utcnow()
    active = db.session.scalars(select(Mailbox).where(Mailbox.active.is_(True))).all()
    return [m for m in active if is_due(m, now)]


def key_ids_in_use() -> frozenset[str]:
    """Key ids that stored mailbox passwords need (``retire-key`` must keep them)."""
    sealed = db.session.scalars(select(Mailbox.password_sealed)).all()
    return frozenset(k for k in (sealed_key_id(s) for s in sealed) if k)


def reseal_passwords() -> int:
    """Re-seal every mailbox password under the ring's current key; how many changed.

    Run after a rotation (the CLI does). A password that cannot be opened is left as it
    is: its mailbox already reports the error and needs the password typed again.
    """
    current = get_vault().keyring.current_id
    changed = 0
    for mailbox in db.session.scalars(select(Mailbox)).all():
        if sealed_key_id(mailbox.password_sealed) in (None, current):
            continue
        try:
            plain = unseal_password(mailbox)
        except PasswordUnavailable:
            continue
        mailbox.password_sealed = seal_password(plain, endpoint_of(mailbox))
        changed += 1
    return changed
