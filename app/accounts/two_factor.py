"""Two-factor sign-in for staff: TOTP codes from an authenticator app, and recovery codes.

Who needs it: staff holding a role listed in ``TWO_FACTOR_REQUIRED_ROLES`` (default
``admin,compliance``) must have a second factor; everyone else on the staff side may enrol
from their security page. Customers (portal) never need it. A user who has a second factor
is always asked for it, required or not.

What is stored (columns on ``User``):

- ``totp_secret_sealed``: the base32 TOTP secret sealed with the vault's key ring
  (AES-256-GCM under the ring's current key-encryption key, like mailbox passwords in
  ``app.mail.mailboxes``), bound as associated data to the user's id so a sealed secret
  cannot be copied onto another account. ``reseal_secrets`` / ``key_ids_in_use`` take part
  in key rotation (``vaultdesk vault rotate-key``, ``rewrap``, ``retire-key``).
- ``totp_last_step``: the time step of the last accepted code. A code is accepted for the
  current 30-second step and one step either side (clock drift), and only for a step
  *later* than the last accepted one: the same code never works twice, nor an older one.
  The check is a single conditional UPDATE, so two requests racing with one code cannot
  both win, on any number of web processes.
- ``recovery_code_hashes``: SHA-256 (salted with the user id) of each unused recovery code,
  space-separated. Ten codes of 60 random bits each are shown once, at enrolment or when
  regenerated; a used code is removed by a compare-and-swap UPDATE, so it works once. A
  fast hash is enough for 60 random bits (unlike passwords, nothing to guess from), and it
  lets a code be found without trying ten slow hashes per attempt.

Sign-in events: ``auth.login`` (with ``second_factor``) after a passed second step,
``auth.second_factor_failed`` (wrong, replayed or used code), ``auth.two_factor_enrolled``,
``auth.two_factor_disabled``, ``auth.two_factor_reset`` (by an admin),
``auth.recovery_codes_regenerated``. Every function writes into the caller's transaction;
the caller commits.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import hmac
import io
import secrets
import time
from dataclasses import dataclass

import pyotp
import qrcode
import qrcode.image.svg
from flask import current_app
from flask_babel import gettext as _
from markupsafe import Markup, escape
from sqlalchemy import select, update

from app import audit
from app.actor import Actor
from app.errors import Conflict, Forbidden, InvalidInput
from app.extensions import db
from app.files.store import get_vault
from app.models.people import Role, User, new_session_token
from app.models.types import utcnow
from vault import VaultError

ISSUER = "Vaultdesk"
STEP_SECONDS = 30
DRIFT_STEPS = 1
RECOVERY_CODES = 10
_RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i
_RECOVERY_LENGTH = 12  # 12 symbols of 31: about 59 bits each
SEAL_VERSION = "v1"
_SEAL_DOMAIN = b"vaultdesk/totp-secret/v1\x00"


class SecondFactorUnavailable(Exception):
    """The sealed secret cannot be opened (its key was retired, or it was tampered with)."""


class WrongCode(InvalidInput):
    """A wrong, replayed or spent code. Its audit row is in the session already: the view
    commits it before answering (a plain DomainError would be rolled back)."""

    status = 401


class Method(enum.StrEnum):
    TOTP = "totp"
    RECOVERY_CODE = "recovery code"


# -- who needs it -------------------------------------------------------------------------


def required_roles() -> frozenset[Role]:
    """The roles configured to need a second factor (unknown names are ignored)."""
    raw = current_app.config.get("TWO_FACTOR_REQUIRED_ROLES") or ""
    names = {part.strip().lower() for part in str(raw).split(",") if part.strip()}
    return frozenset(role for role in Role if role.value in names and role is not Role.CUSTOMER)


def is_required(user: User) -> bool:
    """Staff with a required role must have a second factor; customers never need one."""
    return user.is_staff and bool(user.roles & required_roles())


def applies(user: User) -> bool:
    """Whether signing in as ``user`` takes a second step (a code, or enrolment first)."""
    return user.is_staff and (user.has_second_factor or is_required(user))


# -- the secret ---------------------------------------------------------------------------


def new_secret() -> str:
    """A fresh base32 TOTP secret (160 bits, as RFC 4226 recommends)."""
    return pyotp.random_base32(length=32)


def _aad(user_id: int) -> bytes:
    return _SEAL_DOMAIN + str(user_id).encode()


def seal(secret: str, user_id: int) -> str:
    """Seal a secret under the ring's current key, bound to ``user_id``.

    Also used for the candidate secret kept in the session between showing the QR code
    and confirming the first code: the session cookie is signed, not encrypted.
    """
    key_id, wrapped = get_vault().keyring.wrap(secret.encode("ascii"), _aad(user_id))
    return f"{SEAL_VERSION}:{key_id}:{base64.b64encode(wrapped).decode('ascii')}"


def _split_seal(sealed: str | None) -> tuple[str, bytes]:
    version, _sep, rest = (sealed or "").partition(":")
    key_id, _sep, encoded = rest.partition(":")
    if version != SEAL_VERSION or not key_id or not encoded:
        raise SecondFactorUnavailable("no sealed secret")
    try:
        return key_id, base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise SecondFactorUnavailable("damaged seal") from None


def unseal(sealed: str | None, user_id: int) -> str:
    key_id, wrapped = _split_seal(sealed)
    try:
        return get_vault().keyring.unwrap(key_id, wrapped, _aad(user_id)).decode("ascii")
    except (VaultError, UnicodeDecodeError):
        raise SecondFactorUnavailable("the seal cannot be opened") from None


def sealed_key_id(sealed: str | None) -> str | None:
    try:
        return _split_seal(sealed)[0]
    except SecondFactorUnavailable:
        return None


def key_ids_in_use() -> frozenset[str]:
    """Key ids that stored TOTP secrets need (``retire-key`` must keep them)."""
    sealed = db.session.scalars(
        select(User.totp_secret_sealed).where(User.totp_secret_sealed.is_not(None))
    ).all()
    return frozenset(k for k in (sealed_key_id(s) for s in sealed) if k)


def reseal_secrets() -> int:
    """Re-seal every TOTP secret under the ring's current key; how many changed."""
    current = get_vault().keyring.current_id
    changed = 0
    for user in db.session.scalars(select(User).where(User.totp_secret_sealed.is_not(None))):
        if sealed_key_id(user.totp_secret_sealed) in (None, current):
            continue
        try:
            plain = unseal(user.totp_secret_sealed, user.id)
        except SecondFactorUnavailable:
            continue
        user.totp_secret_sealed = seal(plain, user.id)
        changed += 1
    return changed


# -- enrolment ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Enrolment:
    """What the enrolment page shows: the secret as text and as a QR code."""

    secret: str
    uri: str

    @property
    def grouped_secret(self) -> str:
        """The secret in groups of four, easier to type into an app by hand."""
        return " ".join(self.secret[i : i + 4] for i in range(0, len(self.secret), 4))

    def qr_svg(self) -> Markup:
        """The otpauth URI as an inline SVG QR code (no Pillow, no image request)."""
        image = qrcode.make(self.uri, image_factory=qrcode.image.svg.SvgPathImage, box_size=8)
        buffer = io.BytesIO()
        image.save(buffer)
        svg = buffer.getvalue().decode("utf-8")
        svg = svg[svg.index("<svg") :]
        label = escape(_("QR code for your authenticator app"))
        # qrcode's own SVG (paths from the URI's bits, no text of ours) plus an escaped label.
        return Markup(svg.replace("<svg ", f'<svg role="img" aria-label="{label}" ', 1))  # noqa: S704


def enrolment_for(user: User, secret: str) -> Enrolment:
    uri = pyotp.TOTP(secret).provisioning_uri(name=user.email, issuer_name=ISSUER)
    return Enrolment(secret, uri)


def _step_now() -> int:
    return int(time.time()) // STEP_SECONDS


def _matching_step(secret: str, code: str) -> int | None:
    """The time step (now, or one either side) whose code is ``code``, else None."""
    totp = pyotp.TOTP(secret)
    now = _step_now()
    found = None
    for step in range(now - DRIFT_STEPS, now + DRIFT_STEPS + 1):
        if hmac.compare_digest(totp.at(step * STEP_SECONDS), code):
            found = step  # keep looping: the time taken does not depend on which matched
    return found


_CODE_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789")


def _normalise_code(code: str) -> str:
    """Lower case ASCII letters and digits only: people type spaces, dashes, capitals."""
    return "".join(ch for ch in (code or "").lower() if ch in _CODE_CHARACTERS)[:64]


def confirm_enrolment(
    user: User, secret: str, code: str, client_address: str | None, *, signing_in: bool = False
) -> list[str]:
    """Store ``secret`` once the user proved their app makes its codes; the recovery codes.

    The code that proved it counts as used (``totp_last_step``), so it cannot sign in again.
    ``signing_in``: enrolment was the second step of a sign-in, which it then records.
    """
    if user.has_second_factor:
        raise Conflict(_("Two-factor sign-in is set up already."))
    step = _matching_step(secret, _normalise_code(code))
    if step is None:
        _record_failure(user, client_address, "enrolment")
        raise WrongCode(
            _("That code is not right. Check the time on your phone and try the next code.")
        )
    user.totp_secret_sealed = seal(secret, user.id)
    user.totp_last_step = step
    user.two_factor_since = utcnow()
    codes = _new_recovery_codes(user)
    audit.record(Actor.staff(user, client_address), "auth.two_factor_enrolled", "user", user.id)
    if signing_in:
        from app.accounts.signin import record_login

        record_login(user, client_address, audience="staff", second_factor="enrolled now")
    return codes


# -- recovery codes -----------------------------------------------------------------------


def _hash_code(user_id: int, code: str) -> str:
    return hashlib.sha256(f"{user_id}:{_normalise_code(code)}".encode()).hexdigest()


def _new_recovery_codes(user: User) -> list[str]:
    codes = []
    for _i in range(RECOVERY_CODES):
        raw = "".join(secrets.choice(_RECOVERY_ALPHABET) for _j in range(_RECOVERY_LENGTH))
        codes.append(f"{raw[:4]}-{raw[4:8]}-{raw[8:]}")
    user.recovery_code_hashes = " ".join(_hash_code(user.id, c) for c in codes)
    return codes


def recovery_codes_left(user: User) -> int:
    return len((user.recovery_code_hashes or "").split())


def regenerate_recovery_codes(user: User, code: str, client_address: str | None) -> list[str]:
    """Ten new codes replace the old ones; needs a current authenticator code."""
    if not user.has_second_factor:
        raise Conflict(_("Two-factor sign-in is not set up."))
    if _accept_totp(user, code) is None:
        _record_failure(user, client_address, "regenerate recovery codes")
        raise WrongCode(_("That code is not right, or it was used already."))
    codes = _new_recovery_codes(user)
    audit.record(
        Actor.staff(user, client_address), "auth.recovery_codes_regenerated", "user", user.id
    )
    return codes


def _accept_recovery_code(user: User, code: str) -> bool:
    """Spend ``code`` if it is one of the user's unused ones (compare-and-swap)."""
    stored = user.recovery_code_hashes or ""
    hashes = stored.split()
    wanted = _hash_code(user.id, code)
    if not any(hmac.compare_digest(h, wanted) for h in hashes):
        return False
    remaining = " ".join(h for h in hashes if h != wanted)
    result = db.session.execute(
        update(User)
        .where(User.id == user.id, User.recovery_code_hashes == stored)
        .values(recovery_code_hashes=remaining)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # someone else spent a code meanwhile: this one may be it
        return False
    user.recovery_code_hashes = remaining
    return True


# -- the second step ----------------------------------------------------------------------


def _accept_totp(user: User, code: str) -> int | None:
    """The step of ``code`` if it is right and later than the last accepted one."""
    try:
        secret = unseal(user.totp_secret_sealed, user.id)
    except SecondFactorUnavailable:
        return None
    step = _matching_step(secret, _normalise_code(code))
    if step is None:
        return None
    result = db.session.execute(
        update(User)
        .where(User.id == user.id)
        .where((User.totp_last_step.is_(None)) | (User.totp_last_step < step))
        .values(totp_last_step=step)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        return None  # replayed: this step (or a later one) was accepted already
    user.totp_last_step = step
    return step


def _looks_like_totp(code: str) -> bool:
    normal = _normalise_code(code)
    return len(normal) == 6 and normal.isdigit()


def _record_failure(user: User, client_address: str | None, during: str) -> None:
    audit.record(
        Actor.staff(user, client_address),
        "auth.second_factor_failed",
        "user",
        user.id,
        during=during,
    )


def verify(user: User, code: str, client_address: str | None) -> Method | None:
    """Check the second step of a sign-in: an authenticator code or a recovery code.

    On success records the sign-in (``auth.login`` with the method); on failure an
    ``auth.second_factor_failed`` row. The reason (wrong, replayed, used) is not told apart
    to the person, as with passwords.
    """
    from app.accounts.signin import record_login

    method: Method | None = None
    if _looks_like_totp(code):
        if _accept_totp(user, code) is not None:
            method = Method.TOTP
    elif _accept_recovery_code(user, code):
        method = Method.RECOVERY_CODE
    if method is None:
        _record_failure(user, client_address, "sign-in")
        return None
    details = {"audience": "staff", "second_factor": method.value}
    if method is Method.RECOVERY_CODE:
        details["recovery_codes_left"] = str(recovery_codes_left(user))
    record_login(user, client_address, **details)
    return method


# -- turning it off -----------------------------------------------------------------------


def _clear(user: User) -> None:
    user.totp_secret_sealed = None
    user.totp_last_step = None
    user.two_factor_since = None
    user.recovery_code_hashes = None


def disable_own(user: User, code: str, client_address: str | None) -> None:
    """An agent turns their own second factor off; needs a current code, and no required role."""
    if not user.has_second_factor:
        raise Conflict(_("Two-factor sign-in is not set up."))
    if is_required(user):
        raise Forbidden(
            _("Your role requires two-factor sign-in; an administrator can reset it for you.")
        )
    if _accept_totp(user, code) is None and not _accept_recovery_code(user, code):
        _record_failure(user, client_address, "disable")
        raise WrongCode(_("That code is not right, or it was used already."))
    _clear(user)
    audit.record(Actor.staff(user, client_address), "auth.two_factor_disabled", "user", user.id)


def reset(user: User, actor: Actor) -> None:
    """An admin removes someone's second factor (lost phone); ends all their sessions.

    Their next sign-in asks them to enrol again when their role requires it. Admins cannot
    reset their own: another admin must, so a stolen admin session cannot remove the
    factor that protects it.
    """
    if actor.user_id == user.id:
        raise Forbidden(_("Another administrator must reset your own second factor."))
    if not user.has_second_factor:
        raise Conflict(_("%(name)s has no second factor to reset.", name=user.name))
    _clear(user)
    user.session_token = new_session_token()
    audit.record(actor, "auth.two_factor_reset", "user", user.id, email=user.email)
