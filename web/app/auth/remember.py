"""Remember-me, per device: one row per browser that asked to be remembered, stored hashed.

The remember cookie is Flask-Login's signed cookie of `<user id>:<device id>.<token>`; the
database keeps the token's SHA-256 only. A restore (a request with the cookie and no live
session) checks the token and starts a fresh session that belongs to the device, ending the
device's previous one: one live session per remembered device, however often a copied cookie
is replayed. Restores per device are bounded too (REMEMBER_RESTORE_LIMIT): past it, the
browser is signed out and logs in with its password.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from flask import Response, after_this_request, current_app, request
from flask_login import decode_cookie, encode_cookie, login_user, logout_user

from .. import audit
from ..config import utcnow
from ..devices import device_label
from ..extensions import db
from ..models import RememberedDevice, User, token_hash
from ..ratelimits import spend
from ..sessions import (
    end_device_sessions,
    session_epoch,
    signed_in_identity,
    start_authenticated,
)


def _now() -> datetime:
    return utcnow(current_app.config)


def remember_device(user: User) -> tuple[int, str]:
    """Add a remembered device for `user` (the caller commits); return its id and the payload
    of its cookie."""
    token = secrets.token_urlsafe(32)
    device = RememberedDevice(
        token_hash=token_hash(token),
        label=device_label(request.user_agent.string),
        ip=request.remote_addr,
        created_at=_now(),
        last_used_at=_now(),
        expires_at=_now() + timedelta(days=current_app.config["REMEMBER_COOKIE_DAYS"]),
        credential_version=user.credential_version,
    )
    user.devices.append(device)
    db.session.flush()  # its id goes into the cookie
    return device.id, f"{user.id}:{device.id}.{token}"


def renew_device(device: RememberedDevice, version: int) -> str:
    """Give a remembered device a new token and the user's new credential version (the caller
    commits); return the payload of its new cookie. Copies of the old cookie stop working."""
    token = secrets.token_urlsafe(32)
    device.token_hash, device.credential_version = token_hash(token), version
    return f"{device.user_id}:{device.id}.{token}"


def set_remember_cookie(payload: str) -> None:
    """Send this browser its remember cookie as the response goes out."""
    config = current_app.config

    @after_this_request
    def set_cookie(response: Response) -> Response:
        response.set_cookie(
            config["REMEMBER_COOKIE_NAME"],
            encode_cookie(payload),
            max_age=int(config["REMEMBER_COOKIE_DURATION"].total_seconds()),
            path=config["REMEMBER_COOKIE_PATH"],
            secure=config["REMEMBER_COOKIE_SECURE"],
            httponly=True,
            samesite=config["REMEMBER_COOKIE_SAMESITE"],
        )
        return response


def this_device() -> int | None:
    """Return the remembered device of this browser: its session's, else its cookie's."""
    identity = signed_in_identity()
    if identity and identity.get("remembered"):
        return int(identity["remembered"])
    payload = decode_cookie(request.cookies.get(current_app.config["REMEMBER_COOKIE_NAME"], ""))
    device_id = (payload or "").partition(":")[2].partition(".")[0]
    return int(device_id) if device_id.isdigit() else None


def restore(user_id: int, rest: str) -> User | None:
    """Sign in the user of a valid remember cookie under a fresh session of its device."""
    device_id, _, token = rest.partition(".")
    if not device_id.isdigit():
        return None
    epoch = session_epoch(user_id)  # before the token is checked: see sessions/store.py
    device = db.session.get(RememberedDevice, int(device_id))
    if (
        device is None
        or device.user_id != user_id
        or not device.matches(token)
        or device.expires_at <= _now()
        # Remembered before a credential change (whose revocation deletes such rows too:
        # this is the floor under it).
        or device.credential_version != device.user.credential_version
    ):
        _forget_cookie()
        return None
    if not spend(current_app.config["REMEMBER_RESTORE_LIMIT"], "remember", str(device.id)):
        current_app.logger.warning("remember-me: device %s past its restore limit", device.id)
        _forget_cookie()
        return None
    end_device_sessions(user_id, device.id, revoke=False)  # its previous session: replaced
    device.last_used_at, device.ip = _now(), request.remote_addr
    device.label = device_label(request.user_agent.string)
    user = device.user
    login_user(user, fresh=False)  # the session keeps the user id only, never the token
    start_authenticated(
        user.id,
        user.username,
        epoch,
        remembered=device.id,
        version=device.credential_version,
        method="remember-me",  # the device signed in with every factor when it was remembered
        mfa=user.has_second_factor(),
    )
    audit.record(user, "login_remembered")
    db.session.commit()
    return user


def _forget_cookie() -> None:
    """Have Flask-Login drop the cookie and what it put in the session, once the user is known
    (logout_user looks the user up: inside the loader it would recurse)."""

    @after_this_request
    def forget(response: Response) -> Response:
        logout_user()
        return response
