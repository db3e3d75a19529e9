"""Forms of the auth blueprint."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, PasswordField, StringField, SubmitField
from wtforms.validators import DataRequired, EqualTo, Length

from ..passwords import MAX_BYTES, MIN_LENGTH
from ..validators import bcrypt_length, new_password, valid_username

PASSWORD_HINT = f"At least {MIN_LENGTH} characters and at most {MAX_BYTES} bytes (UTF-8)."


class RegisterForm(FlaskForm):
    """Choose a username and a password."""

    username = StringField("Username", validators=[DataRequired(), valid_username])
    password = PasswordField(
        "Password", validators=[DataRequired(), new_password], description=PASSWORD_HINT
    )
    confirm = PasswordField(
        "Confirm password",
        validators=[DataRequired(), EqualTo("password", message="The passwords do not match.")],
    )
    submit = SubmitField("Create account")


class LoginForm(FlaskForm):
    """Username, password and "remember me"."""

    username = StringField("Username", validators=[DataRequired(), Length(max=64)])
    password = PasswordField("Password", validators=[DataRequired(), bcrypt_length])
    remember = BooleanField("Remember me")
    submit = SubmitField("Log in")


class LogoutForm(FlaskForm):
    """An empty form: its CSRF token is what makes logging out deliberate."""

    submit = SubmitField("Log out")
