"""Forms of the auth blueprint, and the new-password fields the account forms share."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, PasswordField, StringField, SubmitField
from wtforms.validators import DataRequired, Email, EqualTo, Length

from ..models import EMAIL_MAX
from ..passwords import HINT
from ..validators import checkable_password, new_password, valid_username


def new_password_fields() -> tuple[PasswordField, PasswordField]:
    """Return the new-password field and its repeat, made here so a form lists them where it
    calls this (WTForms orders fields by creation)."""
    password = PasswordField(
        "New password", validators=[DataRequired(), new_password], description=HINT
    )
    confirm = PasswordField(
        "Repeat the new password",
        validators=[DataRequired(), EqualTo("password", message="The passwords do not match.")],
    )
    return password, confirm


def email_field(label: str = "Email address") -> StringField:
    """Return an email address field: well-formed, at most 254 characters."""
    return StringField(
        label,
        validators=[
            DataRequired(),
            Length(max=EMAIL_MAX),
            Email(message="Enter an email address, such as name@example.com."),
        ],
        filters=[lambda value: value.strip() if isinstance(value, str) else value],
        render_kw={"autocomplete": "email", "type": "email"},
    )


class RegisterForm(FlaskForm):
    """Choose a username, give an email address and choose a password."""

    username = StringField("Username", validators=[DataRequired(), valid_username])
    email = email_field()
    password, confirm = new_password_fields()
    submit = SubmitField("Create account")


class LoginForm(FlaskForm):
    """Username, password and "remember me"."""

    username = StringField("Username", validators=[DataRequired(), Length(max=64)])
    password = PasswordField("Password", validators=[DataRequired(), checkable_password])
    remember = BooleanField("Remember me")
    submit = SubmitField("Log in")


class LogoutForm(FlaskForm):
    """An empty form: its CSRF token is what makes logging out deliberate."""

    submit = SubmitField("Log out")


class ForgotPasswordForm(FlaskForm):
    """The address a reset link should go to."""

    email = email_field()
    submit = SubmitField("Send me a link")


class ResetPasswordForm(FlaskForm):
    """A new password, twice."""

    password, confirm = new_password_fields()
    submit = SubmitField("Set the new password")


class ConfirmForm(FlaskForm):
    """An empty form: a button that confirms what its page says."""

    submit = SubmitField("Confirm")
