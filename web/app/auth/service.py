"""Logging in and out: the steps the auth and account views share."""

from __future__ import annotations

from flask import after_this_request, current_app, request, session
from flask.wrappers import Response
from flask_login import login_user, logout_user

from .. import audit
from ..extensions import db
from ..models import User, username_key
from ..passwords import burn_equal_work, hashing_slot
from ..sessions import current_sid, end_all_sessions, end_current, start_authenticated


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


def log_in(user: User, remember: bool) -> None:
    """Sign `user` in under a new session id; the caller commits."""
    session.clear()
    login_user(user, remember=remember)
    start_authenticated(user.id)
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


def sign_out_here() -> None:
    """Sign this browser out: its session deleted from Redis, its remember cookie removed."""
    logout_user()
    end_current()
    forget_remember_cookie()


def log_out(user: User) -> None:
    """End this session on the server and revoke every remember-me cookie; caller commits."""
    user.rotate_remember_token()
    audit.record(user, "logout")
    sign_out_here()


def end_other_sessions(user: User) -> int:
    """End the user's other sessions and revoke every remember-me cookie; keep this one.

    This device gets a new remember cookie if it had one. Returns how many sessions ended;
    the caller records the event and commits.
    """
    ended = end_all_sessions(user.id, keep_sid=current_sid())
    user.rotate_remember_token()
    session["_user_id"] = user.get_id()
    if request.cookies.get(current_app.config["REMEMBER_COOKIE_NAME"]):
        session["_remember"] = "set"
    return ended
