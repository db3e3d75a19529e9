"""Logging in and out: the steps the auth and account views share."""

from __future__ import annotations

from flask import after_this_request, current_app, request, session
from flask.wrappers import Response
from flask_login import current_user, login_fresh, login_user, logout_user

from .. import audit
from ..extensions import db
from ..models import User, username_key
from ..passwords import burn_equal_work, hashing_slot
from ..sessions import current_sid, end_current_session, end_sessions_of, start_authenticated


def find_user(username: str) -> User | None:
    """Return the user with this username (case-insensitive), or None."""
    return db.session.scalar(db.select(User).where(User.username_key == username_key(username)))


def authenticate(username: str, password: str) -> User | None:
    """Return the user if the password matches; the same bcrypt work either way.

    A hash made with another cost than BCRYPT_LOG_ROUNDS is upgraded on success.
    """
    user = find_user(username)
    with hashing_slot():
        if user is None:
            burn_equal_work(password)
            return None
        if not user.check_password(password):
            audit.record(user, "login_failed")
            return None
        rounds = current_app.config["BCRYPT_LOG_ROUNDS"]
        if user.hash_rounds() != rounds:
            user.set_password(password, rounds)
    return user


def current_account() -> User:
    """Return the signed-in user's database row (their session only knows id and username)."""
    user = current_user._get_current_object()
    return user if isinstance(user, User) else db.get_or_404(User, user.id)


def log_in(user: User, remember: bool) -> None:
    """Sign `user` in under a new session id; the caller commits.

    Nothing of the signed-out session is kept: the CSRF secret is regenerated after login.
    """
    session.clear()
    login_user(user, remember=remember)
    start_authenticated(user.id, user.username)
    audit.record(user, "login")


def forget_remember_cookie() -> None:
    """Delete the remember-me cookie from the browser with the response."""
    config = current_app.config

    @after_this_request
    def delete(response: Response) -> Response:
        response.delete_cookie(
            config["REMEMBER_COOKIE_NAME"],
            path=config["REMEMBER_COOKIE_PATH"],
            secure=config["REMEMBER_COOKIE_SECURE"],
            httponly=True,
            samesite=config["REMEMBER_COOKIE_SAMESITE"],
        )
        return response


def end_this_session() -> None:
    """Sign this browser out: its session ended on the server, its remember cookie removed."""
    logout_user()
    end_current_session()
    forget_remember_cookie()


def log_out(user: User) -> None:
    """End this session on the server and revoke every remember-me cookie; caller commits."""
    user.rotate_remember_token()
    audit.record(user, "logout")
    end_this_session()


def end_other_sessions(user: User) -> int:
    """End the user's other sessions and revoke every remember-me cookie; keep this one.

    This device gets a new remember cookie if it had one. Returns how many sessions ended;
    the caller records the event and commits.
    """
    ended = end_sessions_of(user.id, keep=current_sid())
    user.rotate_remember_token()
    # Sign in again here with the new token: this session and its remember cookie stay valid.
    remembered = bool(request.cookies.get(current_app.config["REMEMBER_COOKIE_NAME"]))
    login_user(user, remember=remembered, fresh=login_fresh())
    return ended
