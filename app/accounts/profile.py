"""What people change about their own account: name, language, zone, password, data copy."""

from __future__ import annotations

from flask_babel import gettext as _

from app import audit
from app.accounts.people import MIN_PASSWORD
from app.actor import Actor
from app.errors import Forbidden, InvalidInput
from app.i18n import LANGUAGES, is_zone
from app.models.people import Contact, User
from app.models.tickets import Channel, DataSubjectRequest, Ticket
from app.tickets import create_ticket


def update_profile(
    user: User, *, name: str, language: str, timezone: str, client_address: str | None
) -> None:
    name = " ".join(name.split())
    if not name or len(name) > 200:
        raise InvalidInput(_("Please enter your name (up to 200 characters)."))
    if language not in LANGUAGES:
        raise InvalidInput(_("Please choose one of the offered languages."))
    if not is_zone(timezone):
        raise InvalidInput(_("Please choose a time zone from the list."))
    user.name, user.language, user.timezone = name, language, timezone
    if user.contact is not None:
        user.contact.name = name
    audit.record(
        Actor.for_user(user, client_address),
        "user.profile",
        "user",
        user.id,
        language=language,
        timezone=timezone,
    )


def change_own_password(
    user: User, *, current: str, new: str, repeat: str, client_address: str | None
) -> None:
    """Needs the current password; ends every other session (see ``User.set_password``)."""
    if not user.check_password(current):
        raise Forbidden(_("The current password is not right."))
    if len(new) < MIN_PASSWORD:
        raise InvalidInput(_("The new password needs at least %(n)d characters.", n=MIN_PASSWORD))
    if new != repeat:
        raise InvalidInput(_("The two new passwords are not the same."))
    user.set_password(new)
    audit.record(Actor.for_user(user, client_address), "user.password", "user", user.id)


def request_data_copy(user: User, *, client_address: str | None) -> Ticket:
    """A data-subject access request (GDPR Art. 15) as a ticket the desk must answer.

    Until the GDPR work produces the export itself, the request reaches compliance the
    way every other request does: as a ticket with a clear subject, in the inbox. The
    ticket is marked ``data_subject_request`` in the same transaction, which is what lets
    compliance officers read it (read-only) without an agent's rights.
    """
    contact: Contact | None = user.contact
    if contact is None:
        raise Forbidden(_("Your account is not linked to a customer record."))
    actor = Actor.customer(user, client_address=client_address)
    ticket = create_ticket(
        Channel.PORTAL,
        actor,
        subject="Request for a copy of my personal data (GDPR Art. 15)",
        body_text=(
            f"{user.name} <{user.email}> asks for a copy of the personal data "
            "the company holds about them."
        ),
        contact=contact,
        tags=["gdpr"],
    )
    ticket.data_subject_request = DataSubjectRequest.ACCESS.value
    audit.record(actor, "gdpr.access_request", "ticket", ticket.number, ticket_id=ticket.id)
    return ticket
