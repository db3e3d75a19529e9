"""Between a right password and the second factor: a pending sign-in, not a session.

The password step stores who is signing in (and the session epoch it read, the remember-me
choice, where to go next) in Redis under a random token, for MFA_PENDING_SECONDS, and puts
only the token in the visitor's signed cookie. Nothing signed-in exists yet: every page that
needs a login still redirects to it. The factor step finishes it exactly once (the request
whose DEL removed it wins a race) and each wrong code spends one of MFA_PENDING_ATTEMPTS
(besides the account's failure budgets); the last one ends the pending sign-in.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from flask import current_app, g, session
from redis import Redis

from ..config import now
from ..models import User
from ..sessions import INDEX_PREFIX

SESSION_KEY = "mfa_pending"


@dataclass(frozen=True)
class Pending:
    """A sign-in waiting for its second factor."""

    key: str
    uid: int
    username: str
    epoch: int
    remember: bool
    next: str
    challenge: str  # the passkey challenge offered at this step (base64url), if any


def _client() -> Redis:
    client: Redis = current_app.extensions["sessions"].client
    return client


def _key(token: str) -> str:
    # Beside the session index (the app's Redis user may use it), never under the session
    # prefix: no session cookie can name it. The key is a hash: Redis never holds the token.
    return f"{INDEX_PREFIX}pending:{hashlib.sha256(token.encode()).hexdigest()}"


def start(user: User, epoch: int, remember: bool, next_url: str) -> None:
    """Begin a pending sign-in for `user` in this browser (replacing any earlier one)."""
    token = secrets.token_urlsafe(32)
    key, seconds = _key(token), current_app.config["MFA_PENDING_SECONDS"]
    client = _client()
    with client.pipeline(transaction=True) as pipe:
        pipe.hset(
            key,
            mapping={
                "uid": user.id,
                "username": user.username,
                "epoch": epoch,
                "remember": int(remember),
                "next": next_url,
                "attempts": 0,
                "expires": now(current_app.config) + seconds,  # the app's clock decides
            },
        )
        pipe.expire(key, seconds)  # (and Redis forgets it then)
        pipe.execute()
    session[SESSION_KEY] = token
    g.pop("mfa_pending", None)


def current() -> Pending | None:
    """Return this browser's pending sign-in, if it has one that has not expired."""
    if "mfa_pending" not in g:
        g.mfa_pending = _load()
    pending: Pending | None = g.mfa_pending
    return pending


def _load() -> Pending | None:
    token = session.get(SESSION_KEY)
    if not isinstance(token, str):
        return None
    key = _key(token)
    stored: dict[bytes, bytes] = _client().hgetall(key)  # type: ignore[assignment]
    raw = {k.decode(): v.decode() for k, v in stored.items()}
    if not raw.get("uid", "").isdigit() or float(raw["expires"]) < now(current_app.config):
        return None
    return Pending(
        key=key,
        uid=int(raw["uid"]),
        username=raw["username"],
        epoch=int(raw["epoch"]),
        remember=raw["remember"] == "1",
        next=raw["next"],
        challenge=raw.get("challenge", ""),
    )


def set_challenge(pending: Pending, challenge: str) -> None:
    """Remember the passkey challenge offered to this pending sign-in."""
    _client().hset(pending.key, "challenge", challenge)


def spend_attempt(pending: Pending) -> int:
    """Count a wrong factor; return how many attempts are left (0: the sign-in has ended)."""
    used: int = _client().hincrby(pending.key, "attempts", 1)  # type: ignore[assignment]
    left = max(0, current_app.config["MFA_PENDING_ATTEMPTS"] - used)
    if left == 0:
        cancel()
    return left


def take(pending: Pending) -> bool:
    """Finish the pending sign-in: True for exactly one caller, however many race."""
    session.pop(SESSION_KEY, None)
    g.mfa_pending = None
    return bool(_client().delete(pending.key))


CHALLENGE_KEY = "passkey_challenge"


def offer_challenge(challenge: str) -> None:
    """Keep a passwordless sign-in's passkey challenge in Redis until its answer comes."""
    token = secrets.token_urlsafe(32)
    _client().set(_key(token), challenge, ex=current_app.config["MFA_PENDING_SECONDS"])
    session[CHALLENGE_KEY] = token


def take_challenge() -> str:
    """Return the challenge offered to this browser, once (empty if none or expired)."""
    token = session.pop(CHALLENGE_KEY, None)
    if not isinstance(token, str):
        return ""
    raw: bytes | None = _client().getdel(_key(token))  # type: ignore[assignment]
    return raw.decode() if raw else ""


def cancel() -> None:
    """End this browser's pending sign-in, if any."""
    pending = current()
    if pending is not None:
        _client().delete(pending.key)
    session.pop(SESSION_KEY, None)
    g.mfa_pending = None
