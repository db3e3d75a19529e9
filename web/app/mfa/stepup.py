"""Step-up: sensitive actions need a recent sign-in, with every factor the account has.

A session remembers when its user last signed in completely (`verified_at`: the password and
the second factor, or a passkey); a remember-me restore is not a sign-in. Past
MFA_STEP_UP_SECONDS the action sends the user to sign in again, and back.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast

from flask import current_app, flash, redirect, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from ..config import now
from ..extensions import login_manager
from ..sessions import signed_in_identity

View = TypeVar("View", bound=Callable[..., Any])


def is_fresh() -> bool:
    """Return whether this session signed in completely within MFA_STEP_UP_SECONDS."""
    identity = signed_in_identity()
    if not identity:
        return False
    age = now(current_app.config) - float(identity.get("verified_at") or 0)
    return age <= current_app.config["MFA_STEP_UP_SECONDS"]


def step_up_required(view: View) -> View:
    """Let `view` run for a freshly signed-in user only; others sign in again first."""

    @wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if not current_user.is_authenticated:
            return login_manager.unauthorized()
        if not is_fresh():
            flash(_("Please sign in again to continue."), "info")
            back = request.full_path if request.method == "GET" else request.path
            return redirect(url_for("auth.login", next=back.rstrip("?")))
        return view(*args, **kwargs)

    return cast(View, wrapped)
