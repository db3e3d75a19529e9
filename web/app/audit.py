"""The audit trail of auth events: what happened, when, from where. Never a secret."""

from __future__ import annotations

from typing import Protocol

from flask import request

from . import logs
from .devices import device_label
from .extensions import db
from .models import AuthEvent

# Event names and how the account page shows them.
EVENTS = {
    "login": "Logged in",
    "login_remembered": "Logged in (remember me)",
    "login_failed": "Failed login",
    "logout": "Logged out",
    "password_changed": "Password changed",
    "password_check_failed": "Wrong password given to confirm an action",
    "device_forgotten": "Remembered device forgotten",
    "password_reset": "Password reset by email",
    "email_verified": "Email address verified",
    "email_changed": "Email address changed",
    "email_change_cancelled": "Address change cancelled",
    "session_ended": "Session ended",
    "other_sessions_ended": "Other sessions ended",
    "second_factor_failed": "Wrong second-factor code",
    "totp_enabled": "Authenticator app turned on",
    "totp_disabled": "Authenticator app turned off",
    "passkey_added": "Passkey added",
    "passkey_removed": "Passkey removed",
    "login_passkey": "Logged in with a passkey",
    "recovery_codes_regenerated": "New recovery codes made",
    "recovery_code_used": "Recovery code used",
    "factors_reset": "Second factors reset by an operator",
}


class Identified(Protocol):
    """A user row or the signed-in session's user: anything with the account's id."""

    id: int


def record(user: Identified, event: str) -> None:
    """Add an event for `user` to the database session; the caller commits."""
    assert event in EVENTS, event
    logs.event(event, EVENTS[event], user_id=user.id)
    db.session.add(
        AuthEvent(
            user_id=user.id,
            event=event,
            ip=request.remote_addr,
            device=device_label(request.user_agent.string),
        )
    )
