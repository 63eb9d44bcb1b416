"""Contacts, as agents act on them: inviting one to the customer portal."""

from __future__ import annotations

from flask import flash, redirect, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from werkzeug.wrappers import Response

from app.accounts.emailed_links import invite_contact
from app.actor import Actor
from app.errors import Conflict, NotFound
from app.extensions import db
from app.models.people import Contact
from app.models.tickets import Ticket
from app.web.agent import bp
from app.web.guards import safe_next


class InviteForm(FlaskForm):
    """Only the CSRF token; the contact comes from the URL."""


@bp.post("/contacts/<int:contact_id>/invite")
def invite(contact_id: int) -> Response:
    """Create the contact's portal login (if needed) and mail a link to choose a password."""
    InviteForm().validate_on_submit()  # CSRFProtect has checked the token already
    contact = db.session.get(Contact, contact_id)
    if contact is None:
        raise NotFound(_("There is no such contact."))
    back = safe_next(request.form.get("next"), url_for("agent.inbox"))
    number = (request.form.get("ticket") or "").strip()
    ticket = db.session.scalar(select(Ticket).where(Ticket.number == number)) if number else None
    try:
        user = invite_contact(contact, Actor.staff(current_user, request.remote_addr), ticket)
    except Conflict as refused:
        db.session.rollback()
        flash(refused.message, "error")
        return redirect(back, code=303)
    db.session.commit()
    flash(_("The portal invitation to %(email)s is on its way.", email=user.email), "success")
    return redirect(back, code=303)
