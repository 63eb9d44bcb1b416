"""What admins do to other people's accounts: invite, roles, team, deactivate, reset.

Decisions (also in the README, "Administration"):

- Staff and customers are kept apart. A staff user holds one or more staff roles (agent,
  supervisor, compliance, admin); a customer login holds only the customer role and is
  tied to a contact. The admin screens never turn one into the other: an address that
  must change sides is deactivated and a new account made under another address.
- Nobody types a password for someone else. A new staff user gets an invitation mail
  with a 7-day link to choose their password (``staff_links``); a new customer login is
  the portal invitation agents already send (``emailed_links.invite_contact``).
- Deactivating ends every session at once: ``session_token`` and ``link_token`` rotate,
  so the session cookie, a "keep me signed in" cookie and every emailed link stop
  working on the next request. Tickets the person manages stay theirs until someone
  reassigns them (the inbox shows them); reactivating gives the account back as it was.
- There is always an active admin: no change (roles, deactivation) may leave the desk
  without one, whoever makes it. The admins are read ``FOR UPDATE`` before the check, so
  two admins demoting each other at once on PostgreSQL cannot both succeed (SQLite
  serialises writers anyway).
- A password reset for staff is a staff link sent by the admin (there is no
  self-service reset for staff); for a customer it is the portal's reset mail.

Every function writes its audit row into the session; the view commits.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable

from flask_babel import gettext as _
from sqlalchemy import Select, exists, func, or_, select

from app import audit
from app.accounts import emailed_links
from app.accounts.emailed_links import SetPasswordKind
from app.accounts.people import create_user
from app.actor import Actor
from app.errors import Conflict, InvalidInput
from app.extensions import db
from app.mail.addresses import normalise_address
from app.models.people import (
    STAFF_ROLES,
    Account,
    Contact,
    Role,
    Team,
    User,
    UserRole,
    new_session_token,
)
from app.models.types import utcnow
from app.pagination import Page, paginate

PER_PAGE = 25
NAME_LIMIT = 200


class UserKind(enum.StrEnum):
    STAFF = "staff"
    CUSTOMERS = "customers"


def _is_staff_clause() -> object:
    staff = [r.value for r in STAFF_ROLES]
    return exists().where(UserRole.user_id == User.id, UserRole.role.in_(staff))


def user_query(kind: UserKind, search: str = "") -> Select[tuple[User]]:
    """Staff or customer logins, by name, optionally matching ``search`` in name or address."""
    stmt = select(User)
    clause = _is_staff_clause()
    stmt = stmt.where(clause if kind is UserKind.STAFF else ~clause)  # type: ignore[operator]
    words = search.strip().lower()[:100]
    if words:
        pattern = "%" + words.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        stmt = stmt.where(
            or_(
                func.lower(User.name).like(pattern, escape="\\"),
                func.lower(User.email).like(pattern, escape="\\"),
            )
        )
    return stmt.order_by(func.lower(User.name), User.id)


def list_users(kind: UserKind, search: str, page: int) -> Page[User]:
    return paginate(user_query(kind, search), page, PER_PAGE)


def parse_staff_roles(values: Iterable[str]) -> list[Role]:
    """The staff roles ticked in a form; anything else (customer, garbage) is refused."""
    chosen: list[Role] = []
    for value in values:
        try:
            role = Role(value)
        except ValueError:
            raise InvalidInput(_("“%(value)s” is not a staff role.", value=value[:40])) from None
        if role not in STAFF_ROLES:
            raise InvalidInput(_("“%(value)s” is not a staff role.", value=value[:40]))
        if role not in chosen:
            chosen.append(role)
    if not chosen:
        raise InvalidInput(_("A staff user needs at least one role."))
    return sorted(chosen, key=lambda r: r.value)


def _clean_name(name: str) -> str:
    cleaned = " ".join(name.split())
    if not cleaned or len(cleaned) > NAME_LIMIT:
        raise InvalidInput(_("Please enter a name (up to 200 characters)."))
    return cleaned


def _address(email: str) -> str:
    try:
        return normalise_address(email)
    except (InvalidInput, ValueError):
        raise InvalidInput(_("“%(value)s” is not an email address.", value=email[:80])) from None


def _taken(email: str) -> None:
    if db.session.scalar(select(User.id).where(func.lower(User.email) == email)) is not None:
        raise Conflict(_("A user with the address %(email)s exists already.", email=email))


def invite_staff(
    actor: Actor, *, email: str, name: str, roles: list[Role], team: Team | None
) -> User:
    """A staff user without a password, and the invitation mail queued after the commit."""
    from app.jobs import enqueue_after_commit
    from app.jobs.mail import send_staff_link

    address = _address(email)
    _taken(address)
    user = create_user(
        email=address, roles=roles, password=None, name=_clean_name(name), team=team, actor=actor
    )
    _sync_team_supervisors(user.team)
    audit.record(actor, "user.invite", "user", user.id, email=address, audience="staff")
    enqueue_after_commit(send_staff_link, args=(user.id, SetPasswordKind.INVITE.value, actor.name))
    return user


def invite_customer(actor: Actor, *, email: str, name: str, account_name: str = "") -> User:
    """A portal login for a contact (found by address, or made), invited by mail.

    Goes through ``emailed_links.invite_contact``, the path agents use from a ticket, so
    the rules (no invitation to someone with a password, the address not taken by staff)
    and the mail are the same.
    """
    address = _address(email)
    cleaned = _clean_name(name)
    contact = db.session.scalar(
        select(Contact).where(func.lower(Contact.email) == address).order_by(Contact.id)
    )
    if contact is None:
        _taken(address)
        account = None
        if account_name.strip():
            wanted = " ".join(account_name.split())[:200]
            account = db.session.scalar(
                select(Account).where(func.lower(Account.name) == wanted.lower())
            ) or Account(name=wanted)
        contact = Contact(name=cleaned, email=address, account=account)
        db.session.add(contact)
        db.session.flush()
    return emailed_links.invite_contact(contact, actor)


def active_admin_ids(*, lock: bool = False) -> list[int]:
    stmt = (
        select(User.id)
        .join(UserRole, UserRole.user_id == User.id)
        .where(UserRole.role == Role.ADMIN.value, User.active.is_(True))
    )
    if lock:
        stmt = stmt.with_for_update(of=User)
    return list(db.session.scalars(stmt))


def _keep_an_admin(user: User, *, loses_admin: bool) -> None:
    """Refuse a change that would leave the desk without an active admin."""
    if not loses_admin or not user.has_role(Role.ADMIN) or not user.active:
        return
    others = [i for i in active_admin_ids(lock=True) if i != user.id]
    if not others:
        raise Conflict(
            _(
                "%(name)s is the only active admin. Make someone else an admin first, "
                "so the desk is never left without one.",
                name=user.name,
            )
        )


def _staff_only(user: User) -> None:
    if not user.is_staff:
        raise Conflict(_("%(email)s is a customer login, not staff.", email=user.email))


def set_roles(actor: Actor, user: User, roles: list[Role]) -> bool:
    """Give a staff user exactly ``roles`` (staff roles only); False when nothing changed."""
    _staff_only(user)
    wanted = set(roles)
    before = user.roles
    if wanted == before:
        return False
    _keep_an_admin(user, loses_admin=Role.ADMIN not in wanted)
    user.role_rows = [row for row in user.role_rows if Role(row.role) in wanted]
    for role in sorted(wanted - before, key=lambda r: r.value):
        user.grant(role)
    db.session.flush()
    _sync_team_supervisors(user.team)
    audit.record(
        actor,
        "user.roles",
        "user",
        user.id,
        before=sorted(r.value for r in before),
        after=sorted(r.value for r in wanted),
    )
    return True


def set_team(actor: Actor, user: User, team: Team | None) -> bool:
    """Move a staff user to ``team`` (or none); their supervisor follows the team's lead."""
    _staff_only(user)
    if user.team_id == (team.id if team else None):
        return False
    old = user.team
    user.team = team
    if team is None or old is not None:
        user.supervisor_id = None
    db.session.flush()
    _sync_team_supervisors(old)
    _sync_team_supervisors(team)
    audit.record(
        actor,
        "user.team",
        "user",
        user.id,
        before=old.name if old else None,
        after=team.name if team else None,
    )
    return True


def deactivate(actor: Actor, user: User) -> bool:
    """Block the account and end its sessions and links at once (see the module doc)."""
    if not user.active:
        return False
    _keep_an_admin(user, loses_admin=True)
    user.active = False
    user.session_token = new_session_token()
    user.link_token = new_session_token()
    audit.record(actor, "user.deactivate", "user", user.id, email=user.email)
    return True


def reactivate(actor: Actor, user: User) -> bool:
    if user.active:
        return False
    user.active = True
    audit.record(actor, "user.reactivate", "user", user.id, email=user.email)
    return True


def send_password_reset(actor: Actor, user: User, client_address: str | None) -> None:
    """Mail the user a link to choose a new password (queued; sent after the commit)."""
    if not user.active:
        raise Conflict(
            _("%(email)s is deactivated. Reactivate the account first.", email=user.email)
        )
    from app.jobs import enqueue_after_commit
    from app.jobs.mail import send_staff_link

    if user.is_staff:
        enqueue_after_commit(
            send_staff_link, args=(user.id, SetPasswordKind.RESET.value, actor.name)
        )
    else:
        emailed_links.request_password_reset(user.email, client_address)
    audit.record(
        actor,
        "user.password_reset_sent",
        "user",
        user.id,
        audience="staff" if user.is_staff else "customer",
        at=utcnow().isoformat(),
    )


def resend_invitation(actor: Actor, user: User) -> None:
    """Another invitation for a staff user who has not chosen a password yet."""
    from app.jobs import enqueue_after_commit
    from app.jobs.mail import send_staff_link

    _staff_only(user)
    if user.password_hash:
        raise Conflict(
            _("%(email)s has chosen a password already; send a password reset.", email=user.email)
        )
    if not user.active:
        raise Conflict(
            _("%(email)s is deactivated. Reactivate the account first.", email=user.email)
        )
    enqueue_after_commit(send_staff_link, args=(user.id, SetPasswordKind.INVITE.value, actor.name))
    audit.record(
        actor, "user.invite", "user", user.id, email=user.email, audience="staff", again=True
    )


def _sync_team_supervisors(team: Team | None) -> None:
    """Point every member who is not a lead at the team's first lead (see ``teams``)."""
    if team is None:
        return
    from app.accounts.teams import sync_supervisors

    sync_supervisors(team)
