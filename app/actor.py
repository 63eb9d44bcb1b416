"""Who is acting: the domain takes this instead of reading ``current_user`` itself."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from app.models.people import User


class ActorKind(enum.StrEnum):
    STAFF = "staff"
    CUSTOMER = "customer"
    SYSTEM = "system"


@dataclass(frozen=True)
class Actor:
    """An agent, a customer (signed in or known only by a mail address) or the system.

    Mail from a customer has no user behind it, so the domain cannot rely on a ``User``
    to know who acted or which transitions they may make.
    """

    kind: ActorKind
    user: User | None = None
    name: str | None = None
    email: str | None = None
    client_address: str | None = None

    @classmethod
    def staff(cls, user: User, client_address: str | None = None) -> Actor:
        return cls(ActorKind.STAFF, user, user.name, user.email, client_address)

    @classmethod
    def customer(
        cls,
        user: User | None = None,
        *,
        name: str | None = None,
        email: str | None = None,
        client_address: str | None = None,
    ) -> Actor:
        if user is not None:
            name, email = name or user.name, email or user.email
        return cls(ActorKind.CUSTOMER, user, name, email, client_address)

    @classmethod
    def system(cls, name: str = "Vaultdesk") -> Actor:
        return cls(ActorKind.SYSTEM, None, name, None)

    @classmethod
    def for_user(cls, user: User, client_address: str | None = None) -> Actor:
        if user.is_staff:
            return cls.staff(user, client_address)
        return cls.customer(user, client_address=client_address)

    @property
    def user_id(self) -> int | None:
        return self.user.id if self.user is not None else None

    @property
    def label(self) -> str:
        if self.user is not None:
            return self.user.email
        if self.email:
            return self.email
        return self.name or self.kind.value
