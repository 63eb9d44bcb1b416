"""Forms of the compliance screens: every revocation asks why, the emergency switch twice."""

from __future__ import annotations

from typing import Any

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import EmailField, HiddenField, SelectChoice, SelectField, StringField
from wtforms.validators import DataRequired, Length, Optional, ValidationError

from app.files.queries import LINK_STATES, OUTCOMES
from app.mail.addresses import is_address

CONFIRM_WORD = "REVOKE"
REASON_MISSING = _l("Say why the links are revoked; the reason goes into the audit log.")
CONFIRM_MISSING = _l(
    "Type %(word)s in capitals to confirm; no link was revoked.", word=CONFIRM_WORD
)


def _strip(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


class ReasonForm(FlaskForm):
    """The reason every revocation needs; ``next`` is where a plain POST returns to."""

    reason = StringField(
        _l("Reason"),
        filters=[_strip],
        validators=[DataRequired(message=REASON_MISSING), Length(max=500)],
    )
    next = HiddenField()


class TicketLinksForm(ReasonForm):
    """Revoke every link of a ticket named in the form (the links page has no ticket yet)."""

    number = StringField(
        _l("Ticket number"),
        filters=[_strip],
        validators=[DataRequired(message=_l("Give the ticket number.")), Length(max=32)],
    )


def _looks_like_address(form: FlaskForm, field: EmailField) -> None:
    if not is_address(field.data):
        raise ValidationError(_l("That is not an email address."))


class AddressLinksForm(ReasonForm):
    """Revoke what was sent to an address that belongs to no contact."""

    email = EmailField(
        _l("Recipient address"),
        filters=[_strip],
        validators=[
            DataRequired(message=_l("Give the address.")),
            Length(max=254),
            _looks_like_address,
        ],
    )


class RevokeAllForm(ReasonForm):
    """The emergency switch: typing the word is the "are you sure" that cannot be misclicked."""

    confirm = StringField(
        _l("Type %(word)s to confirm", word=CONFIRM_WORD),
        filters=[_strip],
        validators=[DataRequired(message=CONFIRM_MISSING)],
    )

    def validate_confirm(self, field: StringField) -> None:
        if field.data != CONFIRM_WORD:
            raise ValidationError(str(CONFIRM_MISSING))


class _Filters(FlaskForm):
    """GET filters: no CSRF (they change nothing) and no prefix in the URL."""

    class Meta:
        csrf = False


STATE_LABELS = {
    "all": _l("All"),
    "active": _l("Active"),
    "expired": _l("Expired"),
    "exhausted": _l("Used up"),
    "revoked": _l("Revoked"),
    "erased": _l("Erased"),
}
OUTCOME_LABELS = {
    "viewed": _l("Viewed"),
    "challenged": _l("Code sent"),
    "verified": _l("Recipient confirmed"),
    "granted": _l("Granted"),
    "served": _l("Served"),
    "refused": _l("Refused"),
    "interrupted": _l("Interrupted"),
}


class LinkFilterForm(_Filters):
    state = SelectField(
        _l("State"),
        choices=[SelectChoice(s, STATE_LABELS.get(s, s.capitalize())) for s in LINK_STATES],
        default="all",
        validators=[Optional()],
    )
    ticket = StringField(_l("Ticket"), filters=[_strip], validators=[Optional(), Length(max=32)])
    customer = StringField(
        _l("Customer"), filters=[_strip], validators=[Optional(), Length(max=200)]
    )
    recipient = StringField(
        _l("Recipient"), filters=[_strip], validators=[Optional(), Length(max=254)]
    )
    filename = StringField(
        _l("File name"), filters=[_strip], validators=[Optional(), Length(max=255)]
    )


class DownloadFilterForm(_Filters):
    outcome = SelectField(
        _l("Outcome"),
        choices=[
            SelectChoice("", _l("Any")),
            *(SelectChoice(o, OUTCOME_LABELS.get(o, o.capitalize())) for o in OUTCOMES),
        ],
        default="",
        validators=[Optional()],
    )
    reason = SelectField(
        _l("Reason"), choices=[SelectChoice("", _l("Any"))], default="", validators=[Optional()]
    )
    who = StringField(_l("Person"), filters=[_strip], validators=[Optional(), Length(max=200)])
    file = StringField(_l("File name"), filters=[_strip], validators=[Optional(), Length(max=255)])
