"""Emailed set-password links for staff: the invitation of a new colleague, an admin's reset.

Why not the portal's links (``emailed_links``): those are for customers only and end on
the portal's pages; a staff link must never sign anyone into the portal, nor a portal
link into /agent. So staff links have their own salt ("staff-set-password") and accept
only active staff users, but follow the same rules: the payload carries the user id and
the user's current ``link_token``; a link is refused when tampered with, older than its
purpose allows (invitation 7 days, reset 60 minutes) or spent; setting the password
rotates ``link_token`` (and ``session_token``), so each link works once and every older
link dies with it. A GET only shows the form (mail scanners fetch links); the POST sets
the password.

Staff have no self-service "forgot my password" on purpose: an admin sends the reset
from the user's page (``admin_users.send_password_reset``), so a stranger typing an
agent's address cannot make the desk mail that agent.

The mails are system mails (``Kind.STAFF_INVITE``, ``Kind.STAFF_PASSWORD_RESET``) that
admins may edit, sent by a job after the commit (``app.jobs.mail.send_staff_link``) and
never through the outbox: they carry a live link.
"""

from __future__ import annotations

import logging

from flask import current_app
from flask_babel import gettext as _
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from app import audit
from app.accounts.emailed_links import (
    INVITE_MAX_AGE,
    MAX_AGE,
    EmailedLinkRefused,
    EmailedLinkState,
    PasswordLink,
    SetPasswordKind,
)
from app.accounts.people import MIN_PASSWORD
from app.actor import Actor
from app.errors import InvalidInput
from app.extensions import db
from app.jobs import is_last_try
from app.mail import system_mail
from app.mail.sending import MailNotSent, send_mail
from app.models.people import User
from app.urls import public_url

log = logging.getLogger(__name__)

STAFF_SALT = "staff-set-password"  # noqa: S105 - a salt, not a secret
MAIL_KIND = {
    SetPasswordKind.INVITE: system_mail.Kind.STAFF_INVITE,
    SetPasswordKind.RESET: system_mail.Kind.STAFF_PASSWORD_RESET,
}


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=STAFF_SALT)


def token_for(user: User, kind: SetPasswordKind) -> str:
    return str(_serializer().dumps([user.id, user.link_token, kind.value]))


def _loads(token: str, max_age: int) -> list[object]:
    try:
        payload = _serializer().loads(token, max_age=max_age)
    except SignatureExpired:
        raise EmailedLinkRefused(EmailedLinkState.EXPIRED) from None
    except BadSignature:
        raise EmailedLinkRefused(EmailedLinkState.INVALID) from None
    if not isinstance(payload, list) or len(payload) != 3 or not isinstance(payload[0], int):
        raise EmailedLinkRefused(EmailedLinkState.INVALID)
    return payload


def check_link(token: str) -> PasswordLink:
    """Verify a staff link without spending it (the GET a mail scanner may fetch)."""
    payload = _loads(token, INVITE_MAX_AGE)
    try:
        kind = SetPasswordKind(payload[2])
    except ValueError:
        raise EmailedLinkRefused(EmailedLinkState.INVALID) from None
    if kind is not SetPasswordKind.INVITE:
        _loads(token, MAX_AGE[kind])  # held to its own, shorter age
    user = db.session.get(User, payload[0])
    if user is None or not user.is_staff:
        raise EmailedLinkRefused(EmailedLinkState.INVALID)
    if not user.active or user.link_token != payload[1]:
        raise EmailedLinkRefused(EmailedLinkState.USED)
    return PasswordLink(user, kind)


def set_password(token: str, password: str, repeat: str, client_address: str | None) -> User:
    """Choose the password a staff link was sent for; ends every session and older link.

    The caller starts the session: the link proved the address, the password is new.
    """
    link = check_link(token)
    if len(password) < MIN_PASSWORD:
        raise InvalidInput(_("Passwords need at least %(count)d characters.", count=MIN_PASSWORD))
    if password != repeat:
        raise InvalidInput(_("The two passwords are not the same."))
    link.user.set_password(password)  # rotates session_token and link_token
    audit.record(
        Actor.for_user(link.user, client_address),
        "auth.password_set",
        "user",
        link.user.id,
        via=f"staff {link.kind.value}",
    )
    return link.user


def deliver(user_id: int, kind_value: str, inviter: str | None) -> str:
    """The job's half: make the link at sending time and mail it in the user's language.

    An invitation overtaken by events (a password chosen meanwhile, the account
    deactivated or no longer staff) is not sent. A failed send is raised for RQ to retry;
    on the last try it is audited instead.
    """
    kind = SetPasswordKind(kind_value)
    user = db.session.get(User, user_id)
    if user is None or not user.active or not user.is_staff:
        return "not needed any more"
    if kind is SetPasswordKind.INVITE and user.password_hash:
        return "not needed any more"
    identity = system_mail.default_identity()
    values: dict[str, object] = {
        "name": user.name,
        "email": user.email,
        "url": public_url("admin.welcome", token=token_for(user, kind)),
        "identity_name": identity.name if identity is not None else "Vaultdesk",
        "inviter": inviter or "",
        "days": INVITE_MAX_AGE // 86400,
        "minutes": MAX_AGE[SetPasswordKind.RESET] // 60,
    }
    rendered = system_mail.render(MAIL_KIND[kind], identity, user.language, values)
    try:
        send_mail(user.email, rendered.subject, rendered.text, html=rendered.html)
    except MailNotSent as exc:
        if not is_last_try():
            raise
        log.warning("staff %s mail to user %s not sent: %s", kind.value, user.id, exc.message)
        audit.record(Actor.system(), "user.link_mail_failed", "user", user.id, kind=kind.value)
        return "mail failed"
    return "sent"
