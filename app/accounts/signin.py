"""Checking credentials; the views only parse forms and start the session."""

from __future__ import annotations

import enum

from sqlalchemy import func, select
from werkzeug.security import check_password_hash, generate_password_hash

from app import audit
from app.actor import Actor
from app.extensions import db
from app.models.people import Role, User
from app.models.types import utcnow

# Checked against when the address is unknown, so a wrong address costs as long as a wrong
# password and response times do not reveal which addresses have accounts.
_DUMMY_HASH = generate_password_hash("vaultdesk-timing-equaliser", method="scrypt")


class Audience(enum.StrEnum):
    STAFF = "staff"
    CUSTOMER = "customer"


def find_user(email: str) -> User | None:
    return db.session.scalar(select(User).where(func.lower(User.email) == email.strip().lower()))


def may_enter(user: User, audience: Audience) -> bool:
    if audience is Audience.STAFF:
        return user.is_staff
    return user.has_role(Role.CUSTOMER)


def authenticate(
    email: str, password: str, audience: Audience, client_address: str | None
) -> User | None:
    """Return the user when address, password, activity and audience all fit.

    Every attempt writes an audit row; the caller commits. The reason for a refusal goes
    to the audit log only, never to the person trying.
    """
    user = find_user(email)
    if user is None:
        check_password_hash(_DUMMY_HASH, password)
        reason = "unknown address"
    elif not user.check_password(password):
        reason = "wrong password"
    elif not user.active:
        reason = "deactivated"
    elif not may_enter(user, audience):
        reason = f"not a {audience.value} account"
    else:
        from app.accounts import two_factor

        if audience is Audience.STAFF and two_factor.applies(user):
            # Not signed in yet: ``two_factor.verify`` records the login after the code.
            audit.record(
                Actor.for_user(user, client_address),
                "auth.password_accepted",
                "user",
                user.id,
                second_factor="enrolled" if user.has_second_factor else "enrolment due",
            )
        else:
            record_login(user, client_address, audience=audience.value)
        return user
    who = (
        Actor.for_user(user, client_address)
        if user
        else Actor.customer(email=email.strip().lower()[:254], client_address=client_address)
    )
    audit.record(
        who,
        "auth.login_failed",
        "user",
        user.id if user else None,
        audience=audience.value,
        reason=reason,
    )
    return None


def record_login(user: User, client_address: str | None, **details: str) -> None:
    """What every successful sign-in leaves behind, whatever the method (password, link)."""
    user.last_login_at = utcnow()
    audit.record(Actor.for_user(user, client_address), "auth.login", "user", user.id, **details)


def load_user(session_id: str) -> User | None:
    """Flask-Login loader: the id carries a token that a password change rotates."""
    user_id, _, token = session_id.partition(":")
    if not user_id.isdigit() or not token:
        return None
    user = db.session.get(User, int(user_id))
    if user is None or user.session_token != token or not user.active:
        return None
    return user
