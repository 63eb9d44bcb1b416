from flask_wtf import FlaskForm
from wtforms import EmailField, IntegerField, PasswordField
from wtforms.validators import NumberRange, Optional


class LinkForm(FlaskForm):
    days = IntegerField("Valid for (days)", default=14, validators=[NumberRange(1, 365)])
    max_downloads = IntegerField(
        "Download limit",
        validators=[Optional(), NumberRange(1, 1000)],
        description="Empty for no limit",
    )
    recipient = EmailField(
        "Only for (email address)",
        validators=[Optional()],
        description=(
            "Only this address can download: the recipient confirms a code we mail to it, "
            "or signs in to the portal with it. Empty: anyone with the link."
        ),
    )
    password = PasswordField("Password (optional)", validators=[Optional()])
