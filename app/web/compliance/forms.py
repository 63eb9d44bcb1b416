"""Forms of the compliance screens: every revocation asks why, the emergency switch twice."""

from __future__ import annotations

from typing import Any

from flask_wtf import FlaskForm
from wtforms import EmailField, HiddenField, SelectChoice, SelectField, StringField
from wtforms.validators import DataRequired, Length, Optional, ValidationError

from app.files.queries import LINK_STATES, OUTCOMES
from app.mail.addresses import is_address

CONFIRM_WORD = "REVOKE"
REASON_MISSING = "Say why the links are revoked; the reason goes into the audit log."


def _strip(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


class ReasonForm(FlaskForm):
    """The reason every revocation needs; ``next`` is where a plain POST returns to."""

    reason = StringField(
        "Reason",
        filters=[_strip],
        validators=[DataRequired(message=REASON_MISSING), Length(max=500)],
    )
    next = HiddenField()


class TicketLinksForm(ReasonForm):
    """Revoke every link of a ticket named in the form (the links page has no ticket yet)."""

    number = StringField(
        "Ticket number",
        filters=[_strip],
        validators=[DataRequired(message="Give the ticket number."), Length(max=32)],
    )


def _looks_like_address(form: FlaskForm, field: EmailField) -> None:
    if not is_address(field.data):
        raise ValidationError("That is not an email address.")


class AddressLinksForm(ReasonForm):
    """Revoke what was sent to an address that belongs to no contact."""

    email = EmailField(
        "Recipient address",
        filters=[_strip],
        validators=[
            DataRequired(message="Give the address."),
            Length(max=254),
            _looks_like_address,
        ],
    )


class RevokeAllForm(ReasonForm):
    """The emergency switch: typing the word is the "are you sure" that cannot be misclicked."""

    confirm = StringField(
        f"Type {CONFIRM_WORD} to confirm",
        filters=[_strip],
        validators=[
            DataRequired(
                message=f"Type {CONFIRM_WORD} in capitals to confirm; no link was revoked."
            )
        ],
    )

    def validate_confirm(self, field: StringField) -> None:
        if field.data != CONFIRM_WORD:
            raise ValidationError(
                f"Type {CONFIRM_WORD} in capitals to confirm; no link was revoked."
            )


class _Filters(FlaskForm):
    """GET filters: no CSRF (they change nothing) and no prefix in the URL."""

    class Meta:
        csrf = False


class LinkFilterForm(_Filters):
    state = SelectField(
        "State",
        choices=[SelectChoice(s, s.capitalize()) for s in LINK_STATES],
        default="all",
        validators=[Optional()],
    )
    ticket = StringField("Ticket", filters=[_strip], validators=[Optional(), Length(max=32)])
    customer = StringField("Customer", filters=[_strip], validators=[Optional(), Length(max=200)])
    recipient = StringField("Recipient", filters=[_strip], validators=[Optional(), Length(max=254)])
    filename = StringField("File name", filters=[_strip], validators=[Optional(), Length(max=255)])


class DownloadFilterForm(_Filters):
    outcome = SelectField(
        "Outcome",
        choices=[SelectChoice("", "Any"), *(SelectChoice(o, o.capitalize()) for o in OUTCOMES)],
        default="",
        validators=[Optional()],
    )
    reason = SelectField(
        "Reason", choices=[SelectChoice("", "Any")], default="", validators=[Optional()]
    )
