"""Emailed portal links: sign in without a password, reset it, accept an invitation.

A link is ``itsdangerous`` ``URLSafeTimedSerializer`` output, salted per purpose, carrying the
user id and the user's current ``link_token``. It is refused when the signature is wrong
(tampered), when it is older than its purpose allows, or when ``link_token`` has changed since
it was issued. Using a link rotates ``link_token``, so each link works once, and every other
link issued before it dies with it; ``User.set_password`` rotates it too, so changing the
password spends every outstanding link.

Reset and invitation share the salt "portal-set-password" (both end on the same page), but
the payload names which of the two it is, so a 60-minute reset link cannot pose as a 7-day
invitation.

A request for a link does no work in the request that depends on the address: it only
queues a job (``app.jobs.mail``) after the commit. The job looks the address up, writes the
audit row and sends the mail, or, for an address without a usable portal account, writes
only the audit row. So neither the answer nor its timing tells whether an account exists,
and a slow or failing mail server never slows the page; a failed send is retried by RQ,
and the last failure is audited.

Every function here writes audit rows into the session; the caller (view or job) commits.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass
from typing import Any

from flask import current_app
from flask_babel import gettext as _
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import select

from app import audit
from app.accounts.people import MIN_PASSWORD, create_user
from app.accounts.signin import find_user, record_login
from app.actor import Actor
from app.errors import Conflict, DomainError, InvalidInput
from app.extensions import db
from app.jobs import is_last_try
from app.mail import system_mail
from app.mail.sending import MailNotSent, send_mail
from app.mail.system_mail import Kind
from app.models.people import Contact, Role, User, new_session_token
from app.models.tickets import EntryKind, Ticket
from app.tickets.stream import add_entry
from app.urls import public_url

log = logging.getLogger(__name__)

SIGN_IN_SALT = "portal-sign-in"
SET_PASSWORD_SALT = "portal-set-password"  # noqa: S105 - a salt, not a secret
SIGN_IN_MAX_AGE = 15 * 60
RESET_MAX_AGE = 60 * 60
INVITE_MAX_AGE = 7 * 24 * 60 * 60


class SetPasswordKind(enum.StrEnum):
    RESET = "reset"
    INVITE = "invite"


MAX_AGE = {SetPasswordKind.RESET: RESET_MAX_AGE, SetPasswordKind.INVITE: INVITE_MAX_AGE}


class EmailedLinkState(enum.StrEnum):
    INVALID = "invalid"  # tampered, truncated, or signed for another purpose
    EXPIRED = "expired"
    USED = "used"  # used already, or spent by a newer link or a password change


class EmailedLinkRefused(DomainError):
    """An emailed link that cannot be used; ``state`` says why, ``status`` what to answer."""

    def __init__(self, state: EmailedLinkState) -> None:
        messages = {
            EmailedLinkState.INVALID: _("This link is not valid. Check that you copied all of it."),
            EmailedLinkState.EXPIRED: _("This link has expired."),
            EmailedLinkState.USED: _("This link was used already or replaced by a newer one."),
        }
        super().__init__(messages[state])
        self.state = state
        self.status = 404 if state is EmailedLinkState.INVALID else 410


class MailRequest(enum.StrEnum):
    """Links a visitor can ask for by address."""

    SIGN_IN = "sign-in"
    RESET = "reset"


def _queue_request(kind: MailRequest, email: str, client_address: str | None) -> None:
    from app.jobs import enqueue_after_commit
    from app.jobs.mail import send_requested_link

    enqueue_after_commit(
        send_requested_link, args=(kind.value, email.strip().lower()[:254], client_address)
    )


@dataclass(frozen=True)
class PasswordLink:
    """A verified set-password link: whose, and whether it came from a reset or an invite."""

    user: User
    kind: SetPasswordKind


def _serializer(salt: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=salt)


def _customer_for(email: str) -> tuple[User | None, str | None]:
    """The user a request may mail, or the reason (for the audit log only) it may not."""
    user = find_user(email)
    if user is None:
        return None, "unknown address"
    if not user.active:
        return None, "deactivated"
    if not user.has_role(Role.CUSTOMER) or user.is_staff:
        return None, "not a customer account"
    return user, None


def _requester(user: User | None, email: str, client_address: str | None) -> Actor:
    if user is not None:
        return Actor.for_user(user, client_address)
    return Actor.customer(email=email.strip().lower()[:254], client_address=client_address)


def _mail(user: User, kind: Kind, **values: Any) -> None:
    """Render the system mail ``kind`` in the user's language and send it.

    From the default identity's templates (``app.mail.system_mail``: admins edit them).
    Sent straight, not through the outbox: the mail carries a live sign-in or password
    link, which must not rest in a table that admins can read.
    """
    identity = system_mail.default_identity()
    values.setdefault("identity_name", identity.name if identity is not None else "Vaultdesk")
    values.setdefault("customer_name", user.name)
    values.setdefault("email", user.email)
    rendered = system_mail.render(kind, identity, user.language, values)
    send_mail(user.email, rendered.subject, rendered.text, html=rendered.html)


def _send_or_report(user: User, kind: Kind, **values: Any) -> str:
    """Send; a failure is raised for RQ to retry, and on the last try only reported."""
    try:
        _mail(user, kind, **values)
    except MailNotSent as exc:
        if not is_last_try():
            raise
        log.warning("portal mail to user %s not sent: %s", user.id, exc.message)
        return "mail failed"
    return "sent"


def record_refusal(purpose: str, error: EmailedLinkRefused, client_address: str | None) -> None:
    """Audit a refused attempt to *use* a link (not a GET: mail scanners fetch those)."""
    audit.record(
        Actor.customer(client_address=client_address),
        "auth.link_refused",
        "user",
        None,
        purpose=purpose,
        state=error.state.value,
    )


# -- sign-in links --------------------------------------------------------------------------


def sign_in_token(user: User) -> str:
    return str(_serializer(SIGN_IN_SALT).dumps([user.id, user.link_token]))


def request_sign_in_link(email: str, client_address: str | None) -> None:
    """Queue a 15-minute sign-in link for ``email`` (see the module docstring)."""
    _queue_request(MailRequest.SIGN_IN, email, client_address)


def deliver_sign_in_link(email: str, client_address: str | None) -> str:
    """The job's half: mail a customer their link; anyone else gets only an audit row."""
    user, reason = _customer_for(email)
    outcome = reason
    if user is not None:
        url = public_url("portal.sign_in_with_link", token=sign_in_token(user))
        outcome = _send_or_report(user, Kind.SIGN_IN_LINK, url=url, minutes=SIGN_IN_MAX_AGE // 60)
    audit.record(
        _requester(user, email, client_address),
        "portal.sign_in_link_requested",
        "user",
        user.id if user else None,
        outcome=outcome,
    )
    return outcome or "sent"


def _load(salt: str, token: str, max_age: int) -> list[Any]:
    try:
        payload = _serializer(salt).loads(token, max_age=max_age)
    except SignatureExpired:
        raise EmailedLinkRefused(EmailedLinkState.EXPIRED) from None
    except BadSignature:
        raise EmailedLinkRefused(EmailedLinkState.INVALID) from None
    if not isinstance(payload, list) or len(payload) < 2 or not isinstance(payload[0], int):
        raise EmailedLinkRefused(EmailedLinkState.INVALID)
    return payload


def _current_user_for(payload: list[Any]) -> User:
    """The customer a verified payload names, if its link_token is still the current one."""
    user = db.session.get(User, payload[0])
    if user is None or not user.has_role(Role.CUSTOMER) or user.is_staff:
        raise EmailedLinkRefused(EmailedLinkState.INVALID)
    if not user.active or user.link_token != payload[1]:
        raise EmailedLinkRefused(EmailedLinkState.USED)
    return user


def check_sign_in_link(token: str) -> User:
    """Verify without spending: the GET that a mail scanner may fetch must change nothing."""
    return _current_user_for(_load(SIGN_IN_SALT, token, SIGN_IN_MAX_AGE))


def consume_sign_in_link(token: str, client_address: str | None = None) -> User:
    """Verify and spend a sign-in link; the caller starts the session."""
    user = check_sign_in_link(token)
    user.link_token = new_session_token()
    record_login(user, client_address, audience="customer", method="email link")
    return user


# -- set-password links (reset and invitation) ----------------------------------------------


def set_password_token(user: User, kind: SetPasswordKind) -> str:
    return str(_serializer(SET_PASSWORD_SALT).dumps([user.id, user.link_token, kind.value]))


def request_password_reset(email: str, client_address: str | None) -> None:
    """Queue a 60-minute reset link for ``email`` (see the module docstring)."""
    _queue_request(MailRequest.RESET, email, client_address)


def deliver_password_reset(email: str, client_address: str | None) -> str:
    """The job's half: mail a customer a reset link; anyone else gets only an audit row."""
    user, reason = _customer_for(email)
    outcome = reason
    if user is not None:
        url = public_url(
            "portal.reset_with_link", token=set_password_token(user, SetPasswordKind.RESET)
        )
        outcome = _send_or_report(user, Kind.PASSWORD_RESET, url=url, minutes=RESET_MAX_AGE // 60)
    audit.record(
        _requester(user, email, client_address),
        "portal.password_reset_requested",
        "user",
        user.id if user else None,
        outcome=outcome,
    )
    return outcome or "sent"


def check_password_link(token: str) -> PasswordLink:
    """Verify a reset or invitation link without spending it."""
    payload = _load(SET_PASSWORD_SALT, token, INVITE_MAX_AGE)
    try:
        kind = SetPasswordKind(payload[2])
    except (IndexError, ValueError):
        raise EmailedLinkRefused(EmailedLinkState.INVALID) from None
    if kind is not SetPasswordKind.INVITE:
        # The longest age let it through; now hold it to its own, shorter one.
        _load(SET_PASSWORD_SALT, token, MAX_AGE[kind])
    return PasswordLink(_current_user_for(payload), kind)


def reset_password(token: str, new_password: str, client_address: str | None = None) -> User:
    """Set the password a reset or invitation link was for; ends every session and link."""
    link = check_password_link(token)
    if len(new_password) < MIN_PASSWORD:
        raise InvalidInput(_("Passwords need at least %(count)d characters.", count=MIN_PASSWORD))
    link.user.set_password(new_password)  # rotates session_token and link_token
    audit.record(
        Actor.for_user(link.user, client_address),
        "auth.password_set",
        "user",
        link.user.id,
        via=link.kind.value,
    )
    return link.user


# -- invitations ----------------------------------------------------------------------------


def _portal_user_for(contact: Contact, actor: Actor) -> User:
    """The contact's login, found or created (customer role, no password)."""
    if contact.user is not None:
        return contact.user
    existing = find_user(contact.email)
    if existing is None:
        user = create_user(
            email=contact.email,
            roles=[Role.CUSTOMER],
            password=None,
            name=contact.name,
            actor=actor,
        )
    else:
        taken = db.session.scalar(select(Contact.id).where(Contact.user_id == existing.id))
        if existing.is_staff or not existing.has_role(Role.CUSTOMER) or taken is not None:
            raise Conflict(
                _("The address %(email)s belongs to another account.", email=contact.email)
            )
        user = existing
    contact.user = user
    db.session.flush()
    return user


def invite_contact(contact: Contact, actor: Actor, ticket: Ticket | None = None) -> User:
    """Give a contact a portal login and queue a 7-day link to choose a password.

    Contacts who have a password already are refused: they sign in, or use "Forgot your
    password?". The mail goes out from the queue; if it finally fails, the agent reads why
    on ``ticket`` (when the invitation was sent from one) and the audit log says so.
    """
    user = _portal_user_for(contact, actor)
    if user.is_staff or not user.has_role(Role.CUSTOMER):
        raise Conflict(_("The address %(email)s belongs to another account.", email=contact.email))
    if user.password_hash:
        raise Conflict(
            _(
                "%(email)s has a portal password already. They can sign in, or use "
                "“Forgot your password?” on the portal sign-in page.",
                email=user.email,
            )
        )
    if not user.active:
        raise Conflict(_("The portal account of %(email)s is deactivated.", email=user.email))
    audit.record(actor, "portal.invite", "user", user.id, contact_id=contact.id)
    from app.jobs import enqueue_after_commit
    from app.jobs.mail import send_invitation

    enqueue_after_commit(
        send_invitation, args=(user.id, actor.name, ticket.id if ticket is not None else None)
    )
    return user


def deliver_invitation(user_id: int, inviter: str | None, ticket_id: int | None) -> str:
    """The job's half of an invitation: the mail, with the link made at sending time.

    An invitation overtaken by events (the customer chose a password meanwhile, or the
    login was deactivated) is not sent.
    """
    user = db.session.get(User, user_id)
    if user is None or not user.active or user.password_hash:
        return "not needed any more"
    url = public_url(
        "portal.reset_with_link", token=set_password_token(user, SetPasswordKind.INVITE)
    )
    outcome = _send_or_report(
        user,
        Kind.PORTAL_INVITE,
        url=url,
        days=INVITE_MAX_AGE // 86400,
        inviter=inviter or "",
    )
    if outcome != "sent":
        audit.record(Actor.system(), "portal.invite_failed", "user", user.id)
        ticket = db.session.get(Ticket, ticket_id) if ticket_id is not None else None
        if ticket is not None:
            add_entry(
                ticket,
                EntryKind.SYSTEM,
                Actor.system(),
                body_text=(
                    f"The portal invitation to {user.email} could not be sent; the mail "
                    "server refused it. Check the address and invite again."
                ),
                internal=True,
                data={"invitation_failed": user.email},
            )
    return outcome
