"""Portal forms: used to render fields and to validate what the customer sent.

The new-ticket and reply forms carry files, so their bodies are read by
``app.files.uploads.receive_form`` (CSRF checked there); the forms then validate the
parsed fields with ``meta={"csrf": False}``.
"""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import RadioField, SelectChoice, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, InputRequired, Length, Optional

from app.models.tickets import Priority

PRIORITY_CHOICES = [
    SelectChoice("", _l("No preference")),
    SelectChoice(Priority.LOW.value, _l("Low: it can wait")),
    SelectChoice(Priority.NORMAL.value, _l("Normal")),
    SelectChoice(Priority.HIGH.value, _l("High: my work is slowed down")),
    SelectChoice(Priority.URGENT.value, _l("Urgent: my work is stopped")),
]

SCORE_CHOICES = [
    SelectChoice("5", _l("5 stars: excellent")),
    SelectChoice("4", _l("4 stars: good")),
    SelectChoice("3", _l("3 stars: acceptable")),
    SelectChoice("2", _l("2 stars: poor")),
    SelectChoice("1", _l("1 star: very poor")),
]


class NewTicketForm(FlaskForm):
    subject = StringField(_l("Subject"), validators=[DataRequired(), Length(max=300)])
    description = TextAreaField(
        _l("Describe your request"), validators=[DataRequired(), Length(max=100_000)]
    )
    category = SelectField(_l("Category"), validators=[Optional()], choices=[])
    priority = SelectField(
        _l("Suggested priority"), validators=[Optional()], choices=PRIORITY_CHOICES
    )


class RatingForm(FlaskForm):
    score = RadioField(
        _l("How satisfied are you with our answer?"),
        validators=[InputRequired(message=_l("Choose a number of stars."))],
        choices=SCORE_CHOICES,
    )
    comment = TextAreaField(_l("Comment (optional)"), validators=[Optional(), Length(max=5000)])


class CloseForm(FlaskForm):
    """Only the CSRF token: the "Close this ticket" button."""
