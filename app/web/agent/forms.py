"""Forms of the agent screens.

Labels and descriptions are lazy (``_l``): the form class is built once at import, but each
request renders it in its reader's language.
"""

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import EmailField, IntegerField, PasswordField
from wtforms.validators import NumberRange, Optional


class LinkForm(FlaskForm):
    days = IntegerField(_l("Valid for (days)"), default=14, validators=[NumberRange(1, 365)])
    max_downloads = IntegerField(
        _l("Download limit"),
        validators=[Optional(), NumberRange(1, 1000)],
        description=_l("Empty for no limit"),
    )
    recipient = EmailField(
        _l("Only for (email address)"),
        validators=[Optional()],
        description=_l(
            "Only this address can download: the recipient confirms a code we mail to it, "
            "or signs in to the portal with it. Empty: anyone with the link."
        ),
    )
    password = PasswordField(_l("Password (optional)"), validators=[Optional()])
