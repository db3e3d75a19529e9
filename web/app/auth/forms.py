"""Forms of the auth blueprint, and the new-password fields the account forms share."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, PasswordField, StringField, SubmitField
from wtforms.validators import DataRequired, EqualTo, Length

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


class RegisterForm(FlaskForm):
    """Choose a username and a password."""

    username = StringField("Username", validators=[DataRequired(), valid_username])
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
