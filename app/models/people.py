"""People and organisations: users (staff and portal logins), teams, accounts, contacts, leads."""

from __future__ import annotations

import enum
import secrets
from datetime import datetime

from flask_login import UserMixin
from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship
from werkzeug.security import check_password_hash, generate_password_hash

from app.extensions import db
from app.models.types import UTCDateTime, enum_check, utcnow


class Role(enum.StrEnum):
    CUSTOMER = "customer"
    AGENT = "agent"
    SUPERVISOR = "supervisor"
    COMPLIANCE = "compliance"
    ADMIN = "admin"


STAFF_ROLES = frozenset({Role.AGENT, Role.SUPERVISOR, Role.COMPLIANCE, Role.ADMIN})


def new_session_token() -> str:
    return secrets.token_hex(16)


class UserRole(db.Model):
    """A role held by a user; a user may hold several (an admin who also answers tickets)."""

    __tablename__ = "user_role"
    __table_args__ = (enum_check("role", Role, "role_known"),)

    user_id: Mapped[int] = mapped_column(
        ForeignKey("user.id", ondelete="CASCADE"), primary_key=True
    )
    role: Mapped[str] = mapped_column(String(20), primary_key=True)


class Team(db.Model):
    __tablename__ = "team"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    email: Mapped[str | None] = mapped_column(String(254))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    members: Mapped[list[User]] = relationship(
        back_populates="team", foreign_keys="User.team_id", order_by="User.name"
    )


class User(UserMixin, db.Model):
    """Anyone who signs in: staff at /login, customers at /portal/login."""

    __tablename__ = "user"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str | None] = mapped_column(String(255))
    # Part of the Flask-Login id: rotating it signs the user out of every session.
    session_token: Mapped[str] = mapped_column(String(32), default=new_session_token)
    # Part of every emailed sign-in / reset link: rotating it spends all outstanding links.
    link_token: Mapped[str] = mapped_column(String(32), default=new_session_token)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    timezone: Mapped[str] = mapped_column(String(64), default="Europe/Berlin")
    language: Mapped[str] = mapped_column(String(8), default="en")
    team_id: Mapped[int | None] = mapped_column(ForeignKey("team.id", ondelete="SET NULL"))
    supervisor_id: Mapped[int | None] = mapped_column(ForeignKey("user.id", ondelete="SET NULL"))
    receives_all_mail: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Two-factor sign-in (app.accounts.two_factor): the TOTP secret sealed with the vault's
    # key ring, the last accepted time step (a code is never accepted twice), when the user
    # enrolled, and the SHA-256 hashes of the unused recovery codes, space-separated.
    totp_secret_sealed: Mapped[str | None] = mapped_column(String(255))
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger)
    two_factor_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    recovery_code_hashes: Mapped[str | None] = mapped_column(Text)

    role_rows: Mapped[list[UserRole]] = relationship(cascade="all, delete-orphan", lazy="selectin")
    team: Mapped[Team | None] = relationship(back_populates="members", foreign_keys=[team_id])
    supervisor: Mapped[User | None] = relationship(remote_side=[id], foreign_keys=[supervisor_id])
    contact: Mapped[Contact | None] = relationship(back_populates="user", uselist=False)

    @property
    def roles(self) -> frozenset[Role]:
        return frozenset(Role(row.role) for row in self.role_rows)

    def has_role(self, *roles: Role | str) -> bool:
        return any(Role(r) in self.roles for r in roles)

    @property
    def is_staff(self) -> bool:
        return bool(self.roles & STAFF_ROLES)

    @property
    def has_second_factor(self) -> bool:
        return self.totp_secret_sealed is not None

    def grant(self, role: Role | str) -> None:
        if Role(role) not in self.roles:
            self.role_rows.append(UserRole(role=Role(role).value))

    def set_password(self, password: str) -> None:
        """Hash with scrypt and end every other session of this user."""
        self.password_hash = generate_password_hash(password, method="scrypt")
        self.session_token = new_session_token()
        self.link_token = new_session_token()

    def check_password(self, password: str) -> bool:
        return bool(self.password_hash) and check_password_hash(self.password_hash, password)

    # Flask-Login
    @property
    def is_active(self) -> bool:  # type: ignore[override]
        return self.active

    def get_id(self) -> str:
        return f"{self.id}:{self.session_token}"

    def __repr__(self) -> str:
        return f"<User {self.email}>"


class Account(db.Model):
    """A customer company."""

    __tablename__ = "account"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), index=True)
    domain: Mapped[str | None] = mapped_column(String(253), index=True)
    account_manager_id: Mapped[int | None] = mapped_column(
        ForeignKey("user.id", ondelete="SET NULL")
    )
    notes: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    account_manager: Mapped[User | None] = relationship()
    contacts: Mapped[list[Contact]] = relationship(
        back_populates="account", order_by="Contact.name"
    )


class Contact(db.Model):
    """A person at a customer; may have a portal login (``user``)."""

    __tablename__ = "contact"
    __table_args__ = (Index("ix_contact_email", "email"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int | None] = mapped_column(ForeignKey("account.id", ondelete="SET NULL"))
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("user.id", ondelete="SET NULL"), unique=True
    )
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(254))
    phone: Mapped[str | None] = mapped_column(String(50))
    # An account manager on the customer side sees every ticket of their account in the portal.
    sees_account_tickets: Mapped[bool] = mapped_column(Boolean, default=False)
    # False for a contact the desk made up from an unknown mail sender: anyone can put any
    # address in From, so agents see that nobody has vouched for it yet.
    verified: Mapped[bool] = mapped_column(Boolean, default=True)
    # Set when a delivery status notification said mail to this address failed.
    mail_bounced_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    mail_bounce_reason: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    account: Mapped[Account | None] = relationship(back_populates="contacts")
    user: Mapped[User | None] = relationship(back_populates="contact")


class Lead(db.Model):
    """A prospective customer (sales side); tickets can name several."""

    __tablename__ = "lead"
    __table_args__ = (UniqueConstraint("email", name="uq_lead_email"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(254))
    company: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(30), default="new")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
