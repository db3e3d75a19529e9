"""Forms of the second factor."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import HiddenField, StringField, SubmitField
from wtforms.validators import DataRequired, Length, Regexp

from ..models import PASSKEY_NAME_MAX

# The one grammar of a typed code, ASCII only: an authenticator's six digits or a recovery
# code's letters and digits, with spaces and dashes as the user likes. (Other scripts'
# digits, fullwidth forms and the like are a form error, never a code.)
CODE_GRAMMAR = r"^[A-Za-z0-9 -]+\Z"


class CodeForm(FlaskForm):
    """A code from the authenticator app (or, at sign-in, a recovery code)."""

    code = StringField(
        "Code",
        validators=[
            DataRequired(),
            Length(max=64),
            Regexp(CODE_GRAMMAR, message="Type the code with the digits 0-9 and letters a-z."),
        ],
        render_kw={"autocomplete": "one-time-code", "inputmode": "text", "autofocus": True},
    )
    submit = SubmitField("Verify")


class PasskeyAssertionForm(FlaskForm):
    """A passkey's answer (filled in by /static/js/passkeys.js)."""

    credential = HiddenField(validators=[DataRequired(), Length(max=16 * 1024)])
    submit = SubmitField("Use a passkey")


class PasskeyRegistrationForm(FlaskForm):
    """A name for the new passkey, and the authenticator's answer (filled in by the script)."""

    name = StringField(
        "Name of this passkey",
        validators=[DataRequired(), Length(max=PASSKEY_NAME_MAX)],
        description="So you can tell your passkeys apart, e.g. “Laptop” or “Phone”.",
    )
    credential = HiddenField(validators=[Length(max=16 * 1024)])
    submit = SubmitField("Add a passkey")


class ConfirmForm(FlaskForm):
    """An empty form whose CSRF token guards a button."""

    submit = SubmitField("Confirm")
