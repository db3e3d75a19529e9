"""Failed-login limits that stop guessing without locking the owner out.

Two budgets of failures (Flask-Limiter, counted only when a login fails):

- per account *and* client address, strict (RATELIMIT_ACCOUNT_ADDRESS_FAILURES, default
  5 per 5 minutes and 20 per hour): one address guesses at most 20 passwords an hour on
  an account; the owner who mistypes waits minutes, not an hour;
- per account from any address the account has *not* signed in from lately
  (RATELIMIT_ACCOUNT_FAILURES, default 10 per 15 minutes, 30 per hour, 100 per day): many
  addresses together guess at most 100 a day, and each tier that fills makes them wait
  longer. An address the owner signed in from in the last KNOWN_DAYS is exempt, so a guessing
  campaign from elsewhere cannot lock the owner out of their own account.
"""

from __future__ import annotations

import hashlib

from flask import current_app, request

from ..models import username_key

KNOWN_PREFIX = "known-addresses:"
KNOWN_DAYS = 30


def _account() -> str:
    return username_key(request.form.get("username", "")[:64])


def account_key() -> str:
    """Rate-limit key for failures per account, whatever the address."""
    return "account:" + _account()


def account_address_key() -> str:
    """Rate-limit key for failures per account and client address."""
    return f"account:{_account()}@{request.remote_addr}"


def login_failed(response: object) -> bool:
    """Count a login attempt only when it failed."""
    return getattr(response, "status_code", 0) == 401


def _known_key(account: str) -> str:
    # Hashed: a Redis key name should not carry the username.
    return KNOWN_PREFIX + hashlib.sha256(account.encode()).hexdigest()[:32]


def address_is_known() -> bool:
    """Return whether the account signed in from this client address in the last KNOWN_DAYS."""
    client = current_app.extensions["redis"]
    return bool(client.sismember(_known_key(_account()), request.remote_addr or ""))


def remember_address(username: str) -> None:
    """Record that `username` signed in from this client address (after a good password)."""
    key = _known_key(username_key(username))
    pipe = current_app.extensions["redis"].pipeline(transaction=False)
    pipe.sadd(key, request.remote_addr or "")
    pipe.expire(key, KNOWN_DAYS * 86400)
    pipe.execute()
