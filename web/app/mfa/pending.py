"""Between a right password and the second factor: a pending sign-in, not a session.

The password step stores who is signing in (and the session epoch it read, the remember-me
choice, where to go next) in Redis under a random token, for MFA_PENDING_SECONDS, and puts
only the token in the visitor's signed cookie. Nothing signed-in exists yet: every page that
needs a login still redirects to it. The factor step finishes it exactly once (the request
whose DEL removed it wins a race) and each attempt first takes one of MFA_PENDING_ATTEMPTS
(atomically, before the factor is checked; besides the account's failure budgets); a wrong
answer on the last one ends the pending sign-in.
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


# Both write only into a pending sign-in that still exists: a late request never recreates
# one (without its TTL) after it was taken, cancelled or expired.
_SET_CHALLENGE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
return redis.call('HSET', KEYS[1], 'challenge', ARGV[1]) + 1
"""
# Take one attempt before the factor is checked: the key exists and is under its cap.
# Returns how many attempts are left after this one, or -1 (none: nothing may be checked).
_RESERVE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local used = redis.call('HINCRBY', KEYS[1], 'attempts', 1)
if used > tonumber(ARGV[1]) then
  redis.call('DEL', KEYS[1])
  return -1
end
return tonumber(ARGV[1]) - used
"""


def set_challenge(pending: Pending, challenge: str) -> None:
    """Remember the passkey challenge offered to this pending sign-in (if it still exists)."""
    _client().register_script(_SET_CHALLENGE)(keys=[pending.key], args=[challenge])


def reserve_attempt(pending: Pending) -> int:
    """Take one of MFA_PENDING_ATTEMPTS *before* checking a factor, in one atomic step (so
    however many requests race, at most that many factors are checked); return how many are
    left after it, or -1 if none was (the sign-in has ended)."""
    cap = current_app.config["MFA_PENDING_ATTEMPTS"]
    left = int(_client().register_script(_RESERVE)(keys=[pending.key], args=[cap]))
    if left < 0:
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
