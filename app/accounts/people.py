"""Creating and changing users; shared by the CLI, the admin screens and demo data."""

from __future__ import annotations

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import func, select

from app import audit
from app.actor import Actor
from app.errors import Conflict, InvalidInput
from app.extensions import db
from app.mail.addresses import normalise_address
from app.models.people import Role, Team, User

MIN_PASSWORD = 10


def create_user(
    *,
    email: str,
    roles: list[Role],
    password: str | None,
    name: str | None = None,
    team: Team | None = None,
    timezone: str | None = None,
    actor: Actor | None = None,
) -> User:
    email = normalise_address(email)
    if not roles:
        raise InvalidInput(_("A user needs at least one role."))
    if password is not None and len(password) < MIN_PASSWORD:
        raise InvalidInput(_("Passwords need at least %(n)d characters.", n=MIN_PASSWORD))
    if db.session.scalar(select(func.count()).where(func.lower(User.email) == email)):
        raise Conflict(_("A user with the address %(email)s exists already.", email=email))
    user = User(
        email=email,
        name=name or email.split("@")[0].replace(".", " ").title(),
        team=team,
    )
    user.timezone = timezone or current_app.config["TIMEZONE"]
    for role in roles:
        user.grant(role)
    if password is not None:
        user.set_password(password)
    db.session.add(user)
    db.session.flush()
    audit.record(
        actor or Actor.system("vaultdesk cli"),
        "user.create",
        "user",
        user.id,
        email=email,
        roles=sorted(r.value for r in roles),
    )
    return user
