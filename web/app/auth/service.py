"""Every credential operation, in one place: register, log in, log out, change the password,
delete the account, end sessions.

Views validate their forms and call these; each function commits its own work. Passwords are
hashed and checked through passwords.py only, and sessions end through sessions/ only.
"""

from __future__ import annotations

from collections.abc import Sequence

from flask import after_this_request, current_app, request, session
from flask.wrappers import Response
from flask_login import current_user, login_fresh, login_user, logout_user
from sqlalchemy.exc import IntegrityError

from .. import audit, passwords
from ..extensions import db
from ..models import User, username_key
from ..sessions import (
    current_sid,
    end_current_session,
    end_every_session,
    end_session,
    end_sessions_of,
    start_authenticated,
)


def find_user(username: str) -> User | None:
    """Return the user with this username (case-insensitive), or None."""
    return db.session.scalar(User.named(username))


def current_account() -> User:
    """Return the signed-in user's database row (their session only knows id and username)."""
    user = current_user._get_current_object()
    return user if isinstance(user, User) else db.get_or_404(User, user.id)


def register(username: str, password: str) -> User | None:
    """Create an account; None if the username is taken (also when two register it at once)."""
    if find_user(username) is not None:
        return None
    user = User(
        username=username,
        username_key=username_key(username),
        password_hash=passwords.hash_password(password),
    )
    db.session.add(user)
    try:
        db.session.commit()
    except IntegrityError:  # the unique constraint decides between simultaneous sign-ups
        db.session.rollback()
        return None
    current_app.logger.info("account created: user id %s", user.id)
    return user


def authenticate(username: str, password: str) -> User | None:
    """Return the user if the password matches; the same bcrypt work either way.

    A hash made at another cost than BCRYPT_LOG_ROUNDS is replaced on success.
    """
    user = find_user(username)
    if not passwords.verify(user.password_hash if user else None, password):
        if user is not None:
            audit.record(user, "login_failed")
            db.session.commit()
        return None
    assert user is not None
    if passwords.needs_rehash(user.password_hash):
        user.password_hash = passwords.hash_password(password)
        db.session.commit()
    return user


def log_in(user: User, remember: bool) -> None:
    """Sign `user` in under a new session id.

    Nothing of the signed-out session is kept: the CSRF secret is regenerated after login.
    """
    session.clear()
    login_user(user, remember=remember)
    start_authenticated(user.id, user.username)
    audit.record(user, "login")
    db.session.commit()


def log_out(user: User) -> None:
    """End this session on the server and revoke every remember-me cookie of the user."""
    user.rotate_remember_token()
    audit.record(user, "logout")
    db.session.commit()
    _end_here()


def change_password(user: User, current: str, new: str) -> bool:
    """Set a new password if `current` is right; the other sessions and remember-me end."""
    if not passwords.verify(user.password_hash, current):
        return False
    user.password_hash = passwords.hash_password(new)
    end_other_sessions(user, event="password_changed")
    return True


def delete_account(user: User, password: str) -> int | None:
    """Delete the account if `password` is right; return how many sessions ended, else None."""
    if not passwords.verify(user.password_hash, password):
        return None
    ended = end_sessions_of(user.id)
    db.session.delete(user)
    db.session.commit()
    current_app.logger.info("account deleted: user id %s", user.id)
    _end_here()
    return ended


def end_one_session(user: audit.Identified, handle: str) -> bool:
    """End one of the user's other sessions by its public handle; False if it had ended."""
    if not end_session(user.id, handle):
        return False
    audit.record(user, "session_ended")
    db.session.commit()
    return True


def end_other_sessions(user: User, event: str = "other_sessions_ended") -> int:
    """End the user's other sessions and revoke every remember-me cookie; keep this one.

    This device gets a new remember cookie if it had one. Returns how many sessions ended.
    """
    ended = end_sessions_of(user.id, keep=current_sid())
    user.rotate_remember_token()
    audit.record(user, event)
    db.session.commit()
    # Sign in again here with the new token: this session and its remember cookie stay valid.
    remembered = bool(request.cookies.get(current_app.config["REMEMBER_COOKIE_NAME"]))
    login_user(user, remember=remembered, fresh=login_fresh())
    return ended


def end_all_sessions(users: Sequence[User], everyone: bool = False) -> int:
    """End every session and remember-me cookie of `users`; return how many sessions ended.

    `everyone` also ends the sessions of accounts deleted meanwhile (`flask sessions end --all`).
    """
    for user in users:
        user.rotate_remember_token()
    # Tokens first: a remember cookie must not start a new session after its user's ended.
    db.session.commit()
    return end_every_session() if everyone else sum(end_sessions_of(u.id) for u in users)


def _end_here() -> None:
    """Sign this browser out: its session ended on the server, its remember cookie deleted."""
    logout_user()
    end_current_session()
    config = current_app.config

    @after_this_request
    def delete_remember_cookie(response: Response) -> Response:
        response.delete_cookie(
            config["REMEMBER_COOKIE_NAME"],
            path=config["REMEMBER_COOKIE_PATH"],
            secure=config["REMEMBER_COOKIE_SECURE"],
            httponly=True,
            samesite=config["REMEMBER_COOKIE_SAMESITE"],
        )
        return response
