"""WTForms validators shared by the auth and account forms."""

from __future__ import annotations

import re

from wtforms import Field, Form
from wtforms.validators import ValidationError

from .models import USERNAME_KEY_MAX, USERNAME_MAX, username_key
from .passwords import MAX_BYTES, fits_bcrypt, password_problem

# Letters (any script), digits, and . _ - ; what a profile URL can carry without surprises.
USERNAME_PATTERN = re.compile(r"[^\W_][\w.-]*", re.UNICODE)
USERNAME_MIN = 3


def valid_username(form: Form, field: Field) -> None:
    """Accept 3-32 letters, digits, dots, dashes and underscores, starting with a letter/digit."""
    value = (field.data or "").strip()
    field.data = value
    if not USERNAME_MIN <= len(value) <= USERNAME_MAX:
        raise ValidationError(f"Use {USERNAME_MIN} to {USERNAME_MAX} characters.")
    if not USERNAME_PATTERN.fullmatch(value):
        raise ValidationError(
            "Use letters, digits, dots, dashes and underscores, starting with a letter or digit."
        )
    if len(username_key(value)) > USERNAME_KEY_MAX:
        # Some characters (such as U+FDFA) expand to many under Unicode normalisation.
        raise ValidationError("This name is too long once normalised: use simpler characters.")


def new_password(form: Form, field: Field) -> None:
    """Apply the password rules to a new password (the username field, if any, is compared)."""
    username = form.username.data if hasattr(form, "username") else ""
    problem = password_problem(field.data or "", username or "")
    if problem:
        raise ValidationError(problem)


def checkable_password(form: Form, field: Field) -> None:
    """Refuse a password bcrypt cannot check (over 72 UTF-8 bytes) with a clear message."""
    if not fits_bcrypt(field.data or ""):
        raise ValidationError(f"Passwords are at most {MAX_BYTES} bytes (UTF-8).")
