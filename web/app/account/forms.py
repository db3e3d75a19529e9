"""Forms of the account blueprint."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import PasswordField, SubmitField
from wtforms.validators import DataRequired

from ..auth.forms import email_field, new_password_fields
from ..validators import checkable_password


class PasswordChangeForm(FlaskForm):
    """Current password, then the new one twice."""

    current = PasswordField("Current password", validators=[DataRequired(), checkable_password])
    password, confirm = new_password_fields()
    submit = SubmitField("Change password")


class DeleteAccountForm(FlaskForm):
    """The password, to confirm the account should go."""

    password = PasswordField("Password", validators=[DataRequired(), checkable_password])
    submit = SubmitField("Delete my account")


class EndSessionForm(FlaskForm):
    """An empty form whose CSRF token guards ending sessions."""

    submit = SubmitField("End")


class EmailChangeForm(FlaskForm):
    """The new address and the password."""

    email = email_field("New email address")
    password = PasswordField("Password", validators=[DataRequired(), checkable_password])
    submit = SubmitField("Send a confirmation link")
