"""Forms of the account blueprint."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import PasswordField, SubmitField
from wtforms.validators import DataRequired, EqualTo

from ..auth.forms import PASSWORD_HINT
from ..validators import bcrypt_length, new_password


class PasswordChangeForm(FlaskForm):
    """Current password, then the new one twice."""

    current = PasswordField("Current password", validators=[DataRequired(), bcrypt_length])
    password = PasswordField(
        "New password", validators=[DataRequired(), new_password], description=PASSWORD_HINT
    )
    confirm = PasswordField(
        "Confirm new password",
        validators=[DataRequired(), EqualTo("password", message="The passwords do not match.")],
    )
    submit = SubmitField("Change password")


class DeleteAccountForm(FlaskForm):
    """The password, to confirm the account should go."""

    password = PasswordField("Password", validators=[DataRequired(), bcrypt_length])
    submit = SubmitField("Delete my account")


class EndSessionForm(FlaskForm):
    """An empty form whose CSRF token guards ending sessions."""

    submit = SubmitField("End")
