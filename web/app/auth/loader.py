"""How Flask-Login finds the user of a request: the server-side session or a remember cookie."""

from __future__ import annotations

from flask import g
from flask_login import LoginManager, UserMixin

from ..models import User
from ..sessions import signed_in_identity
from .remember import restore


class SessionUser(UserMixin):
    """The signed-in user as their session knows them: what pages need, no database row."""

    def __init__(self, user_id: int, username: str) -> None:
        self.id = user_id
        self.username = username


def load_user(user_id: str) -> SessionUser | User | None:
    """Return the user for the session's `id`, or for a remember cookie's `id:device.token`.

    A live server-side session is authoritative (ending it on the server is how it is
    revoked), so it needs no database query. A remember cookie works while its device is
    remembered (remember.py): it then starts a fresh, tracked session, so no request is ever
    signed in without one.
    """
    raw_id, remembered, rest = user_id.partition(":")
    if not raw_id.isdigit():
        return None
    identity = signed_in_identity()
    if identity and identity["uid"] == int(raw_id):
        return SessionUser(identity["uid"], identity["username"])
    if not remembered or g.get("database_unavailable"):
        return None  # (the second: rendering the 503 page of a database outage)
    return restore(int(raw_id), rest)


def register_user_loader(manager: LoginManager) -> None:
    """Wire the loader, the login view and the messages into Flask-Login."""
    manager.user_loader(load_user)
    manager.login_view = "auth.login"
    manager.login_message = "Please log in to see this page."
    manager.login_message_category = "info"
    manager.refresh_view = "auth.login"
    manager.needs_refresh_message = "Please confirm your password to continue."
    manager.needs_refresh_message_category = "info"
    # Server-side sessions with idle and absolute limits replace Flask-Login's fingerprinting,
    # which trusts the first X-Forwarded-For entry and logs out mobile users on every network.
    manager.session_protection = None
