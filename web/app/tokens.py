"""Signed links for mail (verify an address, reset a password, confirm a new address).

A token is signed with SECRET_KEY (itsdangerous, one salt per purpose), expires, and is bound
to the state it changes: a hash of the password hash and the address(es) involved (and for
reset and address-change links, the credential version). Using it changes that state, so it
works once; a password change kills every reset link made before, and any credential change
every reset and address-change link.
Nothing is stored.
"""

from __future__ import annotations

import hashlib
from typing import Any

from flask import current_app
from itsdangerous import BadSignature, URLSafeSerializer

from .config import now
from .extensions import db
from .models import User

MAX_AGE_SETTINGS = {
    "verify": "EMAIL_VERIFY_MAX_AGE",
    "email-change": "EMAIL_VERIFY_MAX_AGE",
    "reset": "PASSWORD_RESET_MAX_AGE",
    "undo-passkey": "UNDO_LINK_MAX_AGE",
    "cancel-email-change": "EMAIL_VERIFY_MAX_AGE",
}
# Undo links survive other changes of the account (a thief who added a passkey could
# otherwise kill its undo link by changing the password): bound to the user, the thing to
# undo and, for an address change, the address it would replace (the link dies once the
# change is done).
UNDO = {"undo-passkey", "cancel-email-change"}
# Links that die with any credential change (auth/credentials.py), not only the password's.
VERSIONED = {"reset", "email-change"}


def _serializer(purpose: str) -> URLSafeSerializer:
    return URLSafeSerializer(current_app.config["SECRET_KEY"], salt=f"mail-link:{purpose}")


def _state(user: User, purpose: str, address: str) -> str:
    """Return a digest of what the token may change: when it changes, the token dies."""
    if purpose in UNDO:
        current = user.email or "" if purpose == "cancel-email-change" else ""
        parts = [purpose, str(user.id), current, address]
        return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]
    verified = user.email_verified_at.isoformat() if user.email_verified_at else ""
    parts = [purpose, str(user.id), user.password_hash, user.email or "", verified, address]
    if purpose in VERSIONED:
        parts.append(str(user.credential_version))
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]


def make(user: User, purpose: str, address: str = "") -> str:
    """Return a link token for `user` (and `address`, the new one of an email change)."""
    assert purpose in MAX_AGE_SETTINGS, purpose
    at = int(now(current_app.config))  # the configured clock, so tests can age a link
    payload = {"u": user.id, "a": address, "s": _state(user, purpose, address), "t": at}
    return str(_serializer(purpose).dumps(payload))


def load(purpose: str, token: str) -> tuple[User, str] | None:
    """Return the user and address of a valid token, or None (expired, used, forged)."""
    max_age = int(current_app.config[MAX_AGE_SETTINGS[purpose]])
    try:
        payload: dict[str, Any] = _serializer(purpose).loads(token)
    except BadSignature:
        return None
    issued = payload.get("t")
    if not isinstance(issued, int) or now(current_app.config) - issued > max_age:
        return None
    user_id, address = payload.get("u"), str(payload.get("a", ""))
    user = db.session.get(User, user_id) if isinstance(user_id, int) else None
    if user is None or payload.get("s") != _state(user, purpose, address):
        return None
    return user, address
